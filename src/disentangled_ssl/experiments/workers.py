"""Worker processes: the one place that starts them.

Both engines run their workers in a :class:`concurrent.futures.ProcessPoolExecutor` made here:
the ``spawn`` start method (no forked torch state), torch and the BLAS/OpenMP pools of each
worker limited to a fixed thread count (several 1-thread processes do more work on a small
CPU than one multi-threaded process, and they never oversubscribe the cores), and the dataset
loaded once per worker process by the pool's initializer.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import torch
from threadpoolctl import threadpool_limits

from disentangled_ssl.data.synthetic import PairedData
from disentangled_ssl.experiments.spec import DataSpec

Split = tuple[PairedData, PairedData]

#: The dataset of this worker process, loaded once by :func:`_initialize` (pool workers only).
_LOADED: dict[str, tuple[DataSpec, Split]] = {}


def worker_threads(workers: int, requested: int | None) -> int | None:
    """Torch threads of each worker: ``requested``, else ``cpu_count // workers`` with
    several workers, else ``None`` (one process: leave the caller's setting alone)."""
    if requested is not None:
        return requested
    return max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None


@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[None]:
    """Torch and the BLAS/OpenMP pools limited to ``threads`` for the block (``None``:
    unchanged); the caller's torch setting is restored afterwards."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def _initialize(data: DataSpec, threads: int) -> None:
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # for the life of the worker process
    _LOADED["data"] = (data, data.load())


def loaded(data: DataSpec) -> Split:
    """The (train, held-out) splits of ``data``: the copy this worker process loaded at
    start-up, or a fresh load elsewhere."""
    spec, split = _LOADED.get("data", (None, None))
    if spec is not None and spec.fingerprint == data.fingerprint and split is not None:
        return split
    return data.load()


def process_pool(workers: int, data: DataSpec, threads: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each with ``threads`` threads and ``data``
    loaded (:func:`loaded` returns it there)."""
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_initialize, initargs=(data, threads))
