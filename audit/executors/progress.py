"""The progress bar: documents done, documents/s, MB/s and ETA, on stderr.

Shown on a terminal, or anywhere when ``--progress`` is given; silent otherwise (CONTRACT.md).
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total_documents: int, units: int, enabled: bool | None, desc: str = "scan") -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.perf_counter()
        self.bytes = 0
        self.units_done = 0
        self.units = units
        self.bar = tqdm(
            total=total_documents,
            unit="doc",
            unit_scale=True,
            disable=not show,
            file=sys.stderr,
            desc=desc,
            smoothing=0.1,
        )

    def advance(self, documents: int, size: int) -> None:
        self.bytes += size
        self.bar.update(documents)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(
            f"{self.bytes / elapsed / 1e6:.0f} MB/s, units {self.units_done}/{self.units}", refresh=False
        )

    def unit_done(self) -> None:
        self.units_done += 1

    def close(self) -> None:
        self.bar.close()
