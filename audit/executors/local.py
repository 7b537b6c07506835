"""The local engine: units of work in ``--workers`` processes on this machine.

The engine is made at the start of a scan, before planning, so that its worker processes start (interpreter,
imports, the Hyperscan database) while the main process reads the shards' footers. Each worker loads the model
once, in a background thread, while it reads and gates its first batches: the model is only needed for the first
gated document. Workers report progress per batch through a queue; a worker that dies (killed, out of memory) breaks
the pool, which is rebuilt, and the units it held are retried. With one worker, units run in this process (whose
model the pipeline loads in the background while it plans).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..config import ScanConfig
from ..errors import UsageError
from ..gate import warm_up
from ..reader import Unit
from ..tagger import load_cached
from .unit import RETRIES, describe, failure, run_unit
from .progress import Progress

_UPDATES: multiprocessing.Queue | None = None  # a worker's end of the progress queue


class LocalEngine:
    """Runs units on this machine; call it with the pending units, then ``close`` it."""

    def __init__(self, config: ScanConfig) -> None:
        self.workers = config.workers
        self.model = config.model
        self.context = multiprocessing.get_context("spawn")
        self.updates = self.context.Queue() if self.workers > 1 else None
        self.pool = self._start_pool() if self.workers > 1 else None

    def __call__(self, units: list[Unit], config: ScanConfig, run_root: Path, progress: Progress) -> list[dict]:
        """Run every unit; returns one outcome per unit (stats or failure)."""
        if self.pool is None:
            return [_with_retries(unit, config, run_root, progress) for unit in units]
        return self._run_pool(units, config, run_root, progress)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.workers, mp_context=self.context, initializer=_init_worker,
                                   initargs=(self.model, self.updates))
        for _ in range(self.workers):  # the pool spawns a process per submitted task: start them all now
            pool.submit(_started)
        return pool

    def _run_pool(self, units: list[Unit], config: ScanConfig, run_root: Path, progress: Progress) -> list[dict]:
        outcomes: dict[str, dict] = {}
        attempts = {unit.id: 0 for unit in units}
        pending = list(units)
        while pending:
            if self.pool is None:
                self.pool = self._start_pool()
            futures: dict[Future, Unit] = {self.pool.submit(_pool_task, u, config, str(run_root)): u for u in pending}
            pending = []
            while futures:
                done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(self.updates, progress)
                for future in done:
                    unit = futures.pop(future)
                    error = future.exception()
                    if error is None:
                        outcomes[unit.id] = future.result()
                        progress.unit_done()
                    elif isinstance(error, UsageError):
                        raise error
                    elif attempts[unit.id] < RETRIES:
                        attempts[unit.id] += 1
                        if isinstance(error, BrokenProcessPool):
                            pending.append(unit)
                        else:
                            futures[self.pool.submit(_pool_task, unit, config, str(run_root))] = unit
                    else:
                        outcomes[unit.id] = failure(unit, describe(error))
            if pending:  # the pool broke: start a new one for the units it held
                self.close()
        _drain(self.updates, progress)
        return [outcomes[unit.id] for unit in units]


def _with_retries(unit: Unit, config: ScanConfig, run_root: Path, progress: Progress) -> dict:
    for attempt in range(RETRIES + 1):
        try:
            outcome = run_unit(unit, config, run_root, progress.advance)
        except UsageError:
            raise  # not the unit's fault: stop the run with the message
        except Exception as error:
            if attempt < RETRIES:
                continue
            outcome = failure(unit, describe(error))
        progress.unit_done()
        return outcome
    raise AssertionError("unreachable")


def _load_in_background(model: str | None) -> None:
    """Start loading the model; the scan waits for it (``load_cached``'s lock) only when it first classifies.
    A failure is left for that first use to raise, with its message."""

    def load() -> None:
        # A failure is raised again, to the scan, by the first load_cached that needs the model.
        with contextlib.suppress(Exception):
            load_cached(model)

    threading.Thread(target=load, name="load-model", daemon=True).start()


def _init_worker(model: str | None, updates: multiprocessing.Queue) -> None:
    global _UPDATES
    _UPDATES = updates
    _load_in_background(model)
    warm_up()


def _started() -> None:
    """The task that makes the pool spawn a worker."""


def _pool_task(unit: Unit, config: ScanConfig, run_root: str) -> dict:
    return run_unit(unit, config, run_root, lambda docs, size: _UPDATES.put((docs, size)))


def _drain(updates: multiprocessing.Queue | None, progress: Progress) -> None:
    while updates is not None:
        try:
            docs, size = updates.get_nowait()
        except queue.Empty:
            return
        progress.advance(docs, size)
