"""Batches for the one training loop: from resident tensors (the fast default) or from any
``torch.utils.data`` pipeline.

The loop asks a batch source for the batches of one epoch at a time:

* :class:`TensorBatches` holds one (n, ...) tensor per modality on the training device and
  draws a fresh permutation per epoch from the loop's shuffle generator (the in-memory path;
  the last incomplete batch is dropped).
* :class:`LoaderBatches` iterates a ``DataLoader`` (or any re-iterable of batch tuples, map-style
  or iterable) as given, checks every batch (same modality count, same row count within a
  batch, the caller's per-modality checks), applies a per-batch transform (standardisation) and
  moves it to the device (non-blocking from pinned memory on a GPU, one batch ahead).
* :func:`dataset_loader` builds the loader the estimator uses for a ``Dataset``: a sampler whose
  permutation depends only on ``(seed, epoch)`` and a loader generator reseeded per epoch, so the
  data order and the worker seeds of epoch ``e`` are the same in a resumed run as in an
  uninterrupted one (exact resume for map-style datasets). Datasets with a ``get_batch(index)``
  method (e.g. :class:`~disentangled_ssl.data.readers.MultimodalDataset`) are read one batch per
  call, without per-row Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    Sampler,
    TensorDataset,
)

from disentangled_ssl._errors import DSSLError

__all__ = ["Batches", "EpochSampler", "LoaderBatches", "TensorBatches", "dataset_loader",
           "is_loader_input", "require_reiterable", "set_epoch"]

BatchCheck = Callable[[int, Tensor, int], Tensor]


class Batches(Protocol):
    """What the loop reads: ``device``, ``steps`` (batches per epoch, None when unknown) and
    ``epoch(index, shuffle)`` yielding tuples of one tensor per modality on ``device``."""

    device: torch.device

    @property
    def steps(self) -> int | None: ...

    def epoch(self, index: int, shuffle: torch.Generator) -> Iterator[tuple[Tensor, ...]]: ...


class TensorBatches:
    """Resident tensors (one (n, ...) per modality, on one device), shuffled per epoch with the
    loop's generator; ``steps = n // batch_size`` (the last incomplete batch is dropped)."""

    def __init__(self, data: Sequence[Tensor], batch_size: int) -> None:
        self.data = list(data)
        self.batch_size = int(batch_size)
        self.n_rows = int(self.data[0].shape[0])
        self.device = self.data[0].device
        if self.n_rows < self.batch_size:
            raise DSSLError(
                f"{self.n_rows} training rows is fewer than batch_size={self.batch_size}; use "
                f"batch_size <= {self.n_rows} (e.g. batch_size="
                f"{max(2, 2 ** int(np.log2(max(self.n_rows, 1))))})")

    @property
    def steps(self) -> int:
        return self.n_rows // self.batch_size

    def epoch(self, index: int, shuffle: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        order = torch.randperm(self.n_rows, generator=shuffle).to(self.device)
        b = self.batch_size
        for step in range(self.steps):
            rows = order[step * b:(step + 1) * b]
            yield tuple(x.index_select(0, rows) for x in self.data)


def require_reiterable(data: object, name: str) -> None:
    """Refuse an iterator (read once): every epoch must see the data again."""
    if iter(data) is data:  # type: ignore[call-overload]
        raise DSSLError(
            f"{name} is an iterator, which can be read only once; pass a re-iterable (a "
            "DataLoader, or an object whose __iter__ starts a new pass) so that every epoch "
            "sees the data")


def set_epoch(loader: object, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the loader, its sampler, batch sampler and dataset where they
    have one (``DistributedSampler`` and epoch-seeded datasets reshuffle with it)."""
    seen: set[int] = set()
    for obj in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                getattr(getattr(loader, "batch_sampler", None), "sampler", None),
                getattr(loader, "dataset", None)):
        method = getattr(obj, "set_epoch", None)
        if obj is not None and id(obj) not in seen and callable(method):
            seen.add(id(obj))
            method(epoch)


def _as_tensor(value: object, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise DSSLError(f"{where} is a {type(value).__name__}; every modality of a batch must be a "
                    "tensor (or numpy array) with one row per sample")


class LoaderBatches:
    """Batches of a ``DataLoader`` or any re-iterable of batch tuples, used as given.

    Args:
        loader: re-iterable yielding tuples (or lists) of one (B, ...) tensor per modality; a
            dict batch is refused (say which entries are the modalities by yielding a tuple).
        device: the training device.
        n_modalities: the modality count every batch must have (None: the first batch's).
        check: ``check(i, x, batch_index) -> x`` validates/converts modality ``i`` of a batch on
            the CPU side, before the copy (raises :class:`DSSLError`).
        transform: ``transform(i, x) -> x`` applied on the device (e.g. standardisation).
        name: what the loader is called in error messages.

    ``steps`` is ``len(loader)`` when the loader has a length, else None (iterable loaders:
    an epoch ends when the iterator does).
    """

    def __init__(self, loader: Iterable, device: torch.device, *, n_modalities: int | None = None,
                 check: BatchCheck | None = None,
                 transform: Callable[[int, Tensor], Tensor] | None = None,
                 name: str = "the data loader") -> None:
        require_reiterable(loader, name)
        self.loader = loader
        self.device = device
        self.n_modalities = n_modalities
        self.check = check
        self.transform = transform
        self.name = name
        self._non_blocking = device.type == "cuda"

    @property
    def steps(self) -> int | None:
        try:
            return len(self.loader)  # type: ignore[arg-type]
        except TypeError:
            return None

    def _batch(self, batch: object, index: int) -> tuple[Tensor, ...]:
        if isinstance(batch, dict):
            raise DSSLError(f"batch {index} of {self.name} is a dict; yield a tuple of one "
                            "tensor per modality, e.g. (x1, x2)")
        if not isinstance(batch, (tuple, list)):
            raise DSSLError(f"batch {index} of {self.name} is a {type(batch).__name__}, not a "
                            "tuple of one tensor per modality")
        if self.n_modalities is None:
            self.n_modalities = len(batch)
        if len(batch) != self.n_modalities:
            raise DSSLError(
                f"batch {index} of {self.name} has {len(batch)} modalities but earlier batches "
                f"had {self.n_modalities}; every batch must hold the same modalities")
        xs = [_as_tensor(v, f"modality {i + 1} of batch {index} of {self.name}")
              for i, v in enumerate(batch)]
        rows = [int(x.shape[0]) if x.dim() else -1 for x in xs]
        if len(set(rows)) != 1 or rows[0] < 1:
            detail = ", ".join(f"modality {i + 1} has {r}" for i, r in enumerate(rows))
            raise DSSLError(f"batch {index} of {self.name} is not paired row by row ({detail} "
                            "rows); every modality of a batch needs the same rows")
        if self.check is not None:
            xs = [self.check(i, x, index) for i, x in enumerate(xs)]
        return tuple(xs)

    def _to_device(self, xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        out = tuple(x.to(self.device, non_blocking=self._non_blocking) for x in xs)
        if self.transform is not None:
            out = tuple(self.transform(i, x) for i, x in enumerate(out))
        return out

    def epoch(self, index: int, shuffle: torch.Generator | None = None
              ) -> Iterator[tuple[Tensor, ...]]:
        """The batches of epoch ``index``; the loader's own sampler orders them (``shuffle``
        is not used)."""
        set_epoch(self.loader, index)
        pending: tuple[Tensor, ...] | None = None
        for k, batch in enumerate(self.loader):
            # One batch ahead: its (non-blocking) copy overlaps the current step on a GPU.
            ready = self._to_device(self._batch(batch, k))
            if pending is not None:
                yield pending
            pending = ready
        if pending is not None:
            yield pending

    def batches(self) -> Iterator[tuple[Tensor, ...]]:
        """One pass in the loader's order (inference)."""
        return self.epoch(0)


class EpochSampler(Sampler[int]):
    """A random permutation of ``range(n)`` that depends only on ``(seed, epoch)``
    (``set_epoch`` picks the epoch): a resumed run sees each epoch's order exactly as an
    uninterrupted run, with nothing but the epoch number saved. ``shuffle=False`` gives
    ``range(n)``."""

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle = int(n), int(seed), bool(shuffle)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


def epoch_seed(seed: int, epoch: int, salt: str = "order") -> int:
    """A 63-bit seed derived from (seed, epoch, salt), independent across epochs."""
    digest = hashlib.sha256(f"{salt}:{int(seed)}:{int(epoch)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class _BatchedFetch(Dataset):
    """Sampler items are whole index batches: ``self[index]`` is ``dataset.get_batch(index)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, index: list[int]) -> tuple[Tensor, ...]:
        if isinstance(self.dataset, TensorDataset):
            rows = torch.as_tensor(index, dtype=torch.long)
            return tuple(t.index_select(0, rows) for t in self.dataset.tensors)
        return tuple(self.dataset.get_batch(np.asarray(index, dtype=np.int64)))  # type: ignore

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class _EpochLoader:
    """A DataLoader whose generator (the workers' base seed) is reseeded per epoch."""

    def __init__(self, loader: DataLoader, seed: int, sampler: EpochSampler | None) -> None:
        self.loader, self.seed, self.sampler = loader, int(seed), sampler
        self.dataset = loader.dataset

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        if self.loader.generator is not None:
            self.loader.generator.manual_seed(epoch_seed(self.seed, epoch, "workers"))

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        return iter(self.loader)


def dataset_loader(dataset: Dataset, batch_size: int, *, seed: int, shuffle: bool = True,
                   drop_last: bool = True, num_workers: int = 0, pin_memory: bool = False,
                   prefetch_factor: int | None = None) -> _EpochLoader:
    """The loader the estimator builds for a ``Dataset`` whose item ``i`` is a tuple of
    per-modality tensors.

    Map-style datasets are drawn by an :class:`EpochSampler` (order of epoch ``e`` a function of
    ``(seed, e)``) in batches of ``batch_size`` (``drop_last`` drops the last incomplete one, as
    the in-memory path does); a dataset with ``get_batch(index)`` is read one batch per call.
    Worker seeds come from a generator reseeded from ``(seed, e)``. An ``IterableDataset`` is
    batched in its own order (it shuffles itself, if at all); one with ``yields_batches = True``
    (e.g. :class:`~disentangled_ssl.data.synthetic.SyntheticStream`) is passed through.
    """
    generator = torch.Generator().manual_seed(epoch_seed(seed, 0, "workers"))
    extra: dict[str, object] = {"num_workers": int(num_workers), "pin_memory": bool(pin_memory),
                                "generator": generator}
    if num_workers > 0:
        extra["persistent_workers"] = False
        if prefetch_factor is not None:
            extra["prefetch_factor"] = int(prefetch_factor)
    if isinstance(dataset, IterableDataset):
        # A dataset whose items are whole batches (``yields_batches``) is not batched again.
        batching = ({"batch_size": None} if getattr(dataset, "yields_batches", False)
                    else {"batch_size": batch_size, "drop_last": drop_last})
        loader = DataLoader(dataset, **batching, **extra)
        return _EpochLoader(loader, seed, None)
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError as exc:
        raise DSSLError(f"the {type(dataset).__name__} has no len(); a map-style Dataset needs "
                        "__len__ (or make it an IterableDataset)") from exc
    if n < batch_size and drop_last:
        raise DSSLError(f"the dataset has {n} rows, fewer than batch_size={batch_size}; set "
                        f"batch_size <= {n}")
    sampler = EpochSampler(n, seed, shuffle=shuffle)
    if callable(getattr(dataset, "get_batch", None)) or isinstance(dataset, TensorDataset):
        batches = BatchSampler(sampler, batch_size, drop_last=drop_last)
        loader = DataLoader(_BatchedFetch(dataset), sampler=batches, batch_size=None, **extra)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                            drop_last=drop_last, **extra)
    return _EpochLoader(loader, seed, sampler)


def is_loader_input(x: object) -> bool:
    """Whether ``x`` is a Dataset, a DataLoader or another re-iterable of batches (as opposed
    to an array or a list of per-modality arrays)."""
    if isinstance(x, (Dataset, DataLoader, _EpochLoader)):
        return True
    if isinstance(x, (np.ndarray, Tensor, list, tuple, str, bytes, dict)):
        return False
    return hasattr(x, "__iter__") and not hasattr(x, "__array__")
