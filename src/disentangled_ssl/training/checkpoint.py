"""Atomic, pickle-free training checkpoints.

A checkpoint is ONE ``.safetensors`` file holding everything needed to continue a stage of
:func:`~disentangled_ssl.training.loop.train_stage` exactly where it stopped:

* tensors (safetensors, never pickle): the model weights (``model/<name>``), Adam's per-parameter
  state flattened to ``optimizer/<param index>/<exp_avg|exp_avg_sq|step>``, torch's global CPU
  RNG state (``rng/torch``), the loop's shuffle-generator state (``rng/shuffle``) and any extra
  tensors of the caller (``extra/<name>``, e.g. CUDA RNG states);
* everything else as one JSON document in the safetensors header metadata (key ``payload``):
  format and version, stage name, epoch, Adam's ``param_groups``, the LR scheduler's state,
  the stage's per-epoch history and the caller's ``meta`` (the estimator stores its parameters,
  seed, data fingerprint and the histories of finished stages);
* a SHA-256 (metadata key ``sha256``) over the JSON document and every tensor's name, dtype,
  shape and bytes, so a truncated, bit-flipped or hand-edited file is refused on load.

Writes are atomic: the bytes go to a temporary file in the same folder, are flushed and
``fsync``-ed, the file is renamed over the old checkpoint with :func:`os.replace` and the folder
is ``fsync``-ed. A process killed at any moment (SIGKILL included) therefore leaves either the
previous complete checkpoint or the new complete one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_bytes_atomic
from disentangled_ssl._version import __version__
from disentangled_ssl.training.loop import LoopState

CHECKPOINT_FORMAT = "disentangled-ssl-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
#: File name of the (single, latest) checkpoint inside a checkpoint folder.
CHECKPOINT_NAME = "checkpoint.safetensors"
_TMP_PREFIX = f".{CHECKPOINT_NAME}."
_TMP_SUFFIX = ".tmp"


@dataclass
class Checkpoint:
    """One stage's state at the end of an epoch.

    Attributes:
        stage: name of the stage being trained (e.g. ``"shared"``).
        loop: the loop's :class:`~disentangled_ssl.training.loop.LoopState` (``epoch`` is the
            0-based index of the last finished epoch).
        model: the full model ``state_dict`` (CPU tensors after loading).
        meta: JSON-serialisable data of the caller (dicts, lists, str, numbers, bool, None).
        extra: extra tensors of the caller (e.g. CUDA RNG states), restored by the caller.
    """

    stage: str
    loop: LoopState
    model: dict[str, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Tensor] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """0-based index of the last finished epoch of :attr:`stage`."""
        return self.loop.epoch


def checkpoint_path(directory: str | os.PathLike[str]) -> Path:
    """The checkpoint file inside ``directory``."""
    return Path(directory) / CHECKPOINT_NAME


# ------------------------------------------------------------------------------ atomic writes
def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files left in ``directory`` by a checkpoint write that was killed."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"))
    for f in stale:
        f.unlink(missing_ok=True)
    return stale


# ------------------------------------------------------------------------------ (de)serialising
def _digest(payload: str, tensors: Mapping[str, Tensor]) -> str:
    h = hashlib.sha256(payload.encode("utf-8"))
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"\0{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _json_ready(value: Any, where: str) -> Any:
    """Check that ``value`` survives a JSON round trip (tuples become lists)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise DSSLError(f"cannot checkpoint {where}: it is not JSON-serialisable ({exc})") from exc


def _flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and a JSON document.

    Adam's ``state`` maps a parameter index to ``{"step", "exp_avg", "exp_avg_sq"}`` tensors;
    those go to ``optimizer/<index>/<name>``; non-tensor entries and ``param_groups`` to JSON.
    """
    tensors: dict[str, Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if "/" in name:
                raise DSSLError(f"cannot checkpoint optimizer state key {name!r} (contains '/')")
            if isinstance(value, Tensor):
                tensors[f"optimizer/{int(index)}/{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(int(index)), {})[name] = value
    doc = {"param_groups": state["param_groups"], "state": plain}
    return tensors, _json_ready(doc, "the optimizer state")


def _unflatten_optimizer(doc: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> dict:
    state: dict[int, dict[str, Any]] = {
        int(index): dict(entry) for index, entry in doc["state"].items()
    }
    for key, value in tensors.items():
        _, index, name = key.split("/", 2)
        state.setdefault(int(index), {})[name] = value
    groups = [dict(g) for g in doc["param_groups"]]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])  # as torch wrote it
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Atomically write ``checkpoint`` to ``path`` (see the module docstring for the format).

    Raises:
        DSSLError: a part of the state is not serialisable without pickle.
    """
    loop = checkpoint.loop
    tensors: dict[str, Tensor] = {
        f"model/{k}": v.detach().cpu().contiguous() for k, v in checkpoint.model.items()
    }
    optim_tensors, optim_doc = _flatten_optimizer(loop.optimizer)
    tensors.update(optim_tensors)
    tensors["rng/torch"] = loop.torch_rng.detach().cpu().contiguous()
    tensors["rng/shuffle"] = loop.shuffle_rng.detach().cpu().contiguous()
    tensors.update({f"extra/{k}": v.detach().cpu().contiguous()
                    for k, v in checkpoint.extra.items()})
    tensors.update({f"best/{k}": v.detach().cpu().contiguous()
                    for k, v in loop.best_state.items()})
    doc = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "library_version": __version__,
        "torch_version": torch.__version__,
        "stage": checkpoint.stage,
        "epoch": int(loop.epoch),
        "optimizer": optim_doc,
        "scheduler": _json_ready(loop.scheduler, "the LR scheduler state"),
        "history": _json_ready(loop.history, "the training history"),
        "global_step": int(loop.global_step),
        "best_epoch": int(loop.best_epoch),
        "best_loss": float(loop.best_loss) if math.isfinite(loop.best_loss) else None,
        "meta": _json_ready(checkpoint.meta, "the checkpoint meta data"),
    }
    payload = json.dumps(doc, sort_keys=True)
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_FORMAT_VERSION),
        "payload": payload,
        "sha256": _digest(payload, tensors),
    }
    return write_bytes_atomic(path, save_safetensors(tensors, metadata=metadata))


