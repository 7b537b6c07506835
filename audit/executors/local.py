"""The local engine: units of work in ``--workers`` processes on this machine.

One worker process loads the model once (``load_cached``) and scans many units. Workers report progress per
batch through a queue; a worker that dies (killed, out of memory) breaks the pool, which is rebuilt, and the
units it held are retried.
"""

from __future__ import annotations

import multiprocessing
import queue
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..config import ScanConfig
from ..errors import UsageError
from ..reader import Unit
from ..tagger import load_cached
from . import RETRIES, describe, failure, run_unit
from .progress import Progress


def run_local(units: list[Unit], config: ScanConfig, run_root: Path, progress: Progress) -> list[dict]:
    """Run every unit; returns one outcome per unit (stats or failure)."""
    if config.workers <= 1:
        return [_with_retries(unit, config, run_root, progress) for unit in units]
    return _run_pool(units, config, run_root, progress)


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


def _init_worker(model: str | None) -> None:
    load_cached(model)


def _pool_task(unit: Unit, config: ScanConfig, run_root: str, updates: "queue.Queue[tuple[int, int]]") -> dict:
    return run_unit(unit, config, run_root, lambda docs, size: updates.put((docs, size)))


def _run_pool(units: list[Unit], config: ScanConfig, run_root: Path, progress: Progress) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    outcomes: dict[str, dict] = {}
    attempts = {unit.id: 0 for unit in units}
    pending = list(units)
    with context.Manager() as manager:
        updates = manager.Queue()
        while pending:
            with ProcessPoolExecutor(config.workers, mp_context=context, initializer=_init_worker, initargs=(config.model,)) as pool:
                futures: dict[Future, Unit] = {pool.submit(_pool_task, u, config, str(run_root), updates): u for u in pending}
                pending = []
                while futures:
                    done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(updates, progress)
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
                                futures[pool.submit(_pool_task, unit, config, str(run_root), updates)] = unit
                        else:
                            outcomes[unit.id] = failure(unit, describe(error))
            _drain(updates, progress)
    return [outcomes[unit.id] for unit in units]


def _drain(updates: "queue.Queue[tuple[int, int]]", progress: Progress) -> None:
    while True:
        try:
            docs, size = updates.get_nowait()
        except queue.Empty:
            return
        progress.advance(docs, size)
