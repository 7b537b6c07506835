"""``scan`` from end to end: plan the units, resume what is done, run the rest on an engine, summarise, report.

Planning reads only Parquet footers and the first lines of JSON Lines files. A required column missing from any
shard stops the run before any work (exit 2); a preset column that no shard has is a warning; a shard that cannot
be opened is recorded as a failure and the others go on (exit 1 at the end; exit 2 when no shard could be read).
"""

from __future__ import annotations

import glob
import importlib
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .version import __version__
from .atomic import clean_temporaries
from .config import ScanConfig
from .errors import InputError, UsageError
from .executors import Engine, make_engine
from .executors.progress import Progress
from .reader import Shard, Unit, discover, glob_root, open_source, resolve_columns
from .rundir import RunDir
from .tagger import load_cached


@dataclass
class ScanOutcome:
    summary: dict
    run_dir: Path
    scanned_units: int
    seconds: float
    bytes_read: int
    resumed_units: int = 0  # units a previous run of the same command had already finished

    @property
    def exit_code(self) -> int:
        return 1 if self.summary["failures"] else 0


def plan(shards: list[Shard], config: ScanConfig) -> tuple[list[Unit], list[dict], list[str]]:
    """Units of work for every readable shard, a failure for every unreadable one, and a warning for every
    column of the preset that no readable shard has."""
    units: list[Unit] = []
    failures: list[dict] = []
    found: set[str] = set()
    for shard in shards:
        try:
            source = open_source(shard)
        except InputError as error:
            failures.append({"input": shard.uri, "unit": None, "error": str(error)})
            continue
        found |= resolve_columns(shard, source.schema, config.columns, config.required).keys()
        units.extend(source.units(config.unit_bytes))
    missing = [] if not units else [(r, n) for r, n in config.columns.candidates().items() if r not in found]
    warnings = [
        f"no shard has a column {' or '.join(map(repr, names))} for the {role}, so the report has no {role} figures; "
        "name the "
        f"right one with --{role if role != 'tokens' else 'token'}-column or pick another --preset"
        for role, names in missing
    ]
    return units, failures, warnings


def scan(config: ScanConfig) -> ScanOutcome:
    """Run (or resume) a scan and write its run directory."""
    _check_options(config)
    engine = make_engine(config)  # the local engine's workers start now, while this process plans
    # In the background of planning and of the units: the model (for the manifest, and for the units themselves with
    # one worker), then the merge's and the report's modules (scipy, matplotlib).
    background = ThreadPoolExecutor(1, thread_name_prefix="scan-background")
    model = background.submit(load_cached, config.model)
    background.submit(_import, "audit.summary", "audit.reporting")
    try:
        return _scan(config, engine, model)
    finally:
        getattr(engine, "close", lambda: None)()
        background.shutdown(wait=False)


def _import(*modules: str) -> None:
    for module in modules:
        importlib.import_module(module)


