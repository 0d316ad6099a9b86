"""The scikit-learn style front: ``DisentangledSSL(...).fit(X1, X2).transform(X1, X2)``."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.base import BaseEstimator

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._validation import (
    as_feature_matrix,
    check_constant_columns,
    check_nonnegative,
    check_paired,
    check_positive_int,
)
from disentangled_ssl._version import __version__
from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.methods import disentangled_ssl_stages, exponential_schedule
from disentangled_ssl.models import MultimodalModel
from disentangled_ssl.training.loop import TrainConfig, resolve_device, train_stage

MODEL_FORMAT = "disentangled-ssl-model"
MODEL_FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class Embeddings:
    """Embeddings of M paired modalities (numpy float32, one row per input row).

    Attributes:
        shared_list: per modality, (n, shared_dim) deterministic shared codes.
        specific_list: per modality, (n, specific_dim) specific codes (empty if not fitted).
    """

    shared_list: list[np.ndarray]
    specific_list: list[np.ndarray]

    @property
    def shared1(self) -> np.ndarray:
        return self.shared_list[0]

    @property
    def shared2(self) -> np.ndarray:
        return self.shared_list[1]

    @property
    def specific1(self) -> np.ndarray:
        return self._specific(0)

    @property
    def specific2(self) -> np.ndarray:
        return self._specific(1)

    @property
    def shared(self) -> np.ndarray:
        """All modalities' shared codes side by side: (n, M · shared_dim)."""
        return np.concatenate(self.shared_list, axis=1)

    def _specific(self, i: int) -> np.ndarray:
        if not self.specific_list:
            raise DSSLError(
                "no specific representation: the specific step was not trained "
                "(specific_epochs=0 or a shared-only method)"
            )
        return self.specific_list[i]

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{"shared1": ..., "shared2": ..., "specific1": ..., ...}``."""
        out = {f"shared{i + 1}": s for i, s in enumerate(self.shared_list)}
        out.update({f"specific{i + 1}": s for i, s in enumerate(self.specific_list)})
        return out


class DisentangledSSL(BaseEstimator):
    """DisentangledSSL (Wang et al., "An Information Criterion for Controlled Disentanglement
    of Multimodal Data", ICLR 2025, arXiv 2410.23996).

    Step 1 trains one shared encoder per modality with symmetric InfoNCE between von
    Mises–Fisher samples plus ``beta`` × alignment; step 2 freezes them and trains one specific
    encoder per modality with a self-contrastive InfoNCE plus ``lam`` × orthogonality.

    Args:
        beta: step-1 dial: weight of the alignment term (larger drops more modality-private
            information from the shared code, and past a point shared information too).
        lam: step-2 dial: weight of the orthogonality penalty between specific and shared codes.
        shared_dim, specific_dim: embedding sizes.
        hidden_dim, n_hidden_layers: width and depth of the default MLP encoders.
        shared_epochs, specific_epochs: epochs of step 1 and step 2 (0 skips a step).
        batch_size: rows per step (also the number of InfoNCE negatives + 1).
        lr: Adam learning rate, cosine-annealed per step.
        kappa: vMF concentration of the step-1 posterior.
        temperature: InfoNCE temperature.
        noise_std, drop_fraction: augmentation strengths (Gaussian noise / zeroed features).
        beta_warmup_steps: if > 0, β ramps log-linearly from β/1000 to β over this many steps.
        random_state: seed (None draws one, stored as ``seed_``).
        device: "auto", "cpu", "cuda", "cuda:1", …
        verbose: show progress bars.

    Attributes (after fit):
        model_: the :class:`~disentangled_ssl.models.MultimodalModel`.
        history_: stage name -> per-epoch dicts of every loss term.
        n_features_in_: features per modality.
        seed_: the seed used.

    Example:
        >>> from disentangled_ssl import DisentangledSSL, make_synthetic
        >>> data = make_synthetic(n_samples=512, seed=0)
        >>> est = DisentangledSSL(shared_epochs=1, specific_epochs=1, random_state=0,
        ...                       verbose=False).fit(data.x1, data.x2)
        >>> est.transform(data.x1, data.x2).specific1.shape
        (512, 100)
    """

    def __init__(
        self,
        beta: float = 1.0,
        lam: float = 1.0,
        shared_dim: int = 100,
        specific_dim: int = 100,
        hidden_dim: int = 512,
        shared_epochs: int = 50,
        specific_epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-4,
        kappa: float = 1000.0,
        random_state: int | None = None,
        device: str = "auto",
        n_hidden_layers: int = 1,
        temperature: float = 0.07,
        noise_std: float = 0.01,
        drop_fraction: float = 0.1,
        beta_warmup_steps: int = 0,
        verbose: bool = True,
    ) -> None:
        self.beta = beta
        self.lam = lam
        self.shared_dim = shared_dim
        self.specific_dim = specific_dim
        self.hidden_dim = hidden_dim
        self.shared_epochs = shared_epochs
        self.specific_epochs = specific_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.kappa = kappa
        self.random_state = random_state
        self.device = device
        self.n_hidden_layers = n_hidden_layers
        self.temperature = temperature
        self.noise_std = noise_std
        self.drop_fraction = drop_fraction
        self.beta_warmup_steps = beta_warmup_steps
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        check_nonnegative("beta", self.beta)
        check_nonnegative("lam", self.lam)
        check_nonnegative("lr", self.lr, positive=True)
        check_nonnegative("kappa", self.kappa, positive=True)
        check_nonnegative("temperature", self.temperature, positive=True)
        check_nonnegative("noise_std", self.noise_std)
        check_nonnegative("drop_fraction", self.drop_fraction)
        for name in ("shared_dim", "specific_dim", "hidden_dim", "batch_size"):
            check_positive_int(name, getattr(self, name))
        for name in ("shared_epochs", "specific_epochs", "n_hidden_layers", "beta_warmup_steps"):
            check_positive_int(name, getattr(self, name), allow_zero=True)
        if self.batch_size < 2:
            raise DSSLError("batch_size must be >= 2: contrastive losses need negatives")
        if self.random_state is not None:
            check_positive_int("random_state", self.random_state, allow_zero=True)

    def _check_inputs(self, arrays: tuple[object, ...], *, fitting: bool) -> list[np.ndarray]:
        names = [f"X{i + 1}" for i in range(len(arrays))]
        if len(arrays) < 2:
            raise DSSLError(f"need at least two modalities, got {len(arrays)}")
        out = [as_feature_matrix(a, n) for a, n in zip(arrays, names)]
        check_paired(out, names)
        if fitting:
            for a, n in zip(out, names):
                check_constant_columns(a, n)
            if out[0].shape[0] < self.batch_size:
                n = out[0].shape[0]
                suggestion = 2 ** max(1, int(np.log2(n)))
                raise DSSLError(
                    f"X1 has {n} rows, fewer than batch_size={self.batch_size}; set "
                    f"batch_size={suggestion} (or another value <= {n})"
                )
        else:
            self._check_fitted()
            if len(out) != len(self.n_features_in_):
                raise DSSLError(
                    f"the model was fitted on {len(self.n_features_in_)} modalities, "
                    f"got {len(out)}"
                )
            for a, n, d in zip(out, names, self.n_features_in_):
                if a.shape[1] != d:
                    raise DSSLError(
                        f"{n} has {a.shape[1]} features but the model was fitted with {d}"
                    )
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise DSSLError(
                "this DisentangledSSL instance is not fitted yet; call fit(X1, X2) first"
            )

    # ------------------------------------------------------------------ training
    def _config(self, offset: int) -> TrainConfig:
        return TrainConfig(
            batch_size=self.batch_size, lr=float(self.lr), seed=self.seed_ + offset,
            progress=bool(self.verbose),
        )

    def _stages(self) -> dict:
        schedule = (
            exponential_schedule(self.beta / 1000.0, self.beta, self.beta_warmup_steps)
            if self.beta_warmup_steps > 0 and self.beta > 0 else None
        )
        augment = VectorAugment(self.noise_std, self.drop_fraction)
        stages = disentangled_ssl_stages(
            self.model_, augment, beta=float(self.beta), lam=float(self.lam),
            kappa=float(self.kappa), temperature=float(self.temperature),
            shared_epochs=max(self.shared_epochs, 1), specific_epochs=max(self.specific_epochs, 1),
            beta_schedule=schedule,
        )
        return {s.name: s for s in stages}

    def _tensors(self, arrays: list[np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(self._device) for a in arrays]

    def fit(self, X1: object, X2: object, *more: object) -> DisentangledSSL:
        """Train step 1 then step 2 on paired rows; returns ``self``.

        Args:
            X1, X2 (, X3, …): arrays of shape (n, d_i); row k of each is the same sample.
        """
        self.fit_shared(X1, X2, *more)
        if self.specific_epochs > 0:
            self.fit_specific(X1, X2, *more)
        return self

    def fit_shared(self, X1: object, X2: object, *more: object) -> DisentangledSSL:
        """Train (from scratch) only step 1, the shared encoders; returns ``self``."""
        self._check_params()
        arrays = self._check_inputs((X1, X2, *more), fitting=True)
        self.seed_ = (
            int(self.random_state) if self.random_state is not None
            else int(np.random.SeedSequence().entropy % (2**31))
        )
        self._device = resolve_device(self.device)
        self.n_features_in_ = [a.shape[1] for a in arrays]
        torch.manual_seed(self.seed_)
        self.model_ = MultimodalModel(
            self.n_features_in_, self.shared_dim, self.specific_dim, self.hidden_dim,
            self.n_hidden_layers,
        ).to(self._device)
        self.history_: dict[str, list[dict[str, float]]] = {}
        if self.shared_epochs > 0:
            self.history_["shared"] = train_stage(
                self._stages()["shared"], self._tensors(arrays), self._config(0)
            )
        return self

    def fit_specific(self, X1: object, X2: object, *more: object) -> DisentangledSSL:
        """Train (from a fresh initialisation) only step 2 on top of the fitted shared
        encoders; returns ``self``. Use it to sweep ``lam`` without retraining step 1."""
        self._check_params()
        self._check_fitted()
        arrays = self._check_inputs((X1, X2, *more), fitting=True)
        if [a.shape[1] for a in arrays] != self.n_features_in_:
            raise DSSLError(
                f"features per modality {[a.shape[1] for a in arrays]} differ from the fitted "
                f"{self.n_features_in_}"
            )
        self._device = resolve_device(self.device)
        # Re-initialise the specific encoders deterministically from the seed.
        torch.manual_seed(self.seed_ + 1)
        fresh = MultimodalModel(
            self.n_features_in_, self.shared_dim, self.specific_dim, self.hidden_dim,
            self.n_hidden_layers,
        )
        self.model_.specific = fresh.specific.to(self._device)
        self.history_["specific"] = train_stage(
            self._stages()["specific"], self._tensors(arrays), self._config(1)
        )
        return self

    def with_params(self, **params: object) -> DisentangledSSL:
        """A deep copy of this fitted estimator with some parameters changed (e.g. ``lam``),
        ready for :meth:`fit_specific`."""
        self._check_fitted()
        other = copy.deepcopy(self)
        other.set_params(**params)
        return other

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def transform(self, X1: object, X2: object, *more: object,
                  batch_size: int = 8192) -> Embeddings:
        """Embed paired rows: returns :class:`Embeddings` with ``shared1``, ``shared2``,
        ``specific1``, ``specific2`` (numpy float32, one row per input row)."""
        arrays = self._check_inputs((X1, X2, *more), fitting=False)
        model = self.model_.eval()
        device = next(model.parameters()).device
        shared: list[list[np.ndarray]] = [[] for _ in arrays]
        specific: list[list[np.ndarray]] = [[] for _ in arrays]
        with_specific = model.has_specific and "specific" in self.history_
        for i, a in enumerate(arrays):
            for start in range(0, a.shape[0], batch_size):
                x = torch.from_numpy(a[start : start + batch_size]).to(device)
                code = model.shared_embedding(i, x)
                shared[i].append(code.cpu().numpy())
                if with_specific:
                    specific[i].append(model.specific_embedding(i, x, code).cpu().numpy())
        return Embeddings(
            [np.concatenate(s) for s in shared],
            [np.concatenate(s) for s in specific] if with_specific else [],
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the fitted model to a folder: ``config.json`` + ``model.safetensors``.

        The folder is written under a temporary name and renamed into place, so a crash never
        leaves a half-written model. Refuses an existing path unless ``overwrite``.
        """
        self._check_fitted()
        target = Path(path)
        if target.exists() and not overwrite:
            raise DSSLError(f"{target} already exists; pass overwrite=True (CLI: --overwrite)")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            state = {k: v.detach().cpu().contiguous() for k, v in
                     self.model_.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": MODEL_FORMAT})
            config = {
                "format": MODEL_FORMAT,
                "format_version": MODEL_FORMAT_VERSION,
                "library_version": __version__,
                "params": self.get_params(),
                "n_features_in": self.n_features_in_,
                "seed": self.seed_,
                "history": self.history_,
            }
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2))
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            if target.exists():
                backup = target.with_name(f".{target.name}.old")
                shutil.rmtree(backup, ignore_errors=True)
                target.rename(backup)
                tmp.rename(target)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "auto") -> DisentangledSSL:
        """Load a model written by :meth:`save` (JSON + safetensors only; nothing is
        unpickled)."""
        folder = Path(path)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not folder.is_dir() or not config_path.is_file() or not weights_path.is_file():
            raise DSSLError(
                f"{folder} is not a saved DisentangledSSL model (expected a folder with "
                f"{CONFIG_NAME} and {WEIGHTS_NAME})"
            )
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DSSLError(
                f"{config_path} is not valid JSON ({exc}); the file is corrupt"
            ) from exc
        if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
            raise DSSLError(f"{config_path} is not a disentangled-ssl model config")
        if config.get("format_version") != MODEL_FORMAT_VERSION:
            raise DSSLError(
                f"{folder} was written in model format {config.get('format_version')!r} "
                f"(library {config.get('library_version')}); this library "
                f"({__version__}) reads format {MODEL_FORMAT_VERSION}"
            )
        try:
            params = dict(config["params"])
            params["device"] = device
            est = cls(**params)
            est._check_params()
            est.n_features_in_ = [int(d) for d in config["n_features_in"]]
            est.seed_ = int(config["seed"])
            est.history_ = config["history"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DSSLError(f"{config_path} is incomplete or invalid: {exc}") from exc
        try:
            state = load_file(str(weights_path))
        except Exception as exc:  # safetensors raises its own error types on corrupt files
            raise DSSLError(f"{weights_path} is not a readable safetensors file: {exc}") from exc
        est._device = resolve_device(device)
        model = MultimodalModel(
            est.n_features_in_, est.shared_dim, est.specific_dim, est.hidden_dim,
            est.n_hidden_layers,
        )
        expected = model.state_dict()
        if set(state) != set(expected) or any(
            state[k].shape != expected[k].shape for k in expected
        ):
            raise DSSLError(
                f"{weights_path} does not match the architecture in {config_path} (tampered or "
                "mixed-up files)"
            )
        model.load_state_dict(state)
        est.model_ = model.to(est._device).eval()
        return est
