"""The run directory and the export directory: where each file lives, the unit tables' schemas, and the
completion markers that make both resumable.

One convention for markers: the work's files are written first (each atomically), then a JSON marker holding the
work's stats and its input's fingerprint. The marker says the work is complete; a marker whose fingerprint differs
from the input's now, or whose files are missing, says it is to be done again (`read_marker`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import write_json_atomic, write_parquet_atomic
from .errors import UsageError
from .labels import AI_LABELS, LABELS
from .reader import shard_stem

SCHEMA_VERSION = 1
UNIT_TABLES = ("flagged", "docs", "sample")
ESTIMATE_FILE = "estimate.json"  # summary.json's `checked` block names it as its source


def read_marker(marker: Path, fingerprint: dict, outputs: Iterable[Path]) -> dict | None:
    """The stats a completion marker holds when the work it marks is complete and was made from this very input
    (same fingerprint, every output present); else None."""
    try:
        stats = json.loads(marker.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if stats.get("fingerprint") != fingerprint:
        return None
    if not all(path.is_file() for path in outputs):
        return None
    return stats


@dataclass(frozen=True)
class RunDir:
    """A scan's run directory (ARCHITECTURE.md, "The run directory"): the one place that names its files."""

    root: Path
    # Unit tables this process already holds (unit id -> name -> table), which the merge then need not read back.
    loaded: dict[str, dict[str, pa.Table]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def units_dir(self) -> Path:
        return self.root / "units"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def passages(self) -> Path:
        return self.root / "passages.parquet"

    @property
    def clusters(self) -> Path:
        return self.root / "clusters.parquet"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def audit_plan(self) -> Path:
        """The audit sample's plan (strata, drawn rows), written by `sample`."""
        return self.root / "audit_sample.json"

    @property
    def estimate(self) -> Path:
        """Prevalence from the labelled audit sample, written by `estimate`."""
        return self.root / ESTIMATE_FILE

    @property
    def label_sample(self) -> Path:
        """Where `label` draws the audit sample's rows when the run has none yet."""
        return self.root / "audit_sample.jsonl"

    @property
    def labels(self) -> Path:
        """The default labels file of `label`."""
        return self.root / "labels.jsonl"

    @property
    def demo_corpus(self) -> Path:
        """The demo's run holds the sample shards it scans."""
        return self.root / "corpus"

    @property
    def demo_planted(self) -> Path:
        """The demo's count of what it planted in the sample corpus, per label."""
        return self.root / "planted.json"

    def unit_table(self, unit_id: str, table: str) -> Path:
        return self.units_dir / f"{unit_id}.{table}.parquet"

    def unit_stats(self, unit_id: str) -> Path:
        return self.units_dir / f"{unit_id}.json"

    def unit_stats_files(self) -> list[Path]:
        """Every unit's stats file (its completion marker), in name order."""
        return sorted(self.units_dir.glob("*.json"))

    # -- units -------------------------------------------------------------------------------------------

    def commit_unit(self, unit_id: str, tables: dict[str, pa.Table], stats: dict) -> None:
        """Write a unit's tables, then its stats (the completion marker)."""
        for name in UNIT_TABLES:
            write_parquet_atomic(self.unit_table(unit_id, name), tables[name])
        write_json_atomic(self.unit_stats(unit_id), stats)

    def done(self, unit_id: str, fingerprint: dict) -> dict | None:
        """The unit's stats when it is complete and was made from this very input, else None."""
        return read_marker(self.unit_stats(unit_id), fingerprint, (self.unit_table(unit_id, t) for t in UNIT_TABLES))

    def forget_units_except(self, keep: set[str]) -> None:
        """Remove results of units no longer in the plan (an input that changed or was dropped)."""
        if self.units_dir.is_dir():
            for path in self.units_dir.iterdir():
                if _unit_of(path.name) not in keep:
                    path.unlink()

    def read_unit_tables(self, unit_ids: list[str], table: str) -> pa.Table:
        """One table of every listed unit, concatenated in unit order."""
        tables = [self.read_unit_table(u, table) for u in unit_ids]
        return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})

    def read_unit_table(self, unit_id: str, table: str) -> pa.Table:
        """One table of a committed unit: from memory when this process holds it, else from its file."""
        held = self.loaded.get(unit_id, {}).get(table)
        return held if held is not None else pq.read_table(self.unit_table(unit_id, table))

    # -- manifest ----------------------------------------------------------------------------------------

    def read_manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as error:
            raise UsageError(f"{self.manifest} is not valid JSON ({error}); use a new --out directory.") from None

    def write_manifest(self, manifest: dict) -> None:
        write_json_atomic(self.manifest, {"schema_version": SCHEMA_VERSION, **manifest})


