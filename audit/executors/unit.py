"""The task every engine runs: scan one unit of work and commit its results to the run directory.

Every engine runs :func:`run_unit` on each pending unit and returns the outcomes: the unit's stats, or a
failure naming the input. A unit whose input cannot be read fails at once; any other error is retried
``RETRIES`` times first (a worker that crashed, a flaky object store).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from ..config import ScanConfig
from ..errors import InputError, UsageError
from ..reader import Unit
from ..rundir import RunDir
from ..scanner import ProgressFn, scan_unit
from ..tagger import load_cached

RETRIES = 1


def run_unit(unit: Unit, config: ScanConfig, run_root: str | Path, progress: ProgressFn | None = None) -> dict:
    """Scan one unit and commit its results. Returns ``{"unit", "stats", "tables"}`` (the committed tables, so the
    merge need not read them back) or ``{"unit", "input", "error"}``."""
    try:
        result = scan_unit(unit, config, lambda: load_cached(config.model), progress)
    except InputError as error:
        return failure(unit, str(error))
    try:
        RunDir(Path(run_root)).commit_unit(unit.id, result.tables(), result.stats)
    except OSError as error:
        raise UsageError(
            f"cannot write the results of {unit.id} into {run_root} ({error}). Free space or fix permissions, "
            "then re-run the same command: finished units are kept and the scan resumes."
        ) from error
    return {"unit": unit.id, "stats": result.stats, "tables": result.tables()}


def failure(unit: Unit, message: str) -> dict:
    return {"unit": unit.id, "input": unit.shard.uri, "error": message}


def describe(error: BaseException) -> str:
    """A one-line account of an unexpected error, for the run's failures list."""
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(error).__name__}: {error}{where}"
