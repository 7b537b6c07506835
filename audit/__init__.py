"""corpus-audit: how much text portraying AI as misaligned a pretraining corpus holds, and where.

The command line is a thin layer over these functions::

    import audit
    outcome = audit.scan(["data/fineweb/"], "runs/cc24", workers=2)
    print(outcome.summary["labels"]["misaligned_ai"]["prevalence"]["documents"])
    audit.report("runs/cc24")

Modules are imported on first use, so ``import audit`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .version import __version__ as __version__

if TYPE_CHECKING:
    from .pipeline import ScanOutcome


def scan(
    inputs: list[str] | str,
    out: str | Path,
    *,
    preset: str | None = None,
    columns: dict[str, str] | None = None,
    model: str | None = None,
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    sample_rate: float = 1.0,
    seed: int = 0,
    progress: bool | None = False,
) -> ScanOutcome:
    """Scan Parquet shards into the run directory ``out`` (resuming it if unfinished). ``columns`` maps roles
    (text, id, url, date, dump, tokens) to column names, overriding the preset."""
    from .config import ScanConfig, resolve_columns
    from .pipeline import scan as run_scan

    chosen, required = resolve_columns(preset, dict(columns or {}))
    return run_scan(ScanConfig(
        inputs=[inputs] if isinstance(inputs, str) else list(inputs), out=Path(out), columns=chosen, required=required,
        model=model, workers=workers, engine=engine, ray_address=ray_address, sample_rate=sample_rate, seed=seed,
        progress=progress,
    ))


def report(run_dir: str | Path) -> tuple[Path, Path]:
    """(Re)write ``report.html`` and ``report.md`` of a run."""
    from .reporting import write_reports

    return write_reports(run_dir)


def classify(texts: list[str], model: str | None = None) -> list[dict]:
    """Label and scores of each text, classified as one passage by the model alone."""
    from .predict import classify as run_classify

    return run_classify(texts, model)


def export(run_dir: str | Path, out: str | Path, mode: str = "drop", labels: tuple[str, ...] = ("misaligned_ai",),
           min_score: float | None = None, placeholder: str = "", progress: bool | None = False):
    """Write a filtered copy of a run's shards (drop, keep, redact or annotate) plus dolma-style attribute files."""
    from .exporter import export as run_export

    return run_export(run_dir, out, mode, labels, min_score, placeholder, progress)


def sample(run_dir: str | Path, n: int, out: str | Path, seed: int = 0, target: str = "documents") -> dict:
    """Draw a stratified audit sample of passages and whole documents for people to label (JSON Lines at ``out``);
    ``target`` ("documents", "passages" or "both") is the estimate the allocation makes precise."""
    from .auditloop import sample as draw

    return draw(run_dir, n, out, seed, target)



def estimate(run_dir: str | Path, labels_file: str | Path) -> dict:
    """Prevalence estimates from a labelled audit sample; also written to ``RUN/estimate.json``."""
    from .auditloop import estimate as run_estimate

    return run_estimate(run_dir, labels_file)


def train(data: list[str | Path], out: str | Path, **options) -> dict:
    """Train a classifier from labelled JSON Lines; ``options`` are TrainOptions fields (dim, epoch, ...)."""
    from .training.fit import TrainOptions, train as fit

    return fit(data, out, TrainOptions(**options))


def evaluate(data: list[str | Path], model: str | Path | None = None):
    """Per-label precision, recall, F1, confusion matrix, PR-AUC and calibration error of a model on labelled data."""
    from .training.evaluate import evaluate as measure

    return measure(data, model)
