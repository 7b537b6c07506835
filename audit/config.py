"""Typed configuration for each command, and the column presets of common corpus layouts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Columns:
    """Which Parquet columns hold what. ``None`` means the corpus has no such column.

    A dotted name (``metadata.url``) reads a field of a struct column, as in Dolma's layout.
    """

    text: str = "text"
    id: str | None = "id"
    url: str | None = "url"
    date: str | None = "date"
    dump: str | None = "dump"
    tokens: str | None = "token_count"

    def named(self) -> dict[str, str]:
        """Role -> column name, for the roles this corpus has."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


PRESETS: dict[str, Columns] = {
    # HuggingFaceFW/fineweb and fineweb-edu
    "fineweb": Columns(),
    # allenai/c4 (en): text, timestamp, url; no id column, so documents are named shard:row
    "c4": Columns(id=None, date="timestamp", dump=None, tokens=None),
    # Dolma v1.x documents: id, text, added/created, source, metadata{url, ...}
    "dolma": Columns(url="metadata.url", date="created", dump="source", tokens=None),
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
