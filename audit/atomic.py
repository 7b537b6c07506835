"""Write-then-rename helpers, so a run directory never holds a partial file.

A writer writes to a hidden temporary file beside the target and renames it into place; a crash leaves
at most a ``.tmp-*`` file, which :func:`clean_temporaries` removes when the run is resumed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``.

    >>> write_atomic("out.txt", lambda tmp: Path(tmp).write_text("hello"))  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared like any other file
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def write_parquet_atomic(path: str | Path, table: Any, **options: Any) -> Path:
    """Write a pyarrow Table (zstd unless ``compression`` is given)."""
    import pyarrow.parquet as pq

    options.setdefault("compression", "zstd")
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp, **options))


def clean_temporaries(directory: str | Path) -> int:
    """Remove temporaries left by a killed writer; returns how many were removed."""
    removed = 0
    for tmp in Path(directory).rglob(TMP_PREFIX + "*"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed
