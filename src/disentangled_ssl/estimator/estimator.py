"""The scikit-learn style front: ``DisentangledSSL(...).fit([X1, X2]).transform([X1, X2])``.

Every method, DisentangledSSL included, is built through the method registry
(:mod:`disentangled_ssl.methods`) and trained stage by stage through the one loop
(:func:`~disentangled_ssl.training.train_stage`). :meth:`DisentangledSSL.prepare_stage` is the
public seam: it validates, seeds and initialises exactly as ``fit`` does and returns what the
loop needs, so batched grids (:mod:`~disentangled_ssl.estimator.grids`) and data-parallel
training (:mod:`~disentangled_ssl.estimator.distributed`) drive the same code path.
Persistence lives in :mod:`~disentangled_ssl.estimator.persistence`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._validation import (
    check_nonnegative,
    check_paired,
    check_positive_int,
)
from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.data.loaders import Batches, LoaderBatches, TensorBatches, is_loader_input
from disentangled_ssl.data.scaling import (
    apply_scaler,
    attach_scaler,
    fit_scaler,
    fit_scaler_streaming,
)
from disentangled_ssl.estimator.checkpointing import (
    checkpoint_to_resume,
    refuse_existing_checkpoint,
    resume_fit,
    train_with_checkpoints,
)
from disentangled_ssl.estimator.counterfactual import (
    check_decodable,
    check_decoder_kinds,
    check_decoder_settings,
    counterfactual,
    drop_decoders,
    fit_decoders,
    predict_modality,
)
from disentangled_ssl.estimator.embeddings import Embeddings
from disentangled_ssl.estimator.inputs import (
    Inputs,
    loader_fingerprint,
    read_inputs,
    split_validation,
)
from disentangled_ssl.estimator.persistence import load_model, model_from_checkpoint, save_model
from disentangled_ssl.methods import (
    DEFAULT_METHOD,
    MethodSettings,
    MethodSpec,
    ModelShape,
    Stage,
    get_method,
    method_names,
)
from disentangled_ssl.methods.base import (
    Augmentations,
    check_encoder_layout,
    check_trunk_encoders,
)
from disentangled_ssl.nn.custom import ENCODER_PARAMS, check_encoders
from disentangled_ssl.nn.modalities import (
    Modality,
    Tokens,
    Vector,
    check_modalities_param,
    modality_specs,
    resolve_modalities,
)
from disentangled_ssl.nn.model import MultimodalModel
from disentangled_ssl.training.checkpoint import data_fingerprint
from disentangled_ssl.training.logging import EpochLogger
from disentangled_ssl.training.loop import LoopState, TrainConfig, resolve_device, rng_fork


class PreparedStage(NamedTuple):
    """What :func:`~disentangled_ssl.training.train_stage` needs to train one stage.

    Attributes:
        stage: the stage (objective, trainable and frozen modules, epochs) on ``model_``.
        data: one (n, ...) tensor per modality on the training device (standardised if asked;
            arrays input), or a batch source over a data loader.
        config: the loop settings (batch size, learning rate, the stage's seed, progress, bf16,
            early stopping).
        validation: held-out batches (``validation_fraction`` or ``fit(..., validation=)``),
            or None.
    """

    stage: Stage
    data: list[torch.Tensor] | Batches
    config: TrainConfig
    validation: Batches | None = None


def as_views(X1: object, X2: object, more: tuple[object, ...], what: str) -> tuple:
    """``(X1, X2, *more)``, the views of a list ``X1`` when ``X2`` is None, or ``(X1,)`` for a
    Dataset / DataLoader / re-iterable of batches."""
    if X2 is None:
        if not more and is_loader_input(X1):
            return (X1,)
        if not more and isinstance(X1, (list, tuple)):
            return tuple(X1)
        raise DSSLError(
            f"{what} needs the paired views: {what}([X1, X2, ...]) or {what}(X1, X2, ...)")
    return (X1, X2, *more)


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
        lr: Adam learning rate, cosine-annealed over each stage's epochs (stepped once per
            epoch).
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
            Every method (DMVAE puts a linear Gaussian head on them). See
            ``docs/real-data.md``.
        condition_specific_on_shared: feed ``[x_i.flatten(), shared_i(x_i)]`` to the specific
            encoder (the authors' choice); set False for a custom specific encoder that
            reads the raw input (e.g. a CNN).
        bf16: mixed precision: run the training forward passes under
            ``torch.autocast(dtype=torch.bfloat16)`` (weights, gradients and Adam stay
            float32; vMF sampling stays float32). For GPUs with bf16 tensor cores and CPUs with
            bf16 instructions (e.g. AMD Zen 4, Intel Sapphire Rapids); results differ from
            float32 training by bf16 rounding. Off by default.
        modalities: the kind of each modality: "auto" (the default: 2-D arrays are vectors,
            3-D (rows, time, features) sequences, 4-D (rows, channels, height, width)
            images), one kind for all, or one per modality: "vector", "sequence", "image",
            "tokens" (integer ids; must be declared), or a kind object with options, e.g.
            ``Tokens(vocab_size=5000, pad_id=0)``, ``Sequence(d_model=128)``. Each kind has
            its default encoders and augmentation; see ``docs/modalities.md``.
        augmentations: optional list of one ``torch.nn.Module`` (or None for the kind's
            default) per modality, mapping a (B, ...) batch to an augmented batch of the same
            shape. Deep-copied at every fit.
        validation_fraction: hold out this fraction of the training rows (arrays or a
            map-style Dataset; the same rows for every stage) and record the loss terms on
            them after every epoch as ``val_<term>`` in ``history_``; 0 holds out none
            (``fit(..., validation=...)`` gives held-out data explicitly).
        early_stopping_patience: with validation data, stop a stage when its validation loss
            has not improved for this many epochs and restore its best epoch (None: train
            every epoch).
        num_workers: worker processes of the loader built for a ``Dataset`` input.
        log_dir: if set, every epoch appends the loss terms of every stage to
            ``<log_dir>/history.csv`` (and to TensorBoard event files there when tensorboard
            is installed). Without it, a run with ``checkpoint_dir`` writes the CSV there.
        encoder_layout: "separate" (the default): one shared and one specific encoder per
            modality, for every method. "trunk" (methods dmvae and factorcl, as the authors'
            codes build them): one network per modality feeding both codes; dmvae: the
            kind's encoder (for vectors the MLP) whose last layer gives private means,
            private log-variances, shared means and shared log-variances; factorcl: the
            kind's backbone (for vectors the MLP's hidden layers) with a linear shared head
            and a linear unique head. Not with custom encoders. See ``docs/baselines.md``.
        decoder_epochs: epochs of the decoders from ``[shared_i, specific_i]`` back to each
            modality, trained by ``fit`` (and ``fit_specific``) after the encoders, with the
            encoders frozen (0, the default: no decoders; ``fit_decoders`` trains them on a
            fitted model). They give ``counterfactual`` and ``predict_modality``; for vector
            and sequence modalities and methods with specific codes. See
            ``docs/counterfactuals.md``.
        decoder_lr: Adam learning rate of the decoders (cosine-annealed over
            ``decoder_epochs``).

    Attributes (after fit):
        model_: the :class:`~disentangled_ssl.models.MultimodalModel`.
        history_: stage name -> per-epoch dicts of every loss term (``"decoder"``: the
            decoders' per-modality mean squared errors ``mse1``, ``mse2``, ...).
        decoders_: with decoders (``decoder_epochs > 0`` or :meth:`fit_decoders`), the
            :class:`~disentangled_ssl.methods.decoder.CodeDecoders`; absent otherwise.
        n_features_in_: features per modality (flattened).
        modalities_: the resolved kind of each modality (with its shape).
        seed_: the seed used.

    Example:
        >>> from disentangled_ssl import DisentangledSSL, make_synthetic
        >>> data = make_synthetic(n_samples=512, seed=0)
        >>> est = DisentangledSSL(shared_epochs=1, specific_epochs=1, random_state=0,
        ...                       verbose=False).fit([data.x1, data.x2])
        >>> est.transform([data.x1, data.x2]).specific1.shape
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
        modalities: str | tuple[str | Modality, ...] = "auto",
        augmentations: list[nn.Module | None] | None = None,
        validation_fraction: float = 0.0,
        early_stopping_patience: int | None = None,
        num_workers: int = 0,
        log_dir: str | None = None,
        encoder_layout: str = "separate",
        decoder_epochs: int = 0,
        decoder_lr: float = 1e-3,
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
        self.modalities = modalities
        self.augmentations = augmentations
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.num_workers = num_workers
        self.log_dir = log_dir
        self.encoder_layout = encoder_layout
        self.decoder_epochs = decoder_epochs
        self.decoder_lr = decoder_lr

    # ------------------------------------------------------------------ validation
    def validate_params(self) -> None:
        """Check every parameter (``fit`` does this first).

        Raises:
            DSSLError: the first bad parameter, named, with the fix.
        """
        spec = get_method(self.method)
        for name in ENCODER_PARAMS:
            check_encoders(name, getattr(self, name))
        if not spec.custom_encoders and (
                self.shared_encoders is not None or self.specific_encoders is not None):
            supported = [m for m in method_names() if get_method(m).custom_encoders]
            raise DSSLError(
                f"custom encoders are supported for methods {', '.join(supported)}, not "
                f"{self.method!r}")
        if check_encoder_layout(self.encoder_layout) not in spec.encoder_layouts:
            supported = [m for m in method_names()
                         if self.encoder_layout in get_method(m).encoder_layouts]
            raise DSSLError(
                f"encoder_layout={self.encoder_layout!r} is supported for methods "
                f"{', '.join(supported)}, not {self.method!r}")
        check_trunk_encoders(self.encoder_layout, self.shared_encoders, self.specific_encoders)
        if self.alpha is not None:
            check_nonnegative("alpha", self.alpha)
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs)
        check_nonnegative("beta", self.beta)
        check_nonnegative("lam", self.lam)
        for name in ("lr", "kappa", "temperature"):
            check_nonnegative(name, getattr(self, name), positive=True)
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
        check_modalities_param(self.modalities)
        if self.augmentations is not None and (
                not isinstance(self.augmentations, (list, tuple)) or not all(
                    a is None or isinstance(a, nn.Module) for a in self.augmentations)):
            raise DSSLError("augmentations must be a list of one torch.nn.Module (or None "
                            "for the kind's default) per modality, got "
                            f"{self.augmentations!r}")
        check_nonnegative("validation_fraction", self.validation_fraction)
        if not self.validation_fraction < 1:
            raise DSSLError(f"validation_fraction must be in [0, 1), got "
                            f"{self.validation_fraction!r}")
        if self.early_stopping_patience is not None:
            check_positive_int("early_stopping_patience", self.early_stopping_patience)
        check_positive_int("num_workers", self.num_workers, allow_zero=True)
        if self.log_dir is not None and not isinstance(self.log_dir, (str, os.PathLike)):
            raise DSSLError(f"log_dir must be a folder path, got {self.log_dir!r}")
        check_decoder_settings(self)

    def validate_views(self, views: tuple[object, ...] | list[object], *, fitting: bool
                       ) -> list[torch.Tensor]:
        """The views as validated CPU tensors (one per modality, rows paired), each checked
        by its modality kind (float32, or int64 token ids; a ``(values, lengths)`` sequence
        packed with its mask channel).

        Args:
            views: one (n, ...) array per modality.
            fitting: training data (checks the batch size; the kinds are resolved from it
                unless the model is fitted) or data for a fitted model (checks the modality
                count and each kind's shape).

        Raises:
            DSSLError: names the bad view and the fix.
        """
        inputs = read_inputs(tuple(views), batch_size=self.batch_size, seed=0,
                             num_workers=0, pin_memory=False)
        if inputs.tensors is None:
            raise DSSLError("validate_views checks arrays; a data loader is checked batch by "
                            "batch while training")
        if not fitting:
            self._check_fitted()
        return self._checked(inputs, None if fitting else self.modalities_, fitting=fitting)

    def _checked(self, inputs: Inputs, kinds: list[Modality] | None, *, fitting: bool
                 ) -> list[torch.Tensor]:
        """The arrays of ``inputs`` checked by ``kinds`` (None: resolved from them)."""
        tensors = inputs.tensors
        assert tensors is not None and inputs.masked is not None
        names = inputs.names
        check_paired(tensors, names)
        if kinds is None:
            kinds = resolve_modalities(self.modalities, tensors, names, inputs.masked)
        if len(kinds) != len(tensors):
            raise DSSLError(f"the model was fitted on {len(kinds)} modalities, got "
                            f"{len(tensors)}")
        out = [kind.check(t, name) for kind, t, name in zip(kinds, tensors, names)]
        if fitting and out[0].shape[0] < self.batch_size:
            n = out[0].shape[0]
            suggestion = 2 ** max(1, int(np.log2(n)))
            raise DSSLError(
                f"X1 has {n} rows, fewer than batch_size={self.batch_size}; set "
                f"batch_size={suggestion} (or another value <= {n})"
            )
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise DSSLError(
                "this DisentangledSSL instance is not fitted yet; call fit([X1, X2]) first"
            )

    # ------------------------------------------------------------------ method
    def _spec(self) -> MethodSpec:
        return get_method(self.method)

    def _settings(self, gather: bool = False) -> MethodSettings:
        spec = self._spec()
        alpha = self.alpha if self.alpha is not None else spec.default_alpha
        return MethodSettings(
            beta=float(self.beta), lam=float(self.lam),
            alpha=float(alpha) if alpha is not None else 0.0, kappa=float(self.kappa),
            temperature=float(self.temperature),
            epochs=int(self.epochs if self.epochs is not None else self.shared_epochs),
            shared_epochs=int(self.shared_epochs), specific_epochs=int(self.specific_epochs),
            beta_warmup_steps=int(self.beta_warmup_steps), gather=gather,
        )

    def _epochs(self, name: str) -> int:
        """Epochs of stage ``name``: ``epochs`` for a one-stage method, else
        ``shared_epochs`` / ``specific_epochs`` for the first / second stage."""
        settings, names = self._settings(), self._spec().stage_names
        if len(names) == 1:
            return settings.epochs
        return (settings.shared_epochs, settings.specific_epochs)[names.index(name)]

    def _new_model(self) -> MultimodalModel:
        """A freshly initialised model of this estimator's method, kinds and sizes (torch's
        RNG)."""
        shape = ModelShape(
            self.n_features_in_, self.shared_dim, self.specific_dim, self.hidden_dim,
            self.n_hidden_layers, shared_encoders=copy.deepcopy(self.shared_encoders),
            specific_encoders=copy.deepcopy(self.specific_encoders),
            condition_specific_on_shared=self.condition_specific_on_shared,
            modalities=self._kinds(), encoder_layout=self.encoder_layout,
        )
        model = self._spec().build_model(shape)
        if self.standardize:
            attach_scaler(model, [k.scaler_size for k in self._kinds()])
        return model

    def _kinds(self) -> list[Modality]:
        """The resolved kinds (vectors of ``n_features_in_`` for models saved before kinds)."""
        kinds = getattr(self, "modalities_", None)
        if kinds is None:
            kinds = [Vector(features=int(d)) for d in self.n_features_in_]
        return list(kinds)

    def _seeded_model(self, seed: int) -> MultimodalModel:
        with rng_fork(self._device):
            torch.manual_seed(seed)
            return self._new_model()

    def _augment(self) -> nn.Module:
        """The augmentation of every modality: the kinds' defaults (one vector augmentation
        shared by all vector modalities) or the custom modules given."""
        kinds = self._kinds()
        custom = list(self.augmentations) if self.augmentations is not None else [None] * len(
            kinds)
        if len(custom) != len(kinds):
            raise DSSLError(f"augmentations has {len(custom)} entries for {len(kinds)} "
                            "modalities; give one module (or None) per modality")
        vector = VectorAugment(self.noise_std, self.drop_fraction)
        if all(isinstance(k, Vector) for k in kinds) and all(c is None for c in custom):
            return vector
        return Augmentations([
            copy.deepcopy(c) if c is not None else vector if isinstance(k, Vector)
            else k.augmentation(self.noise_std, self.drop_fraction)
            for k, c in zip(kinds, custom)])

    # ------------------------------------------------------------------ the stage API
    def prepare_stage(self, name: str, views: tuple[object, ...] | list[object], *,
                      gather: bool = False, validation: object = None) -> PreparedStage:
        """Validate, seed and initialise for stage ``name`` exactly as ``fit`` does, and
        return what the loop needs; the caller trains it (``train_stage(*prepared)``, a
        batched ensemble, data-parallel processes) and stores the history in
        ``history_[name]``.

        The method's first stage starts a fresh model (``model_``, ``seed_``,
        ``modalities_``, ``n_features_in_``, empty ``history_``); a later stage
        (DisentangledSSL's ``specific``) re-initialises its own modules on the fitted model.
        The caller's global torch RNG is left as it was.

        Args:
            name: one of ``get_method(method).stage_names``.
            views: one (n, ...) array per modality, or a 1-tuple holding a ``Dataset`` /
                ``DataLoader`` / re-iterable of batch tuples.
            gather: data-parallel training: the losses gather over processes.
            validation: held-out data in the same form as ``views`` (None: the
                ``validation_fraction`` split, if any).

        Raises:
            DSSLError: bad settings or views, an unknown stage, a later stage before the
                first, or a later stage with 0 epochs.
        """
        self.validate_params()
        spec = self._spec()
        if name not in spec.stage_names:
            raise DSSLError(f"method {self.method!r} has no stage {name!r}; its stages are "
                            f"{', '.join(spec.stage_names)}")
        if gather and not spec.supports_gather:
            raise DSSLError(f"method {self.method!r} cannot train data-parallel; use "
                            f"{DEFAULT_METHOD!r} or a single process")
        first = name not in spec.reinit
        if first:
            refuse_existing_checkpoint(self)
            self.seed_ = (
                int(self.random_state) if self.random_state is not None
                else int(np.random.SeedSequence().entropy % (2**31))
            )
        else:
            self._check_fitted()
            if self._epochs(name) == 0:
                raise DSSLError(f"stage {name!r} has 0 epochs (specific_epochs=0): nothing to "
                                "train; set specific_epochs > 0")
        self._device = resolve_device(self.device)
        drop_decoders(self)  # trained on the encoders this stage replaces
        seed = self.seed_ + spec.stage_names.index(name)
        train, held = self._split(self._read(views, seed), validation, seed)
        train = self._start(train) if first else self._continue(name, train)
        return self._prepared(name, train, held, gather)

    def _read(self, views: tuple[object, ...] | list[object], seed: int, *,
              training: bool = True) -> Inputs:
        return read_inputs(tuple(views), batch_size=self.batch_size, seed=seed,
                           num_workers=int(self.num_workers),
                           pin_memory=self._device.type == "cuda",
                           shuffle=training, drop_last=training)

    def _split(self, inputs: Inputs, validation: object, seed: int
               ) -> tuple[Inputs, Inputs | None]:
        """Training and validation data: ``validation`` given, or the
        ``validation_fraction`` split drawn from ``seed_`` (the same rows in every stage)."""
        if validation is not None:
            views = as_views(validation, None, (), "validation")
            return inputs, self._read(views, seed, training=False)
        if self.validation_fraction > 0:
            return split_validation(inputs, float(self.validation_fraction), self.seed_,
                                    batch_size=self.batch_size, num_workers=int(self.num_workers),
                                    pin_memory=self._device.type == "cuda")
        return inputs, None

    def _start(self, inputs: Inputs) -> Inputs:
        """Resolve the kinds, build a fresh model of the method (and fit the scaler)."""
        if inputs.tensors is not None:
            self.modalities_ = resolve_modalities(self.modalities, inputs.tensors,
                                                  inputs.names, inputs.masked)
            inputs.tensors = self._checked(inputs, self.modalities_, fitting=True)
        else:
            first, masked = inputs.first_batch()
            names = [f"modality {i + 1} of {inputs.source}" for i in range(len(first))]
            if len(first) < 2:
                raise DSSLError(f"{inputs.source} yields batches of {len(first)} modality; "
                                "yield a tuple of at least two, e.g. (x1, x2)")
            for spec, name in zip(modality_specs(self.modalities, len(first)), names):
                if (spec == "tokens" or (isinstance(spec, Tokens) and spec.vocab_size is None)):
                    raise DSSLError(
                        f"{name} is declared 'tokens' but a data loader does not show its "
                        "vocabulary before training; pass modalities=(..., "
                        "Tokens(vocab_size=N), ...)")
            self.modalities_ = resolve_modalities(self.modalities, list(first), names, masked)
            self._data_hash = loader_fingerprint(inputs, first)
        self.n_features_in_ = [k.n_features for k in self.modalities_]
        self.model_ = self._seeded_model(self.seed_).to(self._device)
        if self.standardize:  # fitted on the training rows only
            if inputs.tensors is not None:
                fit_scaler(self.model_, inputs.tensors, self.modalities_)
            else:  # one pass over the loader, drawing (if it shuffles) from a seeded fork
                with rng_fork(self._device):
                    torch.manual_seed(self.seed_)
                    fit_scaler_streaming(self.model_, self._batches(inputs), self.modalities_)
        self.history_: dict[str, list[dict[str, float]]] = {}
        return inputs

    def _continue(self, name: str, inputs: Inputs) -> Inputs:
        """Fresh modules for a later stage on the fitted model (seeded from the stage)."""
        if inputs.tensors is not None:
            inputs.tensors = self._checked(inputs, self.modalities_, fitting=True)
        offset = self._spec().stage_names.index(name)
        attribute = self._spec().reinit[name]
        fresh = self._seeded_model(self.seed_ + offset)
        setattr(self.model_, attribute, getattr(fresh, attribute).to(self._device))
        return inputs

    def _batch_check(self, i: int, x: torch.Tensor, index: int) -> torch.Tensor:
        kinds = self._kinds()
        if i >= len(kinds):
            raise DSSLError(f"batch {index} has more modalities than the {len(kinds)} the model "
                            "was built for")
        return kinds[i].check(x, f"modality {i + 1} of batch {index}")

    def _batches(self, inputs: Inputs) -> LoaderBatches:
        """A checked batch source over a loader input (standardised on the device)."""
        assert inputs.loader is not None
        model = self.model_
        return LoaderBatches(inputs.loader, self._device, n_modalities=len(self.modalities_),
                             check=self._batch_check, name=inputs.source,
                             transform=lambda i, x: apply_scaler(model, i, x))

    def _device_data(self, inputs: Inputs) -> list[torch.Tensor] | LoaderBatches:
        if inputs.tensors is None:
            return self._batches(inputs)
        return [apply_scaler(self.model_, i, t.to(self._device))
                for i, t in enumerate(inputs.tensors)]

    def _prepared(self, name: str, inputs: Inputs, held: Inputs | None = None,
                  gather: bool = False) -> PreparedStage:
        if inputs.tensors is not None:
            # Checked on resume: the data must be the data of the run that wrote the checkpoint.
            self._data_hash = (data_fingerprint([t.numpy() for t in inputs.tensors])
                               if self.checkpoint_dir is not None else "")
        stages = {s.name: s for s in
                  self._spec().build_stages(self.model_, self._augment(), self._settings(gather))}
        config = TrainConfig(
            batch_size=self.batch_size, lr=float(self.lr),
            seed=self.seed_ + self._spec().stage_names.index(name),
            progress=bool(self.verbose), bf16=bool(self.bf16),
            early_stopping_patience=self.early_stopping_patience,
        )
        validation: Batches | None = None
        if held is not None:
            if held.tensors is not None:
                held.tensors = self._checked(held, self.modalities_, fitting=False)
                data = self._device_data(held)
                validation = TensorBatches(data, self.batch_size)  # type: ignore[arg-type]
            else:
                validation = self._batches(held)
        elif self.early_stopping_patience is not None:
            raise DSSLError("early_stopping_patience needs validation data: set "
                            "validation_fraction > 0 or pass fit(..., validation=...)")
        return PreparedStage(stages[name], self._device_data(inputs), config, validation)

    # ------------------------------------------------------------------ fitting
    def fit(self, X1: object, X2: object = None, *more: object, resume: bool = False,
            validation: object = None) -> DisentangledSSL:
        """Train every stage of the method on paired rows; returns ``self``.

        Args:
            X1, X2 (, X3, …): arrays of shape (n, ...) (one per modality; row k of each is the
                same sample; a padded sequence may be the pair ``(values, lengths)``), or one
                list of them, ``fit([X1, X2, ...])`` (the multiview convention; the same
                result). Or, alone: a ``torch.utils.data.Dataset`` whose item ``i`` is a tuple
                of per-modality tensors (the estimator builds the loader: ``batch_size``,
                ``num_workers``, an order seeded by ``random_state``), or a ``DataLoader`` /
                any re-iterable of batch tuples, used as given.
            resume: continue the run checkpointed in ``checkpoint_dir``: finished stages are
                skipped and the interrupted one continues after its last checkpointed epoch,
                ending bit-identical (on CPU) to an uninterrupted run (for a data loader: when
                it yields the same batches per epoch, as the loader built for a map-style
                Dataset does). The settings and the data must be those of the run that wrote
                the checkpoint. With no checkpoint there yet, training starts from scratch (so
                a job script can always pass it). Without ``resume``, an existing checkpoint is
                refused, never overwritten.
            validation: held-out data in the same form (arrays, a Dataset, a DataLoader):
                its loss terms are recorded per epoch (``val_<term>`` in ``history_``) and
                drive ``early_stopping_patience``. None uses ``validation_fraction``.

        Raises:
            DSSLError: bad input or settings, or a checkpoint that cannot be resumed.
            TrainingDivergedError: a loss term became NaN/inf; the last good checkpoint is kept.
        """
        views = as_views(X1, X2, more, "fit")
        checkpoint = checkpoint_to_resume(self, resume)
        if checkpoint is not None:
            resume_fit(self, checkpoint, views, validation)
        else:
            for name, epochs in self._planned_stages():
                prepared = self.prepare_stage(name, views, validation=validation)
                if self.decoder_epochs > 0:  # refuse undecodable kinds before any training
                    check_decoder_kinds(self, "decoder_epochs > 0")
                if epochs > 0:
                    self._train(prepared)
        return self._then_decoders(views, validation)

    def _then_decoders(self, views: tuple, validation: object) -> DisentangledSSL:
        """Train the decoders after the encoders when ``decoder_epochs > 0``."""
        if self.decoder_epochs > 0:
            fit_decoders(self, views, validation=validation)
        return self

    def _planned_stages(self) -> list[tuple[str, int]]:
        """(stage, epochs) that a fit prepares, in order: a later stage with 0 epochs is
        skipped; the first stage is always prepared (it builds the model), and trained only
        with epochs > 0."""
        spec = self._spec()
        planned = [(name, self._epochs(name)) for name in spec.stage_names]
        return [(name, e) for name, e in planned if e > 0 or name not in spec.reinit]

    def _require_two_step(self, what: str) -> None:
        if not self._spec().two_step:
            raise DSSLError(
                f"{what} runs one of DisentangledSSL's two steps, but method={self.method!r} "
                "trains in a single stage; call fit([X1, X2]) instead"
            )

    def fit_shared(self, X1: object, X2: object = None, *more: object,
                   validation: object = None) -> DisentangledSSL:
        """Train (from scratch) only step 1, the shared encoders; returns ``self``."""
        self._require_two_step("fit_shared")
        prepared = self.prepare_stage(self._spec().stage_names[0],
                                      as_views(X1, X2, more, "fit_shared"),
                                      validation=validation)
        if prepared.stage.epochs > 0:
            self._train(prepared)
        return self

    def fit_specific(self, X1: object, X2: object = None, *more: object,
                     validation: object = None) -> DisentangledSSL:
        """Train (from a fresh initialisation) only step 2 on top of the fitted shared
        encoders; returns ``self``. Use it to sweep ``lam`` without retraining step 1.

        Raises:
            DSSLError: not fitted, other feature counts, or ``specific_epochs=0``.
        """
        self._require_two_step("fit_specific")
        views = as_views(X1, X2, more, "fit_specific")
        self._train(self.prepare_stage(self._spec().stage_names[1], views,
                                       validation=validation))
        return self._then_decoders(views, validation)

    def fit_decoders(self, X1: object, X2: object = None, *more: object,
                     epochs: int | None = None, validation: object = None) -> DisentangledSSL:
        """Train, per modality i, a decoder from ``[shared_i, specific_i]`` back to ``x_i`` on
        the fitted, frozen encoders (they are not changed); returns ``self``.

        The codes are standardised per dimension with their mean and std over these rows
        (kept with the decoders). Vectors: an MLP (``hidden_dim`` × ``n_hidden_layers``),
        mean squared error; sequences: the sequence Transformer decoder, mean squared error
        over the valid steps of padded rows. With ``standardize=True`` the loss is computed
        on standardised features and outputs come back in the input's units. Trained through
        the one loop as the stage ``"decoder"`` (``history_["decoder"]``; seeded from
        ``seed_``, ``batch_size``, ``decoder_lr``, validation and early stopping as for the
        encoders; no checkpoints). Calling it again replaces the decoders; refitting an
        encoder stage drops them.

        Args:
            X1, X2 (, …): the rows to train on, as ``fit`` takes them (arrays, a list of
                them, a ``Dataset``, a ``DataLoader``).
            epochs: epochs (None: ``decoder_epochs``).
            validation: held-out data, as in ``fit``.

        Raises:
            DSSLError: not fitted; a method without specific codes (clip, simclr) or an
                untrained specific step; a modality kind without a decoder (image, tokens);
                bad views; no positive number of epochs.
        """
        check_decodable(self, "fit_decoders")
        fit_decoders(self, as_views(X1, X2, more, "fit_decoders"), epochs=epochs,
                     validation=validation)
        return self

    def with_params(self, **params: object) -> DisentangledSSL:
        """A deep copy of this fitted estimator with some parameters changed (e.g. ``lam``),
        ready for :meth:`fit_specific`."""
        self._check_fitted()
        other = copy.deepcopy(self)
        other.set_params(**params)
        return other

    # ------------------------------------------------------------------ training
    def _train(self, prepared: PreparedStage, resume: LoopState | None = None) -> None:
        """Train a prepared stage through the one loop into ``history_`` (checkpointed after
        every epoch when ``checkpoint_dir`` is set; logged to ``log_dir``, else to
        ``checkpoint_dir``, when either is set)."""
        folder = self.log_dir if self.log_dir is not None else self.checkpoint_dir
        logger = (EpochLogger(folder, prepared.stage.name, self.history_,
                              tensorboard=self.log_dir is not None)
                  if folder is not None else None)
        try:
            train_with_checkpoints(self, prepared, resume, logger)
        finally:
            if logger is not None:
                logger.close()

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

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def transform(self, X1: object, X2: object = None, *more: object,
                  batch_size: int = 8192) -> Embeddings:
        """Embed paired rows: ``transform([X1, X2])`` or ``transform(X1, X2)`` returns
        :class:`Embeddings` with ``shared1``, ``shared2``, ``specific1``, ``specific2``
        (numpy float32, one row per input row). A ``Dataset`` is read in order in batches of
        ``batch_size``; a ``DataLoader`` in its own order (it must not shuffle)."""
        self._check_fitted()
        views = as_views(X1, X2, more, "transform")
        model = self.model_.eval()
        device = next(model.parameters()).device
        inputs = read_inputs(tuple(views), batch_size=batch_size, seed=0,
                             num_workers=int(self.num_workers), pin_memory=device.type == "cuda",
                             shuffle=False, drop_last=False)
        with_specific = model.has_specific and all(
            name in self.history_ for name in self._spec().reinit)
        n_mod = len(self._kinds())
        shared: list[list[np.ndarray]] = [[] for _ in range(n_mod)]
        specific: list[list[np.ndarray]] = [[] for _ in range(n_mod)]

        def embed(i: int, x: torch.Tensor) -> None:
            code = model.shared_embedding(i, x)
            shared[i].append(code.float().cpu().numpy())
            if with_specific:
                specific[i].append(model.specific_embedding(i, x, code).float().cpu().numpy())

        if inputs.tensors is not None:
            arrays = self._checked(inputs, self._kinds(), fitting=False)
            for i, a in enumerate(arrays):
                for start in range(0, a.shape[0], batch_size):
                    embed(i, apply_scaler(model, i, a[start:start + batch_size].to(device)))
        else:
            _refuse_shuffled(inputs.loader)
            batches = LoaderBatches(inputs.loader, device, n_modalities=n_mod,
                                    check=self._batch_check, name=inputs.source,
                                    transform=lambda i, x: apply_scaler(model, i, x))
            for batch in batches.batches():
                for i, x in enumerate(batch):
                    embed(i, x)
        if not shared[0]:
            raise DSSLError("transform got no rows")
        return Embeddings(
            [np.concatenate(s) for s in shared],
            [np.concatenate(s) for s in specific] if with_specific else [],
            method=self.method,
        )

    def counterfactual(self, specific_from: list[object] | tuple[object, ...],
                       shared_from: list[object] | tuple[object, ...], *,
                       batch_size: int = 8192) -> list[np.ndarray]:
        """What each modality of the samples ``specific_from`` would look like with the shared
        content of the samples ``shared_from``, row by row.

        Row k of modality i is ``decoder_i(shared_i(b_k), specific_i(a_k))`` with
        ``a = specific_from`` and ``b = shared_from``: the decoder of modality i reading the
        shared code of sample b and the specific code of sample a. With ``shared_from =
        specific_from`` it is the reconstruction.

        Args:
            specific_from: ``[X1a, X2a, ...]``, one (n, ...) array per modality (paired rows).
            shared_from: ``[X1b, X2b, ...]``, the same shapes and the same n.
            batch_size: rows per forward pass.

        Returns:
            One float32 array per modality, of the modality's shape ((n, d) vectors, (n, T, d)
            sequences: every step decoded, padding included), in the input's units.

        Raises:
            DSSLError: no decoders (fit with ``decoder_epochs > 0`` or call
                :meth:`fit_decoders`), a wrong number of views, views of different row
                counts, or views the model cannot read.
        """
        return counterfactual(self, specific_from, shared_from, batch_size=batch_size)

    def predict_modality(self, X: object, *, source: int, target: int,
                         batch_size: int = 8192) -> np.ndarray:
        """Cross-modal prediction: modality ``target`` decoded from modality ``source``'s
        rows, through ``source``'s shared code.

        The decoder of ``target`` reads ``[shared_source(x), s̄_target]``: the shared code of
        ``source`` in place of ``target``'s own (each standardised with its own modality's
        training statistics), and for ``target``'s specific code, which ``source`` cannot
        tell, its mean over the rows the decoders were trained on (stored with the
        decoders). For the paper's generator the best such prediction is ``[0, Zs]·T2``
        (``E[x2 | x1]``), not ``x2`` itself.

        Args:
            X: (n, ...) rows of modality ``source`` (a padded sequence may be
                ``(values, lengths)``).
            source, target: modality numbers, 1-based (1 for ``x1``, 2 for ``x2``).
            batch_size: rows per forward pass.

        Returns:
            (n, ...) float32 predictions of modality ``target``, in its input units.

        Raises:
            DSSLError: no decoders, modality numbers out of range, or rows the model cannot
                read.
        """
        return predict_modality(self, X, source=source, target=target, batch_size=batch_size)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the fitted model to a folder (see
        :func:`~disentangled_ssl.estimator.persistence.save_model`)."""
        return save_model(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "auto",
             shared_encoders: list[nn.Module] | None = None,
             specific_encoders: list[nn.Module] | None = None) -> DisentangledSSL:
        """Load a model written by :meth:`save`, verifying its weights (see
        :func:`~disentangled_ssl.estimator.persistence.load_model`)."""
        return load_model(cls, path, device=device, shared_encoders=shared_encoders,
                          specific_encoders=specific_encoders)

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike[str], device: str = "auto"
                        ) -> DisentangledSSL:
        """The model as of the last checkpoint in ``checkpoint_dir`` (see
        :func:`~disentangled_ssl.estimator.persistence.model_from_checkpoint`)."""
        return model_from_checkpoint(cls, checkpoint_dir, device=device)


def _refuse_shuffled(loader: object) -> None:
    """Embeddings come back in the loader's order: a shuffling loader would scramble them."""
    from torch.utils.data import RandomSampler

    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, RandomSampler):
        raise DSSLError("transform got a DataLoader that shuffles (shuffle=True): the rows of "
                        "the embeddings would not match your data; pass the Dataset itself, or "
                        "a DataLoader with shuffle=False")
