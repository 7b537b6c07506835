"""Typed configuration for each command, and the column presets of common corpus layouts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path


Names = str | tuple[str, ...] | list[str] | None


def _names(value: Names) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class Columns:
    """Which columns hold what: a name, or candidate names in order of preference (each shard reads the first one
    it has), or ``None`` when the corpus has no such column. Values are stored as tuples.

    A dotted name (``metadata.url``) reads a field of a struct column (or a nested JSON object), as in Dolma.
    """

    text: Names = "text"
    id: Names = "id"
    url: Names = "url"
    date: Names = "date"
    dump: Names = "dump"
    tokens: Names = "token_count"

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _names(getattr(self, f.name)))

    def candidates(self) -> dict[str, tuple[str, ...]]:
        """Role -> candidate column names, for the roles this corpus may have."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def named(self) -> dict[str, str | list[str]]:
        """The candidates as the manifest records them (JSON): one name as a string, several as a list."""
        return {role: names[0] if len(names) == 1 else list(names) for role, names in self.candidates().items()}


PRESETS: dict[str, Columns] = {
    # HuggingFaceFW/fineweb and fineweb-edu
    "fineweb": Columns(),
    # allenai/c4 (en) and OLMo's C4 files: text, url, timestamp or date; an id only in some variants (documents
    # without one are named shard:row)
    "c4": Columns(url=("url", "metadata.url"), date=("timestamp", "date", "created", "added"), dump=None, tokens=None),
    # Dolma v1.x documents: id, text, created (crawl time) or added, source, metadata{url, ...} (some keep url on top)
    "dolma": Columns(
        url=("metadata.url", "url"), date=("created", "added", "timestamp", "date"), dump="source", tokens=None
    ),
    # RedPajama-Data-V2 documents: raw_content and doc_id; the URL lives in a JSON metadata string
    "redpajama": Columns(text="raw_content", id="doc_id", url=None, date=None, dump=None, tokens=None),
}


@dataclass
class ScanConfig:
    """Options of ``corpus-audit scan``. Everything that changes results is recorded in the manifest."""

    inputs: list[str]
    out: Path
    columns: Columns = field(default_factory=Columns)
    required: frozenset[str] = frozenset({"text"})  # roles whose column must exist (set by the user)
    model: str | None = None
    workers: int = 1
    engine: str = "local"
    ray_address: str | None = None
    sample_rate: float = 1.0
    seed: int = 0
    progress: bool | None = None  # None: a bar only when stderr is a terminal
    unit_bytes: int = 256 * 2**20  # uncompressed bytes per unit of work (row-group ranges of large shards)
    batch_rows: int = 2048

    def result_options(self) -> dict:
        """The options a resumed run must share with the run it resumes."""
        return {
            "columns": self.columns.named(),
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "unit_bytes": self.unit_bytes,
        }


def resolve_columns(preset: str | None, overrides: dict[str, str | None]) -> tuple[Columns, frozenset[str]]:
    """Columns from a preset (default fineweb) with the user's ``--*-column`` overrides applied.

    Roles the user names explicitly must exist in every shard; preset roles are used when present.
    """
    columns = PRESETS[preset or "fineweb"]
    given = {role: name for role, name in overrides.items() if name is not None}
    columns = replace(columns, **given)
    return columns, frozenset({"text", *given})


# What `corpus-audit sample --target` allocates labels for, beyond each stratum's floor: the kinds of strata whose
# estimate's variance Neyman allocation minimises ("both": the sum of the passage and document shares' variances).
SAMPLE_TARGETS = {"documents": ("document",), "passages": ("passage",), "both": ("passage", "document")}
