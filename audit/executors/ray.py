"""The Ray engine: the scan's units of work on a Ray cluster, or on a Ray started on this machine.

``--workers`` actors each own one worker process: it loads the model once (``load_cached``) and scans the units
the driver sends it, one at a time, as it becomes free. Actors push (documents, bytes) per batch to a Ray queue
that the driver drains into the progress bar. A worker process that dies (killed, out of memory, node lost) is
restarted by Ray, which runs its unit again (``max_restarts`` / ``max_task_retries``); an ordinary exception is
retried ``RETRIES`` times by the driver, as in the local engine.

Every node must see the inputs and the run directory at the same paths (a shared filesystem), or read the inputs
as object-store URIs (``s3://...``) with its own credentials. The run directory itself is a filesystem path.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from dataclasses import replace
from pathlib import Path

from ..version import __version__
from ..config import ScanConfig
from ..errors import UsageError
from ..reader import Unit
from ..tagger import load_cached
from .unit import RETRIES, describe, failure, run_unit
from .progress import Progress

INSTALL_HINT = "pip install 'corpus-audit[ray]'"
POLL_SECONDS = 0.2


class ScanWorker:
    """One Ray actor: a worker process that loads the model once and scans the units sent to it."""

    def __init__(self, config: ScanConfig, run_root: str) -> None:
        self.config = config
        self.run_root = run_root

    def ready(self) -> dict:
        """Load the model and check that this node sees the run directory; the driver checks the answer."""
        node = socket.gethostname()
        if not Path(self.run_root).is_dir():
            raise UsageError(
                f"the run directory {self.run_root} does not exist on Ray node {node}. Put --out on a filesystem "
                "that every node mounts at the same path (see docs/ray.md)."
            )
        tagger = load_cached(self.config.model)
        return {"node": node, "version": __version__, "model_sha256": tagger.sha256}

    def scan(self, unit: Unit, updates) -> dict:
        """Scan one unit, putting (documents, bytes) per batch on ``updates`` (a ray.util.queue.Queue).

        The queue comes with each call, not to the constructor: Ray warns that an actor whose constructor
        arguments live in its object store (an actor handle does) may fail to restart (ray issue 53727).
        """
        return run_unit(unit, self.config, self.run_root, lambda documents, size: updates.put((documents, size)))


def run_ray(units: list[Unit], config: ScanConfig, run_root: Path, progress: Progress) -> list[dict]:
    """Run every unit on Ray; returns one outcome per unit (stats or failure), in the order of ``units``."""
    ray = _import_ray()
    if not units:
        return []
    # Workers run elsewhere, in another working directory: hand them absolute paths.
    config = replace(config, model=str(Path(config.model).resolve()) if config.model else None)
    run_root = Path(run_root).resolve()
    started = _connect(ray, config)
    try:
        return _run_actors(ray, units, config, str(run_root), progress)
    finally:
        if started:
            ray.shutdown()


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise UsageError(
            f"--engine ray needs Ray, which is not installed ({error}). Install it with: {INSTALL_HINT}"
        ) from None
    return ray


def _connect(ray, config: ScanConfig) -> bool:
    """Join the cluster at --ray-address (or $RAY_ADDRESS), else start a Ray on this machine. True if we connected."""
    if ray.is_initialized():  # the Python API caller brought their own Ray session
        return False
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(address="local", num_cpus=config.workers, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UsageError(
            f"cannot start or join {where}: {error}. Check --ray-address (the head node's IP:port, or 'auto' on a "
            "node of the cluster), that `ray start` runs there with the same Ray and Python versions, and, for a "
            "cluster with token authentication, that RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or "
            "~/.ray/auth_token) are set here too."
        ) from None
    if ray.cluster_resources().get("CPU", 0) < 1:
        ray.shutdown()
        raise UsageError("the Ray cluster has no CPUs; every scan worker needs one (ray start --num-cpus N).")
    return True


def _check_reachable(address: str) -> None:
    """Fail fast on a head node that does not answer: Ray itself keeps retrying for minutes."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit():
        return  # 'auto' or a ray:// client address: Ray resolves those
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise UsageError(
            f"no Ray head node answers at {address} ({error}). Start one there with `ray start --head --port {port}`, "
            "or pass the right --ray-address (the address `ray start --head` printed)."
        ) from None


def _run_actors(ray, units: list[Unit], config: ScanConfig, run_root: str, progress: Progress) -> list[dict]:
    from ray.util.queue import Queue

    updates = Queue(actor_options={"num_cpus": 0})
    actor_class = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=RETRIES)(ScanWorker)
    actors = [actor_class.remote(config, run_root) for _ in range(min(config.workers, len(units)))]
    expected = {"version": __version__, "model_sha256": load_cached(config.model).sha256}
    starting = {actor.ready.remote(): actor for actor in actors}
    running: dict = {}  # object ref -> (actor, unit)
    idle: list = []
    todo = deque(units)
    attempts = {unit.id: 0 for unit in units}
    outcomes: dict[str, dict] = {}
    try:
        while todo or running:
            done, _ = ray.wait([*starting, *running], num_returns=1, timeout=POLL_SECONDS)
            _drain(updates, progress)
            for ref in done:
                if ref in starting:
                    actor = starting.pop(ref)
                    _check_worker(ray, ref, expected)
                    idle.append(actor)
                    continue
                actor, unit = running.pop(ref)
                idle.append(actor)
                outcome = _outcome(ray, ref, unit, attempts)
                if outcome is None:
                    todo.appendleft(unit)
                else:
                    outcomes[unit.id] = outcome
                    progress.unit_done()
            while idle and todo:
                actor, unit = idle.pop(), todo.popleft()
                running[actor.scan.remote(unit, updates)] = (actor, unit)
        _drain(updates, progress)
    finally:
        for actor in actors:
            ray.kill(actor)
        updates.shutdown()
    return [outcomes[unit.id] for unit in units]


def _check_worker(ray, ref, expected: dict) -> None:
    """A worker that cannot load the model, or runs another version or model than the driver, stops the run."""
    try:
        found = ray.get(ref)
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", error)  # RayTaskError carries the worker's exception
        if isinstance(cause, UsageError):
            raise cause from None
        raise UsageError(
            f"a Ray worker failed to start: {describe(cause)}. Every node needs the same corpus-audit installed "
            f"({INSTALL_HINT}) in the Python environment Ray runs there."
        ) from None
    for key, value in expected.items():
        if found[key] != value:
            raise UsageError(
                f"Ray node {found['node']} has {key} {found[key]}, this driver {value}. Install the same corpus-audit "
                "on every node, and pass --model as a path every node sees."
            )


def _outcome(ray, ref, unit: Unit, attempts: dict[str, int]) -> dict | None:
    """The unit's outcome, or None when it should run again (an ordinary error with retries left)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:  # the unit's code raised
        if isinstance(error.cause, UsageError):
            raise error.cause from None  # not the unit's fault: stop the run with the message
        if attempts[unit.id] < RETRIES:
            attempts[unit.id] += 1
            return None
        return failure(unit, describe(error.cause))
    except ray.exceptions.RayError as error:  # the worker died again and again: Ray's retries are spent
        return failure(unit, describe(error))


def _drain(updates, progress: Progress) -> None:
    waiting = updates.size()
    if waiting:
        for documents, size in updates.get_nowait_batch(waiting):
            progress.advance(documents, size)
