"""Load what the report needs from a run directory, reading only the run's own files.

Older or partial runs lack some files (no clusters.parquet before clustering existed, no unit stats in a
hand-made run); those parts come back empty and the report leaves their sections out instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from audit.errors import UsageError
from audit.rundir import RunDir
from audit.tagger import info_path


@dataclass
class RunData:
    run_dir: Path
    summary: dict[str, Any]
    manifest: dict[str, Any]
    passages: pl.LazyFrame | None          # contract columns; None when passages.parquet is absent
    clusters: pl.LazyFrame | None          # None when clusters.parquet is absent (older runs)
    units: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] | None = None    # estimate.json, once people have labelled an audit sample

    def passage_columns(self) -> set[str]:
        return set(self.passages.collect_schema().names()) if self.passages is not None else set()

    def score_histogram(self) -> list[int] | None:
        """The units' 50-bin histograms of p_misaligned_ai, summed; None if no unit recorded one."""
        units = [u for u in self.units if u.get("score_histogram")]
        if not units:
            return None
        total = [0] * len(units[0]["score_histogram"])
        for unit in units:
            histogram = unit["score_histogram"]
            if len(histogram) != len(total):
                where = RunDir(self.run_dir).units_dir
                raise UsageError(f"{where}: unit {unit.get('unit')!r} has a score_histogram of "
                                 f"{len(histogram)} bins, others have {len(total)}; re-run the scan into a new --out")
            total = [a + b for a, b in zip(total, histogram, strict=True)]
        return total

    def decision_threshold(self) -> float | None:
        """The misaligned_ai threshold the scan decided with: from the model.json of the model the manifest names,
        if that file still describes the very model scanned with (same sha256); else None."""
        model = self.manifest.get("model") or {}
        try:
            info = json.loads(info_path(Path(model["path"])).read_text(encoding="utf-8"))
            if info.get("model_sha256") != model.get("sha256"):
                return None
            return float(info["decision"]["misaligned_ai_threshold"])
        except (KeyError, TypeError, ValueError, OSError):
            return None

    def unit_seconds(self) -> float | None:
        seconds = [u["seconds"] for u in self.units if isinstance(u.get("seconds"), (int, float))]
        return sum(seconds) if seconds else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON ({err}); re-run the scan to rewrite it") from err
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _scan_parquet(path: Path) -> pl.LazyFrame | None:
    """A file, or a directory of Parquet files (the contract allows both)."""
    if path.is_dir():
        return pl.scan_parquet(str(path / "**" / "*.parquet"))
    if path.exists():
        return pl.scan_parquet(path)
    return None


def load_run(run_dir: str | Path) -> RunData:
    """Read summary.json (required), manifest.json, unit stats, passages.parquet, clusters.parquet, estimate.json."""
    run = RunDir(Path(run_dir))
    if not run.summary.exists():
        raise UsageError(f"{run.summary}: not found. Is {run.root} a finished run directory? "
                         "Run `corpus-audit scan INPUT --out RUN` first.")
    return RunData(
        run_dir=run.root,
        summary=_read_json(run.summary),
        manifest=_read_json(run.manifest) if run.manifest.exists() else {},
        passages=_scan_parquet(run.passages),
        clusters=_scan_parquet(run.clusters),
        units=[_read_json(p) for p in run.unit_stats_files()],
        audit=_read_json(run.estimate) if run.estimate.exists() else None,
    )