def _unit_of(file_name: str) -> str:
    """The unit id a file in units/ belongs to."""
    for suffix in (".json", *(f".{table}.parquet" for table in UNIT_TABLES)):
        if file_name.endswith(suffix):
            return file_name[: -len(suffix)]
    return file_name


@dataclass(frozen=True)
class ExportDir:
    """An export's output directory: each shard's copy at its relpath, its dolma-style attribute file, its
    completion marker under ``.export/`` (written last, the run directory's convention) and export_manifest.json."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "export_manifest.json"

    def output(self, relpath: str) -> Path:
        return self.root / relpath

    def attributes(self, relpath: str) -> Path:
        return self.root / "attributes" / (shard_stem(relpath) + ".jsonl.gz")

    def marker(self, relpath: str) -> Path:
        return self.root / ".export" / (relpath + ".json")

    def commit_shard(self, relpath: str, stats: dict) -> None:
        """Write the shard's marker: after both of its files."""
        write_json_atomic(self.marker(relpath), stats)

    def done(self, relpath: str, fingerprint: dict) -> dict | None:
        """The shard's stats when its export is complete and was made from this very input, else None."""
        return read_marker(self.marker(relpath), fingerprint, (self.output(relpath), self.attributes(relpath)))


# -- unit tables --------------------------------------------------------------------------------------------------


def _fields(**types: pa.DataType) -> list[pa.Field]:
    return [pa.field(name, kind) for name, kind in types.items()]


_PROB_FIELDS = [pa.field(f"p_{name}", pa.float32()) for name in LABELS]
_DOC_FIELDS = _fields(  # the columns every unit table starts with
    doc_id=pa.string(), shard=pa.string(), row=pa.int64(), url=pa.string(), domain=pa.string(), date=pa.string(),
    dump=pa.string(),
)
_PASSAGE_FIELDS = [
    *_fields(passage_index=pa.int32(), char_start=pa.int64(), char_end=pa.int64(), text=pa.large_string(),
             label=pa.string(), score=pa.float32()),
    *_PROB_FIELDS,
]
FLAGGED_SCHEMA = pa.schema([*_DOC_FIELDS, *_PASSAGE_FIELDS, pa.field("cluster_id", pa.int64())])
DOCS_SCHEMA = pa.schema(
    [
        *_DOC_FIELDS,
        pa.field("characters", pa.int64()),
        pa.field("tokens", pa.int64()),
        pa.field("passages", pa.int32()),
        pa.field("gated_passages", pa.int32()),  # passages that name AI themselves: only these meet the model
        pa.field("gated_characters", pa.int64()),
        *[
            pa.field(f"{stat}_{name}", kind)
            for name in AI_LABELS
            for stat, kind in (("n", pa.int32()), ("chars", pa.int64()), ("max_p", pa.float32()),
                               ("any_p", pa.float64()), ("sum_p", pa.float64()), ("sum_pchars", pa.float64()))
        ],
    ]
)
SAMPLE_SCHEMA = pa.schema(
    [pa.field("kind", pa.string()), *_DOC_FIELDS, *_PASSAGE_FIELDS, pa.field("sample_hash", pa.uint64())]
)