def _scan(config: ScanConfig, engine: Engine, model: Future) -> ScanOutcome:
    clock = _Clock()
    run = RunDir(Path(config.out))
    run.root.mkdir(parents=True, exist_ok=True)
    clean_temporaries(run.root)
    shards = discover(config.inputs)
    units, failures, warnings = plan(shards, config)
    clock.lap("plan")
    tagger = model.result()
    clock.lap("model")
    manifest = {
        "tool_version": __version__,
        "inputs": list(config.inputs),
        "options": config.result_options(),
        "model": {"path": str(tagger.path), "sha256": tagger.sha256, "version": tagger.version},
        "shards": [{"relpath": s.relpath, **s.fingerprint()} for s in shards],
        "units": [u.to_dict() | {"shard": u.shard.relpath} for u in units],
    }
    previous = run.read_manifest()
    if previous is not None:
        _check_resumable(previous, manifest, run)
    done = {u.id: stats for u in units if (stats := run.done(u.id, u.shard.fingerprint())) is not None}
    pending = [u for u in units if u.id not in done]
    finished = previous is not None and previous.get("finished") and previous.get("units") == manifest["units"]
    if finished and not pending and not failures and run.summary.is_file():
        return ScanOutcome(json.loads(run.summary.read_text()), run.root, 0, clock.total(), 0, len(done))
    run.write_manifest({**manifest, "finished": False})
    run.forget_units_except({u.id for u in units})
    clock.lap("manifest")

    known = [u.rows for u in pending]  # a JSON Lines unit's rows are unknown until read: the bar then has no total
    progress = Progress(None if None in known else sum(known), len(pending), config.progress)
    try:
        outcomes = engine(pending, config, run.root, progress)
    finally:
        progress.close()
    clock.lap("units")
    # Every writer has finished now; one killed mid-write (and retried by the engine) left its temporary behind.
    clean_temporaries(run.units_dir)
    for outcome in outcomes:
        if "stats" in outcome:
            done[outcome["unit"]] = outcome["stats"]
            run.loaded[outcome["unit"]] = outcome.get("tables", {})
        else:
            failures.append(outcome)
    unit_stats = [done[u.id] for u in units if u.id in done]
    if not unit_stats and failures:
        _no_input_read(failures)
    evaluations = tagger.info.get("evaluation", {})  # "estimation": the labelled data that stand for web text
    evaluation = evaluations.get("estimation") or evaluations.get("dev", {})
    from .summary import summarise

    scanned = sum(o["stats"]["documents"] for o in outcomes if "stats" in o)
    finished = {**manifest, "finished": True, "bytes_read": progress.bytes, "documents_scanned": scanned}
    try:
        summary = summarise(run, unit_stats, failures, len(shards), evaluation, config.sample_rate < 1, warnings)
        clock.lap("summary")
        run.write_manifest({**finished, "seconds": round(clock.total(), 3), "timings": clock.laps})
    except OSError as error:
        raise UsageError(
            f"cannot write the merged results into {run.root} ({error}). Free space or fix permissions, then re-run "
            "the same command: every finished unit is kept and only the merge is redone."
        ) from error
    _write_reports(run.root)
    clock.lap("report")
    try:  # the finished manifest stands; this adds the report's time to it
        run.write_manifest({**finished, "seconds": round(clock.total(), 3), "timings": clock.laps})
    except OSError as error:
        print(f"corpus-audit: warning: the report's time was not added to {run.manifest} ({error})", file=sys.stderr)
    return ScanOutcome(summary, run.root, len(pending), clock.total(), progress.bytes, len(units) - len(pending))


def _no_input_read(failures: list[dict]) -> None:
    """Stop a run in which every input failed: there is nothing to summarise or report (exit 2)."""
    inputs = sorted({f["input"] for f in failures})
    lines = "\n".join(f"  {f['error']}" for f in failures)  # each error names its input
    raise UsageError(
        f"no input could be read ({len(inputs)} failed), so no summary or report was written:\n{lines}\n"
        "Fix or remove these inputs and re-run the same command."
    )


class _Clock:
    """Wall seconds per phase of a scan, for manifest.json's ``timings`` (the benchmark reads them)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = round(self.laps.get(phase, 0.0) + now - self.last, 3)
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.started


def _check_options(config: ScanConfig) -> None:
    if not 0 < config.sample_rate <= 1:
        raise UsageError(f"--sample-rate must be in (0, 1], got {config.sample_rate}")
    if config.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {config.workers}")
    out = Path(config.out).resolve()
    for folder in _input_folders(config.inputs):
        if out == folder or folder in out.parents:
            raise UsageError(
                f"--out {config.out} is inside the input folder {folder}; a re-run would read the run's own files as "
                "shards. Choose a run directory outside every input folder."
            )


def _input_folders(inputs: list[str]) -> list[Path]:
    """The local paths a scan searches: each input file or directory, and the fixed head of each glob."""
    return [Path(glob_root(spec) if glob.has_magic(spec) else spec).resolve() for spec in inputs if "://" not in spec]


def _check_resumable(previous: dict, current: dict, run: RunDir) -> None:
    """A run directory is resumed only by the same scan: same options and model (workers may differ)."""
    for key in ("options", "inputs"):
        if previous.get(key) != current[key]:
            raise UsageError(
                f"{run.root} holds a scan with other {key} ({previous.get(key)} vs {current[key]}); "
                "re-run with the same command to resume it, or choose a new --out."
            )
    if previous.get("model", {}).get("sha256") != current["model"]["sha256"]:
        raise UsageError(f"{run.root} was scanned with another model; re-run with that --model, or choose a new --out.")


def _write_reports(run_root: Path) -> None:
    """The report is derived from the run's files: if it fails, the scan's results stand and the report can be
    written again with `corpus-audit report RUN`."""
    from .reporting import write_reports

    try:
        write_reports(run_root)
    except Exception as error:  # noqa: BLE001 - a report bug must not lose a finished scan
        print(
            f"corpus-audit: warning: the report could not be written ({type(error).__name__}: {error}); "
            f"the run's files are complete: retry with `corpus-audit report {run_root}`",
            file=sys.stderr,
        )
