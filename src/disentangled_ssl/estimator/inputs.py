"""What ``fit`` and ``transform`` accept, turned into one form: resident tensors (arrays) or a
batch source (a ``Dataset``, a ``DataLoader`` or any re-iterable of batch tuples).

* Arrays: ``fit(X1, X2)`` / ``fit([X1, X2])``; a padded sequence modality may be given as the
  pair ``(values, lengths)``. The arrays are validated once, whole, by their modality kind.
* A ``Dataset`` whose item ``i`` is a tuple of per-modality tensors: the estimator builds the
  loader (``batch_size``, ``num_workers``, an epoch-seeded order from ``random_state``).
* A ``DataLoader`` or other re-iterable of batch tuples: used as given; every batch is checked
  by the modality kinds before it reaches the model.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset, Subset

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.loaders import dataset_loader, is_loader_input, require_reiterable
from disentangled_ssl.data.sequences import pack_lengths
from disentangled_ssl.data.synthetic import split_indices
from disentangled_ssl.nn.modalities import as_kind_array


@dataclass
class Inputs:
    """Paired data in one of two forms.

    Attributes:
        tensors: per modality, all rows as a CPU tensor (arrays input), else None.
        loader: a re-iterable of batch tuples (loader input), else None.
        masked: per modality, whether it came as ``(values, lengths)`` (arrays input; a loader's
            pairs are seen batch by batch).
        source: how to name the data in messages.
        dataset: the ``Dataset`` the loader was built from (to split off validation rows).
    """

    tensors: list[Tensor] | None = None
    loader: Iterable | None = None
    masked: list[bool] | None = None
    source: str = "the data"
    dataset: Dataset | None = None

    @property
    def is_loader(self) -> bool:
        return self.loader is not None

    @property
    def names(self) -> list[str]:
        n = len(self.tensors) if self.tensors is not None else 0
        return [f"X{i + 1}" for i in range(n)]

    def first_batch(self) -> tuple[tuple[Tensor, ...], list[bool]]:
        """The loader's first batch (to resolve the modality kinds) as tensors, and which
        modalities came as ``(values, lengths)``."""
        assert self.loader is not None
        # A loader that shuffles with torch's global RNG draws from a fork seeded 0: the
        # caller's RNG is untouched and the first batch is the same in every run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            batch = next(iter(self.loader), None)
        if batch is not None:
            if not isinstance(batch, (tuple, list)):
                raise DSSLError(f"{self.source} yields {type(batch).__name__} batches; yield "
                                "a tuple of one tensor per modality, e.g. (x1, x2)")
            tensors = tuple(as_batch_tensor(v, f"modality {i + 1} of {self.source}")
                            for i, v in enumerate(batch))
            return tensors, [_is_packed(v) for v in batch]
        raise DSSLError(f"{self.source} yielded no batch")


def as_batch_tensor(value: object, name: str) -> Tensor:
    """One modality of a batch (or all rows): a tensor, a numpy array, or a padded sequence
    ``(values, lengths)`` packed with its mask channel."""
    if _is_packed(value):
        return pack_lengths(value[0], value[1], name)  # type: ignore[index]
    if isinstance(value, Tensor):
        return value
    return torch.from_numpy(np.ascontiguousarray(as_kind_array(value, name)))


def _is_lengths(lengths: object, values: object) -> bool:
    shape = getattr(lengths, "shape", None)
    rows = getattr(values, "shape", (None,))[0]
    return shape is not None and len(shape) == 1 and shape[0] == rows and len(
        getattr(values, "shape", ())) == 3


def _is_packed(value: object) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and _is_lengths(value[1], value[0]))


def read_inputs(views: tuple[object, ...], *, batch_size: int, seed: int, num_workers: int,
                pin_memory: bool, shuffle: bool = True, drop_last: bool = True) -> Inputs:
    """The views of a call (``views`` is what ``as_views`` returned, or a 1-tuple holding a
    Dataset/DataLoader)."""
    if len(views) == 1 and is_loader_input(views[0]):
        data = views[0]
        if isinstance(data, Dataset):
            loader = dataset_loader(data, batch_size, seed=seed, shuffle=shuffle,
                                    drop_last=drop_last, num_workers=num_workers,
                                    pin_memory=pin_memory)
            return Inputs(loader=loader, source=f"the {type(data).__name__}", dataset=data)
        require_reiterable(data, f"the {type(data).__name__}")  # before a batch is drawn
        return Inputs(loader=data, source=f"the {type(data).__name__}")
    if len(views) < 2:
        raise DSSLError(f"need at least two modalities, got {len(views)}")
    names = [f"X{i + 1}" for i in range(len(views))]
    tensors = [as_batch_tensor(v, n) for v, n in zip(views, names)]
    masked = [_is_packed(v) for v in views]
    return Inputs(tensors=tensors, masked=masked, source="the arrays")


def split_validation(inputs: Inputs, fraction: float, seed: int, *, batch_size: int,
                     num_workers: int, pin_memory: bool) -> tuple[Inputs, Inputs]:
    """Training and validation parts of ``inputs``: ``fraction`` of the rows (arrays, or a
    map-style Dataset), drawn with ``seed``."""
    if inputs.tensors is not None:
        n = int(inputs.tensors[0].shape[0])
        train, held = split_indices(n, fraction, seed)
        pick = [torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(held))]
        return tuple(  # type: ignore[return-value]
            Inputs(tensors=[t.index_select(0, p) for t in inputs.tensors], masked=inputs.masked,
                   source=inputs.source) for p in pick)
    dataset = inputs.dataset
    if dataset is None or isinstance(dataset, IterableDataset):
        raise DSSLError(
            f"validation_fraction splits arrays or a map-style Dataset, not {inputs.source}; "
            "pass the held-out data explicitly: fit(train_loader, validation=valid_loader)")
    train, held = split_indices(len(dataset), fraction, seed)  # type: ignore[arg-type]
    parts = []
    for rows, shuffle, drop in ((np.sort(train), True, True), (np.sort(held), False, False)):
        subset = _Rows(dataset, rows)
        loader = dataset_loader(subset, batch_size, seed=seed, shuffle=shuffle, drop_last=drop,
                                num_workers=num_workers, pin_memory=pin_memory)
        parts.append(Inputs(loader=loader, source=inputs.source, dataset=subset))
    return parts[0], parts[1]


class _Rows(Subset):
    """A Subset that keeps the dataset's batched ``get_batch`` (one read per batch)."""

    def __init__(self, dataset: Dataset, rows: np.ndarray) -> None:
        super().__init__(dataset, rows.tolist())
        self._rows = np.asarray(rows, dtype=np.int64)
        if callable(getattr(dataset, "get_batch", None)):
            self.get_batch = self._get_batch

    def _get_batch(self, index: np.ndarray) -> tuple[Tensor, ...]:
        return self.dataset.get_batch(self._rows[index])  # type: ignore[attr-defined]


def loader_fingerprint(inputs: Inputs, first: Sequence[Tensor]) -> str:
    """A resume check for loader input: the source's type, its length when it has one, and
    the bytes of its first batch (a loader is not hashed whole)."""
    h = hashlib.sha256(type(inputs.dataset or inputs.loader).__name__.encode())
    with contextlib.suppress(TypeError):
        h.update(str(len(inputs.dataset if inputs.dataset is not None
                         else inputs.loader)).encode())  # type: ignore[arg-type]
    for x in first:
        h.update(f"{x.dtype}{tuple(x.shape)}".encode())
        h.update(x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return "loader:" + h.hexdigest()
