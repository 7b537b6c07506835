"""``corpus-audit demo``: audit the bundled sample corpus end to end, offline.

The sample corpus (``corpora/sample/documents.jsonl``) is text written for the project, each document carrying the
label planted in it, so the demo can print the planted share beside the estimate.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa

from .atomic import write_json_atomic, write_parquet_atomic
from .config import ScanConfig
from .pipeline import ScanOutcome, scan
from .rundir import RunDir
from .tagger import load_cached

SHARDS = 2


def sample_documents() -> list[dict]:
    source = importlib.resources.files("audit.corpora") / "sample" / "documents.jsonl"
    return [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_sample_corpus(folder: Path) -> dict[str, int]:
    """Write the sample corpus as FineWeb-like shards (once); returns the planted label counts."""
    documents = sample_documents()
    for index in range(SHARDS):
        path = folder / f"sample-{index:05d}.parquet"
        if path.exists():
            continue
        rows = documents[index::SHARDS]
        table = pa.table({
            "text": [d["text"] for d in rows],
            "id": [d["id"] for d in rows],
            "url": [d["url"] for d in rows],
            "date": [d["date"] for d in rows],
            "dump": [d["dump"] for d in rows],
            "token_count": [len(d["text"].split()) for d in rows],
        })
        write_parquet_atomic(path, table, row_group_size=8)
    return dict(Counter(d["planted"] for d in documents))


def forget_run_of_another_model(out: Path) -> bool:
    """The demo's run directory is the demo's own: after the shipped model changes (an upgrade), scan afresh
    instead of refusing to resume with another model, as a user's scan must. Returns whether it forgot one."""
    run = RunDir(out)
    manifest = run.read_manifest()
    if manifest is None or manifest.get("model", {}).get("sha256") == load_cached().sha256:
        return False
    shutil.rmtree(run.units_dir, ignore_errors=True)
    run.manifest.unlink()
    return True


def run_demo(out: Path, progress: bool | None = None) -> ScanOutcome:
    """Write the sample shards under ``out/corpus`` and scan them into the run directory ``out``."""
    forget_run_of_another_model(out)
    run = RunDir(out)
    planted = write_sample_corpus(run.demo_corpus)
    write_json_atomic(run.demo_planted, {"documents": sum(planted.values()), "planted": planted})
    outcome = scan(ScanConfig(inputs=[str(run.demo_corpus)], out=out, progress=progress))
    total = sum(planted.values())
    print("planted in the sample corpus: " + ", ".join(f"{label} {n}/{total}" for label, n in sorted(planted.items())))
    return outcome
