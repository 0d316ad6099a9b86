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
from torch import nn

from disentangled_ssl._errors import DSSLError, TrainingDivergedError
from disentangled_ssl._validation import (
    check_constant_columns,
    check_nonnegative,
    check_paired,
    check_positive_int,
)
from disentangled_ssl._version import __version__
from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.data.scaling import apply_scaler, attach_scaler, fit_scaler
from disentangled_ssl.method_registry import (
    DEFAULT_METHOD,
    MethodConfig,
    ModelShape,
    get_method,
    method_names,
)
from disentangled_ssl.methods import disentangled_ssl_stages, exponential_schedule
from disentangled_ssl.models import MultimodalModel
from disentangled_ssl.nn.custom import (
    ENCODER_PARAMS,
    as_encoder_input,
    check_encoders,
    check_same_encoders,
    json_safe_params,
    n_flat_features,
)
from disentangled_ssl.training.checkpoint import (
    Checkpoint,
    check_resumable,
    checkpoint_path,
    data_fingerprint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from disentangled_ssl.training.loop import (
    LoopState,
    TrainConfig,
    resolve_device,
    train_stage,
)

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
        method: the method that produced them (names it in errors).
    """

    shared_list: list[np.ndarray]
    specific_list: list[np.ndarray]
    method: str = DEFAULT_METHOD

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
        if not self.specific_list and self.method in _shared_only_methods():
            with_specific = [m for m in method_names() if m not in _shared_only_methods()]
            raise DSSLError(
                f"method {self.method!r} learns no specific representation (it is "
                "shared-only); use shared1/shared2, or fit a method with specific codes: "
                + ", ".join(with_specific)
            )
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


def _shared_only_methods() -> list[str]:
    return [m for m in method_names() if not get_method(m).has_specific]


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
        checkpoint_dir: if set, every epoch of every stage ends with an atomic checkpoint
            ``<checkpoint_dir>/checkpoint.safetensors`` (weights, Adam, LR schedule, RNG states,
            history); ``fit(..., resume=True)`` continues from it and ends bit-identical (on
            CPU) to an uninterrupted run. See ``docs/reliability.md``.
        method: "disentangled_ssl" (default, the two steps above) or a baseline trained through
            the same loop, data handling, evaluation and save/load: "clip", "simclr",
            "joint" (JointOpt), "focal" (FOCAL), "dmvae" (DMVAE) or "factorcl" (FactorCL); see
            ``docs/baselines.md``. clip and simclr have no specific representation.
        alpha: the baselines' dial ``a``: weight of the specific term for joint/focal, of the
            KL terms for dmvae (None: the method's default, 1 for joint/focal, 1e-5 for
            dmvae). ``lam`` is the orthogonality weight of joint and focal.
        epochs: epochs of a one-stage method (every method but disentangled_ssl); None uses
            ``shared_epochs``.
        standardize: standardise every feature with the mean/std of the training rows
            (fitted in ``fit``/``fit_shared`` only, stored as model buffers in
            ``model.safetensors`` and applied unchanged by ``transform``).
        shared_encoders, specific_encoders: optional list of one ``torch.nn.Module`` per
            modality replacing the default MLPs (shared: (B, ...) -> (B, shared_dim);
            specific: -> (B, specific_dim)); inputs may then be N-D (e.g. images
            (n, C, H, W)). Deep-copied at every fit (the objects passed in are never trained
            and start each fit from their current weights); ``load`` needs them passed again.
            method='disentangled_ssl' only. See ``docs/real-data.md``.
        condition_specific_on_shared: feed ``[x_i.flatten(), shared_i(x_i)]`` to the specific
            encoder (the authors' choice); set False for a custom specific encoder that
            reads the raw input (e.g. a CNN).
        bf16: mixed precision: run the training forward passes under
            ``torch.autocast(dtype=torch.bfloat16)`` (weights, gradients and Adam stay
            float32; vMF sampling stays float32). For GPUs with bf16 tensor cores and CPUs with
            bf16 instructions (e.g. AMD Zen 4, Intel Sapphire Rapids); results differ from
            float32 training by bf16 rounding. Off by default.

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
        checkpoint_dir: str | None = None,
        method: str = DEFAULT_METHOD,
        alpha: float | None = None,
        epochs: int | None = None,
        standardize: bool = False,
        shared_encoders: list[nn.Module] | None = None,
        specific_encoders: list[nn.Module] | None = None,
        condition_specific_on_shared: bool = True,
        bf16: bool = False,
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
        self.checkpoint_dir = checkpoint_dir
        self.method = method
        self.alpha = alpha
        self.epochs = epochs
        self.standardize = standardize
        self.shared_encoders = shared_encoders
        self.specific_encoders = specific_encoders
        self.condition_specific_on_shared = condition_specific_on_shared
        self.bf16 = bf16

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        get_method(self.method)
        for name in ENCODER_PARAMS:
            check_encoders(name, getattr(self, name))
        if self.method != DEFAULT_METHOD and (
                self.shared_encoders is not None or self.specific_encoders is not None):
            raise DSSLError(
                f"custom encoders are supported for method={DEFAULT_METHOD!r}, not "
                f"{self.method!r}")
        if self.alpha is not None:
            check_nonnegative("alpha", self.alpha)
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs)
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
        if self.checkpoint_dir is not None and not isinstance(
            self.checkpoint_dir, (str, os.PathLike)
        ):
            raise DSSLError(f"checkpoint_dir must be a folder path, got {self.checkpoint_dir!r}")
        if self.random_state is not None:
            check_positive_int("random_state", self.random_state, allow_zero=True)

    def _check_inputs(self, arrays: tuple[object, ...], *, fitting: bool) -> list[np.ndarray]:
        names = [f"X{i + 1}" for i in range(len(arrays))]
        if len(arrays) < 2:
            raise DSSLError(f"need at least two modalities, got {len(arrays)}")
        out = [as_encoder_input(a, n, custom=self.shared_encoders is not None)
               for a, n in zip(arrays, names)]
        check_paired(out, names)
        if fitting:
            for a, n in zip(out, names):
                if a.ndim == 2:  # N-D inputs (images) may have constant pixels
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
                if n_flat_features(a) != d:
                    raise DSSLError(
                        f"{n} has {n_flat_features(a)} features but the model was fitted "
                        f"with {d}"
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
            progress=bool(self.verbose), bf16=bool(self.bf16),
        )

    def _new_model(self) -> MultimodalModel:
        """A freshly initialised model of this estimator's method and sizes."""
        if self.method == DEFAULT_METHOD:
            model = MultimodalModel(
                self.n_features_in_, self.shared_dim, self.specific_dim, self.hidden_dim,
                self.n_hidden_layers,
                shared_encoders=copy.deepcopy(self.shared_encoders),
                specific_encoders=copy.deepcopy(self.specific_encoders),
                condition_specific_on_shared=self.condition_specific_on_shared,
            )
        else:
            shape = ModelShape(self.n_features_in_, self.shared_dim, self.specific_dim,
                               self.hidden_dim, self.n_hidden_layers)
            model = get_method(self.method).build_model(shape)
        if self.standardize:
            attach_scaler(model, self.n_features_in_)
        return model

    def _method_config(self) -> MethodConfig:
        spec = get_method(self.method)
        alpha = self.alpha if self.alpha is not None else spec.default_alpha
        return MethodConfig(
            beta=float(self.beta), lam=float(self.lam),
            alpha=float(alpha) if alpha is not None else 0.0, kappa=float(self.kappa),
            temperature=float(self.temperature),
            epochs=int(self.epochs if self.epochs is not None else self.shared_epochs),
        )

    def _stages(self) -> dict:
        if self.method != DEFAULT_METHOD:
            augment = VectorAugment(self.noise_std, self.drop_fraction)
            stages = get_method(self.method).build_stages(
                self.model_, augment, self._method_config())
            return {s.name: s for s in stages}
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
        return [apply_scaler(self.model_, i, torch.from_numpy(a).to(self._device))
                for i, a in enumerate(arrays)]

    def fit(self, X1: object, X2: object, *more: object, resume: bool = False) -> DisentangledSSL:
        """Train step 1 then step 2 on paired rows; returns ``self``.

        Args:
            X1, X2 (, X3, …): arrays of shape (n, d_i); row k of each is the same sample.
            resume: continue the run checkpointed in ``checkpoint_dir``: finished stages are
                skipped and the interrupted one continues after its last checkpointed epoch,
                ending bit-identical (on CPU) to an uninterrupted run. The settings and the
                data must be those of the run that wrote the checkpoint. With no checkpoint
                there yet, training starts from scratch (so a job script can always pass it).
                Without ``resume``, an existing checkpoint is refused, never overwritten.

        Raises:
            DSSLError: bad input or settings, or a checkpoint that cannot be resumed.
            TrainingDivergedError: a loss term became NaN/inf; the last good checkpoint is kept.
        """
        checkpoint = self._checkpoint_to_resume(resume)
        if checkpoint is not None:
            return self._resume(checkpoint, (X1, X2, *more))
        if self.method != DEFAULT_METHOD:
            return self._fit_method(X1, X2, *more)
        self.fit_shared(X1, X2, *more)
        if self.specific_epochs > 0:
            self.fit_specific(X1, X2, *more)
        return self

    def _start(self, inputs: tuple[object, ...]) -> list[np.ndarray]:
        """Validate, seed, and build a fresh model of the method; returns the arrays."""
        self._check_params()
        arrays = self._check_inputs(inputs, fitting=True)
        self._refuse_existing_checkpoint()
        self.seed_ = (
            int(self.random_state) if self.random_state is not None
            else int(np.random.SeedSequence().entropy % (2**31))
        )
        self._device = resolve_device(self.device)
        self.n_features_in_ = [n_flat_features(a) for a in arrays]
        torch.manual_seed(self.seed_)
        self.model_ = self._new_model().to(self._device)
        if self.standardize:  # fitted on the training rows only
            fit_scaler(self.model_, arrays)
        self.history_: dict[str, list[dict[str, float]]] = {}
        return arrays

    def _fit_method(self, *inputs: object) -> DisentangledSSL:
        """Train a baseline: its stages, in order, through the one loop."""
        arrays = self._start(inputs)
        for name in self._stages():
            self._run_stage(name, arrays)
        return self

    def _require_two_step(self, what: str) -> None:
        if self.method != DEFAULT_METHOD:
            raise DSSLError(
                f"{what} runs one of DisentangledSSL's two steps, but method={self.method!r} "
                "trains in a single stage; call fit(X1, X2) instead"
            )

    def fit_shared(self, X1: object, X2: object, *more: object) -> DisentangledSSL:
        """Train (from scratch) only step 1, the shared encoders; returns ``self``."""
        self._require_two_step("fit_shared")
        arrays = self._start((X1, X2, *more))
        if self.shared_epochs > 0:
            self._run_stage("shared", arrays)
        return self

    def fit_specific(self, X1: object, X2: object, *more: object) -> DisentangledSSL:
        """Train (from a fresh initialisation) only step 2 on top of the fitted shared
        encoders; returns ``self``. Use it to sweep ``lam`` without retraining step 1."""
        self._require_two_step("fit_specific")
        self._check_params()
        self._check_fitted()
        arrays = self._check_inputs((X1, X2, *more), fitting=True)
        if [n_flat_features(a) for a in arrays] != self.n_features_in_:
            raise DSSLError(
                f"features per modality {[n_flat_features(a) for a in arrays]} differ from "
                "the fitted "
                f"{self.n_features_in_}"
            )
        self._device = resolve_device(self.device)
        # Re-initialise the specific encoders deterministically from the seed.
        torch.manual_seed(self.seed_ + 1)
        fresh = self._new_model()
        self.model_.specific = fresh.specific.to(self._device)
        self._run_stage("specific", arrays)
        return self

    # ------------------------------------------------------------------ checkpoints
    #: Parameters that may differ between a run and its resumption.
    _RESUME_MAY_DIFFER = ("device", "verbose", "checkpoint_dir")
    _STAGE_SEED_OFFSET = {"shared": 0, "specific": 1}

    def _run_params(self) -> dict[str, object]:
        return {k: v for k, v in json_safe_params(self.get_params()).items()
                if k not in self._RESUME_MAY_DIFFER}

    def _run_stage(
        self, name: str, arrays: list[np.ndarray], resume: LoopState | None = None
    ) -> None:
        """Train stage ``name`` through the one loop into ``history_[name]``, writing a
        checkpoint after every epoch when ``checkpoint_dir`` is set."""
        callback = None
        if self.checkpoint_dir is not None:
            path = checkpoint_path(self.checkpoint_dir)
            meta = {
                "params": self._run_params(), "seed": self.seed_,
                "n_features_in": list(self.n_features_in_), "data": data_fingerprint(arrays),
                "history": {k: v for k, v in self.history_.items() if k != name},
            }

            def callback(state: LoopState) -> None:
                extra = ({"cuda_rng": torch.cuda.get_rng_state(self._device)}
                         if self._device.type == "cuda" else {})
                save_checkpoint(path, Checkpoint(name, state, self.model_.state_dict(), meta,
                                                 extra))

        try:
            self.history_[name] = train_stage(
                self._stages()[name], self._tensors(arrays),
                self._config(self._STAGE_SEED_OFFSET.get(name, 0)), resume=resume,
                on_epoch_end=callback,
            )
        except TrainingDivergedError as exc:
            if self.checkpoint_dir is None or not checkpoint_path(self.checkpoint_dir).is_file():
                raise
            path = checkpoint_path(self.checkpoint_dir)
            last = load_checkpoint(path)  # verified: the kept file is loadable
            raise TrainingDivergedError(
                f"{exc}. The last good checkpoint (stage {last.stage!r}, epoch "
                f"{last.epoch + 1}) is kept in {path}; "
                f"DisentangledSSL.from_checkpoint({os.fspath(self.checkpoint_dir)!r}) loads it"
            ) from exc

    def _refuse_existing_checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        path = checkpoint_path(self.checkpoint_dir)
        if path.exists():
            raise DSSLError(
                f"{path} holds the checkpoint of an earlier run; pass resume=True (CLI: "
                "--resume) to continue it, or delete it (CLI: --overwrite) to start again"
            )

    def _checkpoint_to_resume(self, resume: bool) -> Checkpoint | None:
        if not resume:
            return None
        self._check_params()
        if self.checkpoint_dir is None:
            raise DSSLError(
                "resume=True needs checkpoint_dir, the folder of the run to continue "
                "(CLI: --checkpoint-dir DIR --resume)"
            )
        remove_stale_temporaries(self.checkpoint_dir)
        path = checkpoint_path(self.checkpoint_dir)
        return load_checkpoint(path) if path.is_file() else None

    def _model_from_state(self, state: dict[str, torch.Tensor], path: Path,
                          mismatch: str | None = None) -> MultimodalModel:
        """The model of these settings holding ``state``; a DSSLError (``mismatch`` if given)
        when keys or shapes differ."""
        model = self._new_model()
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise DSSLError(
                mismatch or f"{path} does not match the model architecture of its settings ("
                f"{str(exc).splitlines()[0]})"
            ) from exc
        return model.to(self._device)

    def _restore_from(self, checkpoint: Checkpoint, path: Path) -> None:
        """Seed, feature counts, finished histories and weights from a checkpoint."""
        try:
            self.seed_ = int(checkpoint.meta["seed"])
            self.n_features_in_ = [int(d) for d in checkpoint.meta["n_features_in"]]
            self.history_ = {str(k): list(v) for k, v in checkpoint.meta["history"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DSSLError(f"{path} is incomplete or invalid ({exc!r})") from exc
        self._device = resolve_device(self.device)
        self.model_ = self._model_from_state(checkpoint.model, path)

    def _resume(self, checkpoint: Checkpoint, inputs: tuple[object, ...]) -> DisentangledSSL:
        arrays = self._check_inputs(inputs, fitting=True)
        path = checkpoint_path(self.checkpoint_dir)  # type: ignore[arg-type]
        check_resumable(checkpoint, path, params=self._run_params(),
                        fingerprint=data_fingerprint(arrays))
        self._restore_from(checkpoint, path)
        stages = self._stages()
        if checkpoint.stage not in stages:
            raise DSSLError(f"{path} is at stage {checkpoint.stage!r}, which this run lacks")
        if "cuda_rng" in checkpoint.extra and self._device.type == "cuda":
            torch.cuda.set_rng_state(checkpoint.extra["cuda_rng"], self._device)
        if checkpoint.epoch + 1 < stages[checkpoint.stage].epochs:
            self._run_stage(checkpoint.stage, arrays, resume=checkpoint.loop)
        else:
            self.history_[checkpoint.stage] = list(checkpoint.loop.history)
        if checkpoint.stage == "shared" and self.specific_epochs > 0:
            self.fit_specific(*arrays)
        return self

    @classmethod
    def from_checkpoint(
        cls, checkpoint_dir: str | os.PathLike[str], device: str = "auto"
    ) -> DisentangledSSL:
        """The model as of the last checkpoint in ``checkpoint_dir`` (e.g. the last good epoch
        before a divergence), ready for ``transform``/``save``; ``history_`` holds the epochs
        up to it. Nothing is unpickled.

        Raises:
            DSSLError: no checkpoint there, or a truncated/tampered/other-version file.
        """
        path = checkpoint_path(checkpoint_dir)
        checkpoint = load_checkpoint(path)
        try:
            est = cls(**dict(checkpoint.meta["params"]), device=device,
                      checkpoint_dir=os.fspath(checkpoint_dir))
            est._check_params()
        except (KeyError, TypeError, ValueError) as exc:
            raise DSSLError(f"{path} is incomplete or invalid ({exc!r})") from exc
        est._restore_from(checkpoint, path)
        est.history_[checkpoint.stage] = list(checkpoint.loop.history)
        est.model_.eval()
        return est

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
        with_specific = model.has_specific and (
            self.method != DEFAULT_METHOD or "specific" in self.history_)
        for i, a in enumerate(arrays):
            for start in range(0, a.shape[0], batch_size):
                x = apply_scaler(model, i, torch.from_numpy(a[start : start + batch_size])
                                 .to(device))
                code = model.shared_embedding(i, x)
                shared[i].append(code.cpu().numpy())
                if with_specific:
                    specific[i].append(model.specific_embedding(i, x, code).cpu().numpy())
        return Embeddings(
            [np.concatenate(s) for s in shared],
            [np.concatenate(s) for s in specific] if with_specific else [],
            method=self.method,
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
                "params": json_safe_params(self.get_params()),
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
    def load(cls, path: str | os.PathLike[str], device: str = "auto",
             shared_encoders: list[nn.Module] | None = None,
             specific_encoders: list[nn.Module] | None = None) -> DisentangledSSL:
        """Load a model written by :meth:`save` (JSON + safetensors only; nothing is
        unpickled). A model fitted with custom encoders needs the same module classes passed
        again as ``shared_encoders``/``specific_encoders`` (their weights come from the file).
        """
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
        saved = config.get("params") if isinstance(config.get("params"), dict) else {}
        custom = {"shared_encoders": shared_encoders, "specific_encoders": specific_encoders}
        for name, given in custom.items():
            check_same_encoders(name, saved.get(name), given, str(folder))
        try:
            params = dict(config["params"])
            params["device"] = device
            params.update({k: list(v) for k, v in custom.items() if v is not None})
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
        est.model_ = est._model_from_state(
            state, weights_path,
            mismatch=f"{weights_path} does not match the architecture in {config_path} "
            "(tampered or mixed-up files)",
        ).eval()
        return est
