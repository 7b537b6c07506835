"""Executors run the scan's units of work. They own parallelism, retries and progress, and commit each unit's
results through `audit.rundir.RunDir` (which owns the completion markers); the scan step
(`audit.scanner.scan_unit`) knows none of that.

An engine is made from the scan's config before planning (so it can start its workers meanwhile), is called with
the pending units and returns one outcome per unit (see `audit.executors.unit.run_unit`, the task every engine
runs). Engines are registered here by name; each factory imports its engine on first use, so that importing this
registry (the CLI does, for ``--engine``) imports neither the scan nor Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import UsageError

if TYPE_CHECKING:
    from ..config import ScanConfig
    from ..reader import Unit
    from .progress import Progress


class Engine(Protocol):
    """What a scan needs of an engine. An engine that holds workers between calls also has ``close()``, which the
    scan calls when it ends."""

    def __call__(self, units: list[Unit], config: ScanConfig, run_root: Path, progress: Progress) -> list[dict]:
        """Run every unit; one outcome per unit, in the order of ``units``: ``{"unit", "stats", ...}`` or a
        failure ``{"unit", "input", "error"}``."""
        ...


EngineFactory = Callable[["ScanConfig"], Engine]


def _local(config: ScanConfig) -> Engine:
    from .local import LocalEngine

    return LocalEngine(config)


def _ray(config: ScanConfig) -> Engine:
    from .ray import run_ray

    return run_ray


# name -> factory: an entry added here is an ``--engine`` choice and an ``audit.scan(..., engine=name)``
ENGINES: dict[str, EngineFactory] = {"local": _local, "ray": _ray}


def make_engine(config: ScanConfig) -> Engine:
    """The engine ``config.engine`` names."""
    factory = ENGINES.get(config.engine)
    if factory is None:
        raise UsageError(f"unknown engine {config.engine!r}; use {' or '.join(ENGINES)}")
    return factory(config)
