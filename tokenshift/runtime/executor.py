"""Run a step's shards in this process or on a Ray cluster: one per-shard job, only placement differs.

A job is a picklable object with `setup()` (load models once) and `__call__(shard)` (compute the
shard, write its parquet parts, then its marker). Locally the shards run in order; on Ray they
are the rows of a Ray Data dataset mapped by a pool of stateful actors (`map_batches` with one
shard per batch), one actor per GPU (or per `cpus_per_worker` CPUs), each holding the loaded
models. The output therefore does not depend on where a shard ran.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.meter import work_starts
from tokenshift.runtime.progress import progress_bar

_CONNECT_TIMEOUT_S = 5.0
LOCAL = "local"  # `--ray` without an address: ray.init()'s default (RAY_ADDRESS, else a new local instance)


class ShardJob(Protocol):
    def setup(self) -> None: ...

    def __call__(self, shard: int) -> None: ...


@dataclass(frozen=True)
class RayPlacement:
    """Where a job's shards run on Ray: the cluster address and the actor pool's shape."""

    address: str = LOCAL
    workers: int | None = None  # None: one per GPU (cuda) or per cpus_per_worker CPUs
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0

    def __post_init__(self):
        if self.workers is not None and self.workers < 1:
            raise TokenshiftError(f"--ray-workers must be >= 1 (got {self.workers})")


def ray_placement(address: str | None, workers: int | None, device: str) -> RayPlacement | None:
    """The actor pool for `--ray ADDRESS --ray-workers N` on models placed on `device`; None without --ray.

    Ray gives each worker one GPU of its own, so a fixed GPU (cuda:N) or a model split over several
    GPUs (auto) cannot run there.
    """
    if address is None:
        return None
    if device.startswith("cuda:") or device == "auto":
        raise TokenshiftError(f"--device {device} with --ray: use --device cuda "
                              "(Ray gives each worker its own GPU)")
    return RayPlacement(address, workers, 1.0 if device == "cuda" else 0.0)


def check_visible(path: Path, flag: str) -> None:
    """A worker must see the files the driver wrote: on a cluster, a filesystem every node mounts."""
    if not path.is_file():
        raise TokenshiftError(f"{path.parent.parent} is not visible to this worker: on a cluster {flag} must "
                              "be a directory every node mounts at the same path (e.g. NFS)")


def run_shards(job: ShardJob, shards: list[int], ray: RayPlacement | None, progress: bool, desc: str) -> None:
    """Run `job` on every shard, here (ray None) or on the Ray cluster `ray` describes."""
    work_starts()  # a planned run prints its cost plan now, its checks passed
    if not shards:
        return
    if ray is None:
        job.setup()
        for shard in progress_bar(shards, desc=desc, unit="shard", disable=not progress):
            job(shard)
    else:
        _run_on_ray(job, shards, ray, progress, desc)


def check_ray(address: str) -> None:
    """Ray Data is installed and a HOST:PORT address answers (ray.init would retry for minutes)."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.data") is None:
        raise TokenshiftError("--ray needs Ray Data: pip install 'tokenshift[ray]', or run without --ray")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'local', 'auto' and the like: ray.init resolves them itself, quickly
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise TokenshiftError(f"cannot reach the Ray cluster at {address} ({error.strerror or error}): "
                              "check the address, start the cluster with `ray start --head`, or pass a bare "
                              "--ray for a local instance") from None


class _ShardActor:
    """A Ray Data map_batches worker: sets the job up on its first batch, then computes the shards it
    is handed. A TokenshiftError (bad input, with its fix) comes back as data, so the driver can print
    it as the one line it is; anything else propagates as a Ray error with its traceback."""

    def __init__(self, job: ShardJob, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.job, self.ready = job, False

    def __call__(self, batch: dict) -> dict:
        errors = []
        for shard in batch["shard"]:
            try:
                if not self.ready:
                    self.job.setup()
                    self.ready = True
                self.job(int(shard))
                errors.append("")
            except TokenshiftError as error:
                errors.append(str(error) or type(error).__name__)
        return {"shard": batch["shard"], "error": errors}


@contextmanager
def session(placement: RayPlacement | None) -> Iterator[None]:
    """Connect to Ray for the block (nothing to do without a placement, or when already connected),
    so that a bad address fails before a step writes anything; disconnect after if connected here."""
    if placement is None:
        yield
        return
    check_ray(placement.address)
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=None if placement.address == LOCAL else placement.address,
                 logging_level=logging.WARNING, log_to_driver=True)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise TokenshiftError(f"cannot connect to the Ray cluster at {placement.address!r} "
                              f"({str(error).splitlines()[0][:200]}): start one with `ray start --head` "
                              "or pass --ray without an address for a local instance") from None
    try:
        yield
    finally:
        ray.shutdown()


def _run_on_ray(job: ShardJob, shards: list[int], placement: RayPlacement, progress: bool, desc: str) -> None:
    import ray
    import ray.data

    with session(placement):
        workers = min(_workers(placement, ray.cluster_resources()), len(shards))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the shard bar below is the progress
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING if progress else logging.ERROR)
        logging.getLogger("ray.data._internal.progress").addFilter(_quiet_progress_notice)
        dataset = ray.data.from_items([{"shard": k} for k in shards], override_num_blocks=len(shards))
        mapped = dataset.map_batches(
            _ShardActor, fn_constructor_args=(job, max(1, int(placement.cpus_per_worker))),
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
            num_gpus=placement.gpus_per_worker, num_cpus=placement.cpus_per_worker)
        bar = progress_bar(total=len(shards), desc=f"{desc} (ray, {workers} workers)", unit="shard",
                           disable=not progress)
        try:
            for row in mapped.iter_rows():
                if row["error"]:
                    raise TokenshiftError(row["error"])
                bar.update(1)
        finally:
            bar.close()


def _quiet_progress_notice(record: logging.LogRecord) -> bool:
    """Drop Ray Data's notice that its own progress bars are off (they are replaced, not lost)."""
    return "Progress bars disabled" not in record.getMessage()


def _workers(placement: RayPlacement, resources: dict) -> int:
    """The actor pool size: as asked, else as many as the cluster's GPUs (or CPUs) allow."""
    if placement.workers is not None:
        return placement.workers
    if placement.gpus_per_worker:
        gpus = int(resources.get("GPU", 0) // placement.gpus_per_worker)
        if gpus < 1:
            raise TokenshiftError("--device cuda with --ray but the Ray cluster has no GPU: "
                                  "add GPU nodes, or use --device cpu")
        return gpus
    return max(1, int(resources.get("CPU", 1) // placement.cpus_per_worker))
