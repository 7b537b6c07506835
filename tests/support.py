"""Shared test helpers: where the third-party data is, and small Parquet shards made on the fly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CORPUS_AUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARDS = SHARED_DATA / "shards"


def write_shard(path: Path, texts: list[str | None], row_group_size: int | None = None, **columns: list) -> Path:
    """A FineWeb-like shard: text, id, url (+ any extra columns)."""
    n = len(texts)
    data = {
        "text": texts,
        "id": columns.pop("id", [f"{path.stem}-{i}" for i in range(n)]),
        "url": columns.pop("url", [f"https://site{i % 7}.example.com/page/{i}" for i in range(n)]),
        **columns,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(data), path, row_group_size=row_group_size or max(n, 1))
    return path


def cli(*args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed command line in a subprocess, as a user would."""
    done = subprocess.run([sys.executable, "-m", "audit", *args], capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def load_summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())
