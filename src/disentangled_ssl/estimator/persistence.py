"""Saving, loading and checkpoint recovery of fitted estimators.

A saved model is a folder with ``config.json`` (the estimator's parameters, feature counts,
seed, history, and the SHA-256 of the weights) and ``model.safetensors`` (the weights; nothing
is pickled), plus ``decoders.safetensors`` when the model has decoders (``decoders_``; its
digest is in ``config.json`` too, and a model without decoders has no such file).
:func:`load_model` verifies the weights against the recorded digests, so a damaged or swapped
file is a :class:`~disentangled_ssl.DSSLError` naming the file.

:func:`save_model` writes the new folder under a temporary name and then swaps it into place:
on Linux with one atomic ``renameat2(RENAME_EXCHANGE)``, so the path always holds either the
old or the new complete model, even if the process is killed at any point; elsewhere with two
renames (a kill between them leaves the old model at ``.<name>.old``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file, save_file
from torch import nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import fsync_dir
from disentangled_ssl._version import __version__
from disentangled_ssl.estimator.checkpointing import restore_from
from disentangled_ssl.estimator.counterfactual import build_decoders
from disentangled_ssl.nn.custom import check_same_encoders, json_safe_params
from disentangled_ssl.nn.modalities import modality_from_dict
from disentangled_ssl.training.checkpoint import checkpoint_path, load_checkpoint
from disentangled_ssl.training.loop import resolve_device, rng_fork

if TYPE_CHECKING:
    from disentangled_ssl.estimator.estimator import DisentangledSSL

MODEL_FORMAT = "disentangled-ssl-model"
MODEL_FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DECODERS_NAME = "decoders.safetensors"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(folder)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    platform or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_folder(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` at ``target`` (replacing an existing one) so that
    ``target`` never lacks a complete version; ``new`` is gone afterwards."""
    if not target.exists():
        new.rename(target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now holds the old version
        return
    backup = target.with_name(f".{target.name}.old")
    shutil.rmtree(backup, ignore_errors=True)
    target.rename(backup)
    new.rename(target)
    shutil.rmtree(backup, ignore_errors=True)


def save_model(est: DisentangledSSL, path: str | os.PathLike[str], *,
               overwrite: bool = False) -> Path:
    """Write a fitted estimator to the folder ``path``: ``config.json`` + ``model.safetensors``.

    Refuses an existing path unless ``overwrite``; never leaves ``path`` without a complete
    model (see the module docstring). Returns the path.
    """
    est._check_fitted()
    target = Path(path)
    if target.exists() and not overwrite:
        raise DSSLError(f"{target} already exists; pass overwrite=True (CLI: --overwrite)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in est.model_.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": MODEL_FORMAT})
        decoders = getattr(est, "decoders_", None)
        if decoders is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in
                       decoders.state_dict().items()}, str(tmp / DECODERS_NAME),
                      metadata={"format": MODEL_FORMAT})
        config = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "library_version": __version__,
            "params": json_safe_params(est.get_params()),
            "n_features_in": est.n_features_in_,
            "modalities": [k.to_dict() for k in est._kinds()],
            "seed": est.seed_,
            "history": est.history_,
            "weights_sha256": file_sha256(tmp / WEIGHTS_NAME),
        }
        if decoders is not None:
            config["decoders"] = {"file": DECODERS_NAME,
                                  "sha256": file_sha256(tmp / DECODERS_NAME)}
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        _fsync_tree(tmp)
        replace_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_config(folder: Path) -> dict[str, Any]:
    """The validated ``config.json`` of a saved model folder.

    Raises:
        DSSLError: not a model folder, invalid JSON, another format or format version.
    """
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not folder.is_dir() or not config_path.is_file() or not weights_path.is_file():
        raise DSSLError(
            f"{folder} is not a saved DisentangledSSL model (expected a folder with "
            f"{CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DSSLError(f"{config_path} is not valid JSON ({exc}); the file is corrupt") from exc
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise DSSLError(f"{config_path} is not a disentangled-ssl model config")
    if config.get("format_version") != MODEL_FORMAT_VERSION:
        raise DSSLError(
            f"{folder} was written in model format {config.get('format_version')!r} "
            f"(library {config.get('library_version')}); this library "
            f"({__version__}) reads format {MODEL_FORMAT_VERSION}"
        )
    return config


def _verify_weights(weights_path: Path, config: dict[str, Any],
                    expected: str | None = None) -> None:
    expected = expected if expected is not None else config.get("weights_sha256")
    if expected is None:  # written before digests were recorded
        return
    if file_sha256(weights_path) != expected:
        raise DSSLError(
            f"{weights_path} is damaged or not the file this model saved: its SHA-256 differs "
            f"from the one recorded in {weights_path.parent / CONFIG_NAME}; save the model "
            "again or restore the file"
        )


def load_model(cls: type[DisentangledSSL], path: str | os.PathLike[str], *,
               device: str = "auto", shared_encoders: list[nn.Module] | None = None,
               specific_encoders: list[nn.Module] | None = None) -> DisentangledSSL:
    """Load a model written by :func:`save_model` (JSON + safetensors only; nothing is
    unpickled), after checking the weights' SHA-256. A model fitted with custom encoders
    needs the same module classes passed again (their weights come from the file).

    Raises:
        DSSLError: a missing, damaged, tampered or other-version file, or other encoders.
    """
    folder = Path(path)
    config = read_config(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    saved = config.get("params") if isinstance(config.get("params"), dict) else {}
    custom = {"shared_encoders": shared_encoders, "specific_encoders": specific_encoders}
    for name, given in custom.items():
        check_same_encoders(name, saved.get(name), given, str(folder))
    try:
        params = dict(config["params"])
        params["device"] = device
        if isinstance(params.get("augmentations"), str):
            # Augmentations only matter for training; their code is not saved (as encoders).
            params["augmentations"] = None
        params.update({k: list(v) for k, v in custom.items() if v is not None})
        est = cls(**params)
        est.validate_params()
        est.n_features_in_ = [int(d) for d in config["n_features_in"]]
        if "modalities" in config:
            est.modalities_ = [modality_from_dict(k) for k in config["modalities"]]
        est.seed_ = int(config["seed"])
        est.history_ = config["history"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DSSLError(f"{config_path} is incomplete or invalid: {exc}") from exc
    _verify_weights(weights_path, config)
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types on corrupt files
        raise DSSLError(f"{weights_path} is not a readable safetensors file: {exc}") from exc
    est._device = resolve_device(device)
    est.model_ = est._model_from_state(
        state, weights_path,
        mismatch=f"{weights_path} does not match the architecture in {config_path} "
        "(tampered or mixed-up files)",
    ).eval()
    if config.get("decoders") is not None:
        _load_decoders(est, folder, config)
    return est


def _load_decoders(est: DisentangledSSL, folder: Path, config: dict[str, Any]) -> None:
    """``est.decoders_`` from ``decoders.safetensors``, verified against its recorded digest."""
    entry = config["decoders"]
    path = folder / DECODERS_NAME
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise DSSLError(f"{folder / CONFIG_NAME} has an invalid 'decoders' entry: {entry!r}")
    if not path.is_file():
        raise DSSLError(f"{folder} records decoders but {DECODERS_NAME} is missing; restore "
                        "the file, or save the model again")
    _verify_weights(path, config, entry["sha256"])
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types on corrupt files
        raise DSSLError(f"{path} is not a readable safetensors file: {exc}") from exc
    with rng_fork(est._device):  # the initial weights are overwritten: leave the RNG alone
        decoders = build_decoders(est)
    try:
        decoders.load_state_dict(state)
    except RuntimeError as exc:
        raise DSSLError(f"{path} does not match the decoders of the settings in "
                        f"{folder / CONFIG_NAME} (tampered or mixed-up files)") from exc
    est.decoders_ = decoders.to(est._device).eval()


def model_from_checkpoint(cls: type[DisentangledSSL], checkpoint_dir: str | os.PathLike[str],
                          *, device: str = "auto") -> DisentangledSSL:
    """The model as of the last checkpoint in ``checkpoint_dir`` (e.g. the last good epoch
    before a divergence), ready for ``transform``/``save``; ``history_`` holds the epochs
    up to it. Nothing is unpickled.

    Raises:
        DSSLError: no checkpoint there, or a truncated/tampered/other-version file.
    """
    path = checkpoint_path(checkpoint_dir)
    checkpoint = load_checkpoint(path)
    try:
        params = dict(checkpoint.meta["params"])
        if isinstance(params.get("augmentations"), str):
            params["augmentations"] = None
        est = cls(**{**params, "device": device, "checkpoint_dir": os.fspath(checkpoint_dir)})
        est.validate_params()
    except (KeyError, TypeError, ValueError) as exc:
        raise DSSLError(f"{path} is incomplete or invalid ({exc!r})") from exc
    restore_from(est, checkpoint, path)
    est.history_[checkpoint.stage] = list(checkpoint.loop.history)
    est.model_.eval()
    return est
