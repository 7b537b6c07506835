"""The run directory: where each file lives, the manifest, and the units' results with their completion markers.

A unit's three tables are written first (each atomically) and its stats JSON last: the JSON is the marker that
the unit is complete, and it records the input's fingerprint so a changed shard is scanned again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import write_json_atomic, write_parquet_atomic
from .errors import UsageError

SCHEMA_VERSION = 1
UNIT_TABLES = ("flagged", "docs", "sample")


@dataclass(frozen=True)
class RunDir:
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

    def unit_table(self, unit_id: str, table: str) -> Path:
        return self.units_dir / f"{unit_id}.{table}.parquet"

    def unit_stats(self, unit_id: str) -> Path:
        return self.units_dir / f"{unit_id}.json"

    # -- units -------------------------------------------------------------------------------------------

    def commit_unit(self, unit_id: str, tables: dict[str, pa.Table], stats: dict) -> None:
        """Write a unit's tables, then its stats (the completion marker)."""
        for name in UNIT_TABLES:
            write_parquet_atomic(self.unit_table(unit_id, name), tables[name])
        write_json_atomic(self.unit_stats(unit_id), stats)

    def done(self, unit_id: str, fingerprint: dict) -> dict | None:
        """The unit's stats when it is complete and was made from this very input, else None."""
        try:
            stats = json.loads(self.unit_stats(unit_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if stats.get("fingerprint") != fingerprint:
            return None
        if not all(self.unit_table(unit_id, name).is_file() for name in UNIT_TABLES):
            return None
        return stats

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