def _read_header(data: bytes, path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors buffer (validated enough to read it)."""
    if len(data) < 8:
        raise DSSLError(f"{path} is truncated ({len(data)} bytes); it is not a checkpoint")
    size = int.from_bytes(data[:8], "little")
    if 8 + size > len(data):
        raise DSSLError(
            f"{path} is truncated (header says {size} bytes, file has {len(data) - 8}); "
            "the checkpoint is corrupt"
        )
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DSSLError(f"{path} is not a safetensors checkpoint (bad header: {exc})") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise DSSLError(f"{path} is not a disentangled-ssl checkpoint (no metadata)")
    return meta


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint written by :func:`save_checkpoint`. Nothing is unpickled.

    Raises:
        DSSLError: missing, truncated, tampered (checksum mismatch), another format or another
            format version; the message names the file.
    """
    file = Path(path)
    if not file.is_file():
        raise DSSLError(f"no checkpoint at {file}")
    data = file.read_bytes()
    meta = _read_header(data, file)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise DSSLError(
            f"{file} is not a disentangled-ssl checkpoint (format {meta.get('format')!r})"
        )
    if meta.get("format_version") != str(CHECKPOINT_FORMAT_VERSION):
        raise DSSLError(
            f"{file} was written in checkpoint format {meta.get('format_version')!r}; this "
            f"library ({__version__}) reads format {CHECKPOINT_FORMAT_VERSION}: finish the run "
            "with the library that started it, or start it again"
        )
    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types on corrupt buffers
        raise DSSLError(f"{file} is corrupt ({exc})") from exc
    payload = meta.get("payload")
    if not isinstance(payload, str) or meta.get("sha256") != _digest(payload, tensors):
        raise DSSLError(
            f"{file} failed its checksum: the checkpoint was modified or corrupted; "
            "delete it and start the run again"
        )
    try:
        doc = json.loads(payload)
        groups: dict[str, dict[str, Tensor]] = {"model": {}, "optimizer": {}, "extra": {},
                                                "best": {}}
        for key, value in tensors.items():
            head, _, rest = key.partition("/")
            if head in groups:
                groups[head][rest if head != "optimizer" else key] = value
        loop = LoopState(
            epoch=int(doc["epoch"]),
            optimizer=_unflatten_optimizer(doc["optimizer"], groups["optimizer"]),
            scheduler=dict(doc["scheduler"]),
            torch_rng=tensors["rng/torch"],
            shuffle_rng=tensors["rng/shuffle"],
            history=list(doc["history"]),
            global_step=int(doc.get("global_step", 0)),
            best_epoch=int(doc.get("best_epoch", -1)),
            best_loss=(float(doc["best_loss"]) if doc.get("best_loss") is not None
                       else float("inf")),
            best_state=groups["best"],
        )
        return Checkpoint(stage=str(doc["stage"]), loop=loop, model=groups["model"],
                          meta=dict(doc["meta"]), extra=groups["extra"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DSSLError(f"{file} is incomplete or invalid ({exc!r})") from exc


# ------------------------------------------------------------------------------ run identity
def data_fingerprint(arrays: Sequence[np.ndarray]) -> str:
    """SHA-256 over the shapes, dtypes and bytes of the training arrays.

    A resumed run must see exactly the data of the run that wrote the checkpoint.
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def check_resumable(
    checkpoint: Checkpoint,
    path: Path,
    *,
    params: Mapping[str, Any],
    fingerprint: str,
    ignore: Sequence[str] = (),
) -> None:
    """Refuse a checkpoint written by a run with other settings or other data.

    Args:
        checkpoint: the loaded checkpoint; ``meta`` must hold ``params`` and ``data``.
        path: its file (for the message).
        params: the current run's parameters (JSON-comparable values).
        fingerprint: :func:`data_fingerprint` of the current run's arrays.
        ignore: parameter names that may differ (device, verbosity, the folder itself).

    Raises:
        DSSLError: naming each differing parameter, or the data mismatch.
    """
    saved = checkpoint.meta.get("params")
    if not isinstance(saved, dict):
        raise DSSLError(f"{path} holds no estimator parameters; it cannot be resumed")
    current = _json_ready(dict(params), "the estimator parameters")
    names = sorted((set(saved) | set(current)) - set(ignore))
    diffs = [f"{n}={saved.get(n)!r} there, {current.get(n)!r} here" for n in names
             if saved.get(n) != current.get(n)]
    if diffs:
        raise DSSLError(
            f"{path} was written by a run with other settings ({'; '.join(diffs)}); resume with "
            "the same settings, or use another checkpoint folder"
        )
    if checkpoint.meta.get("data") != fingerprint:
        raise DSSLError(
            f"{path} was written by a run on other data (the arrays' fingerprint differs); "
            "resume with the same input, or use another checkpoint folder"
        )
