"""Modality kinds: what a modality's data looks like, and its default encoders, augmentation
and decoder.

``DisentangledSSL(modalities=(...))`` takes one kind per modality, by name or as an object
with options: ``"vector"`` (n, d), ``"sequence"`` (n, T, d) float, ``"image"`` (n, C, H, W),
``"tokens"`` (n, L) integer ids, or ``"auto"`` (the default), which decides by array rank
(2: vector, 3: sequence, 4: image; integer token ids must be declared ``"tokens"``, since an
integer matrix may as well be counts). Every method builds its encoders through these, so a
new kind is a new class here and every method then works on it.

How each kind conditions DisentangledSSL's step-2 specific encoder on the frozen shared code:
vectors concatenate ``[x_i, shared_i(x_i)]`` at the input (the authors' choice); sequences,
images and tokens use late fusion: the kind's backbone encodes ``x_i`` to a feature vector,
and an MLP head reads ``[features, shared_i(x_i)]``
(:class:`~disentangled_ssl.nn.conditioned.ConditionedEncoder`).

Padded sequences carry their validity mask as one extra last channel (1 at real steps, 0 at
padding): ``(values, lengths)`` inputs are packed that way by
:func:`~disentangled_ssl.data.sequences.pack_lengths`, so that each modality of a batch
stays one tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.augment import (
    ImageAugment,
    SequenceAugment,
    TokenAugment,
    VectorAugment,
)
from disentangled_ssl.nn.conditioned import ConditionedEncoder
from disentangled_ssl.nn.decoders import SequenceDecoder, VectorDecoder
from disentangled_ssl.nn.encoders import MLP
from disentangled_ssl.nn.image import ImageEncoder
from disentangled_ssl.nn.sequence import SequenceEncoder
from disentangled_ssl.nn.tokens import TokenEncoder

__all__ = ["KINDS", "Image", "Modality", "Sequence", "Tokens", "Vector", "modality_from_dict",
           "resolve_modalities"]


@dataclass(frozen=True)
class EncoderSizes:
    """The estimator's size parameters a kind may read (the MLP width and depth)."""

    hidden_dim: int = 512
    n_hidden_layers: int = 1


@dataclass(frozen=True)
class Modality:
    """One modality's kind. Subclasses fill their shape from the training data
    (:meth:`resolve`) and build the default modules."""

    kind: ClassVar[str] = ""
    #: The array rank (with the row axis) this kind reads.
    rank: ClassVar[int] = 2

    # ---- shape
    def resolve(self, sample: Tensor, name: str) -> Modality:
        """This kind with its shape taken from ``sample`` (a batch or all rows)."""
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        """Numbers per row (the flattened size, mask channel included)."""
        raise NotImplementedError

    @property
    def scaler_size(self) -> int | None:
        """Features ``standardize=True`` standardises (None: this kind is never scaled)."""
        return None

    def check(self, x: Tensor, name: str) -> Tensor:
        """Validate (and convert) one batch or array of this modality; raises DSSLError."""
        raise NotImplementedError

    # ---- modules
    def _encoder(self, out_dim: int) -> nn.Module:
        """The kind's default network (B, ...) -> (B, out_dim)."""
        raise NotImplementedError

    @property
    def _feature_width(self) -> int:
        """The width of the backbone features the specific encoder's head reads."""
        raise NotImplementedError

    def shared_encoder(self, out_dim: int, sizes: EncoderSizes) -> nn.Module:
        return self._encoder(out_dim)

    def specific_encoder(self, out_dim: int, shared_dim: int | None, sizes: EncoderSizes
                         ) -> nn.Module:
        """The specific encoder; conditioned on a ``shared_dim`` code unless None."""
        backbone, features = self.backbone(sizes)
        if shared_dim is None:
            return nn.Sequential(backbone, nn.Linear(features, out_dim))
        return ConditionedEncoder(backbone, features, shared_dim, out_dim,
                                  hidden_dim=min(sizes.hidden_dim, 256))

    def backbone(self, sizes: EncoderSizes) -> tuple[nn.Module, int]:
        """A feature extractor (B, ...) -> (B, features) and its width."""
        return self._encoder(self._feature_width), self._feature_width

    def augmentation(self, noise_std: float, drop_fraction: float) -> nn.Module:
        raise NotImplementedError

    def decoder(self, latent_dim: int, sizes: EncoderSizes, method: str) -> nn.Module:
        raise DSSLError(
            f"method {method!r} reconstructs its input but has no decoder for {self.kind!r} "
            "modalities (decoders exist for 'vector' and 'sequence'); use another method, or "
            "describe this modality as vectors (flatten it and pass modalities='vector')")

    # ---- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items()
                           if v is not None)
        return f"{self.kind}({fields})"


def _check_rank(x: Tensor, rank: int, kind: str, name: str, shape: str) -> None:
    if x.dim() != rank:
        raise DSSLError(f"{name} is declared {kind!r}, which needs shape {shape}, but got shape "
                        f"{tuple(x.shape)}; declare its kind in modalities=(...) or reshape it")


def _check_float(x: Tensor, kind: str, name: str) -> Tensor:
    if x.is_complex():
        raise DSSLError(f"{name} is complex-valued; pass real numbers")
    if x.dtype != torch.float32:
        x = x.float()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        where = [int(v) for v in (~finite).nonzero()[0]]
        at = (f"row {where[0]}, column {where[1]}" if len(where) == 2
              else f"row {where[0]}, position {tuple(where[1:])}")
        raise DSSLError(f"{name} contains NaN or infinite values ({int((~finite).sum())} "
                        f"entries, first at {at}); impute or drop them before fitting")
    return x


def _same(name: str, what: str, got: int, fitted: int | None) -> None:
    if fitted is not None and got != fitted:
        raise DSSLError(f"{name} has {got} {what} but the model was fitted with {fitted}")


@dataclass(frozen=True)
class Vector(Modality):
    """(n, d) feature vectors: an MLP encoder and the paper's noise/zeroing augmentation.

    Attributes:
        features: d (filled from the data).
    """

    kind: ClassVar[str] = "vector"
    features: int | None = None

    def resolve(self, sample: Tensor, name: str) -> Vector:
        _check_rank(sample, 2, self.kind, name, "(rows, features)")
        return dataclasses.replace(self, features=int(sample.shape[1]))

    @property
    def n_features(self) -> int:
        return int(self.features or 0)

    @property
    def scaler_size(self) -> int | None:
        return int(self.features or 0)

    def check(self, x: Tensor, name: str) -> Tensor:
        _check_rank(x, 2, self.kind, name, "(rows, features)")
        _same(name, "features", int(x.shape[1]), self.features)
        return _check_float(x, self.kind, name)

    def shared_encoder(self, out_dim: int, sizes: EncoderSizes) -> nn.Module:
        return MLP(self.n_features, out_dim, sizes.hidden_dim, sizes.n_hidden_layers)

    def specific_encoder(self, out_dim: int, shared_dim: int | None, sizes: EncoderSizes
                         ) -> nn.Module:
        # Conditioning concatenates [x, shared] at the input (MultimodalModel does the cat).
        extra = shared_dim or 0
        return MLP(self.n_features + extra, out_dim, sizes.hidden_dim, sizes.n_hidden_layers)

    def backbone(self, sizes: EncoderSizes) -> tuple[nn.Module, int]:
        return MLP(self.n_features, sizes.hidden_dim, sizes.hidden_dim,
                   max(sizes.n_hidden_layers - 1, 0)), sizes.hidden_dim

    def augmentation(self, noise_std: float, drop_fraction: float) -> nn.Module:
        return VectorAugment(noise_std, drop_fraction)

    def decoder(self, latent_dim: int, sizes: EncoderSizes, method: str) -> nn.Module:
        return VectorDecoder(latent_dim, self.n_features, sizes.hidden_dim,
                             sizes.n_hidden_layers)


@dataclass(frozen=True)
class Sequence(Modality):
    """(n, T, d) float sequences: a small Transformer over time (sinusoidal positions, masked
    padding, mean-pooled) and FactorCL's sequence augmentations (permuted steps, Gaussian
    noise, zeroed steps, identity).

    Attributes:
        features: d (filled from the data; without the mask channel).
        steps: T (filled from the data; the encoder accepts up to ``max_len`` steps).
        masked: the rows carry a validity mask as an extra last channel (set when the data
            came as ``(values, lengths)``).
        d_model, n_layers, n_heads: the Transformer's size.
        max_len: the longest sequence the positional encoding covers.
    """

    kind: ClassVar[str] = "sequence"
    rank: ClassVar[int] = 3
    features: int | None = None
    steps: int | None = None
    masked: bool = False
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 1024

    def resolve(self, sample: Tensor, name: str) -> Sequence:
        _check_rank(sample, 3, self.kind, name, "(rows, time steps, features)")
        channels = int(sample.shape[2]) - (1 if self.masked else 0)
        return dataclasses.replace(self, features=channels, steps=int(sample.shape[1]))

    @property
    def n_features(self) -> int:
        return int(self.steps or 0) * (int(self.features or 0) + int(self.masked))

    @property
    def scaler_size(self) -> int | None:
        return int(self.features or 0)

    def check(self, x: Tensor, name: str) -> Tensor:
        _check_rank(x, 3, self.kind, name, "(rows, time steps, features)")
        if self.features is not None and self.masked and int(x.shape[2]) == self.features:
            # Unpadded rows for a model fitted on padded ones: every step is real.
            x = torch.cat([x.float(), x.new_ones(*x.shape[:2], 1, dtype=torch.float32)], 2)
        elif (self.features is not None and not self.masked
              and int(x.shape[2]) == self.features + 1):
            raise DSSLError(f"{name} came with lengths, but the model was fitted on sequences "
                            "without padding; pass the values alone (or refit with lengths)")
        _same(name, "features per step", int(x.shape[2]) - int(self.masked), self.features)
        if x.shape[1] > self.max_len:
            raise DSSLError(f"{name} has {x.shape[1]} time steps, more than max_len="
                            f"{self.max_len}; pass modalities=(Sequence(max_len=...), ...)")
        return _check_float(x, self.kind, name)

    def _encoder(self, out_dim: int) -> SequenceEncoder:
        return SequenceEncoder(int(self.features or 0), out_dim, d_model=self.d_model,
                               n_heads=self.n_heads, n_layers=self.n_layers,
                               max_len=self.max_len, masked=self.masked)

    @property
    def _feature_width(self) -> int:
        return self.d_model

    def augmentation(self, noise_std: float, drop_fraction: float) -> nn.Module:
        return SequenceAugment(masked=self.masked)

    def decoder(self, latent_dim: int, sizes: EncoderSizes, method: str) -> nn.Module:
        return SequenceDecoder(latent_dim, int(self.steps or 0), int(self.features or 0),
                               d_model=self.d_model, n_heads=self.n_heads,
                               n_layers=self.n_layers, masked=self.masked)


@dataclass(frozen=True)
class Image(Modality):
    """(n, C, H, W) images with values in about [0, 1] (uint8 pixels are divided by 255): a
    small residual CNN (average pooling: any height and width of at least 4 pixels), and
    random resized crop, horizontal flip and colour jitter (per image, vectorised).

    Attributes:
        channels, height, width: filled from the data.
        cnn_width: channels of the CNN's first stage (doubling per stage).
        pool: the CNN's last feature map is average-pooled to ``pool × pool`` cells (1:
            global pooling, blind to where a feature is; 2 keeps the coarse layout).
    """

    kind: ClassVar[str] = "image"
    rank: ClassVar[int] = 4
    channels: int | None = None
    height: int | None = None
    width: int | None = None
    cnn_width: int = 32
    pool: int = 1

    def resolve(self, sample: Tensor, name: str) -> Image:
        _check_rank(sample, 4, self.kind, name, "(rows, channels, height, width)")
        c, h, w = (int(v) for v in sample.shape[1:])
        return dataclasses.replace(self, channels=c, height=h, width=w)

    @property
    def n_features(self) -> int:
        return int(self.channels or 0) * int(self.height or 0) * int(self.width or 0)

    def check(self, x: Tensor, name: str) -> Tensor:
        _check_rank(x, 4, self.kind, name, "(rows, channels, height, width)")
        _same(name, "channels", int(x.shape[1]), self.channels)
        if x.dtype == torch.uint8:  # 8-bit pixels: to [0, 1], the scale the CNN expects
            return x.float().div_(255.0)
        return _check_float(x, self.kind, name)

    def _encoder(self, out_dim: int) -> ImageEncoder:
        return ImageEncoder(int(self.channels or 0), out_dim, width=self.cnn_width,
                            pool=self.pool)

    @property
    def _feature_width(self) -> int:
        return 4 * self.cnn_width

    def augmentation(self, noise_std: float, drop_fraction: float) -> nn.Module:
        return ImageAugment()


@dataclass(frozen=True)
class Tokens(Modality):
    """(n, L) integer token ids (a caption, a SMILES string, a gene list): an embedding and a
    Transformer encoder that ignores ``pad_id``, with random token masking and dropping.

    Attributes:
        vocab_size: number of ids (0..vocab_size-1); inferred as max id + 1 from training
            arrays, required for data loaders (the vocabulary cannot be seen before training).
        pad_id: the padding id (ignored by the encoder).
        d_model, n_layers, n_heads: the Transformer's size; ``n_layers=0`` has no attention
            and no positions: the mean of the token embeddings, a learned bag of words.
        max_len: the longest sequence the positional encoding covers.
    """

    kind: ClassVar[str] = "tokens"
    vocab_size: int | None = None
    pad_id: int = 0
    length: int | None = None
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 512

    def resolve(self, sample: Tensor, name: str) -> Tokens:
        x = self._ids(sample, name)
        vocab = self.vocab_size if self.vocab_size is not None else int(
            max(int(x.max()), self.pad_id)) + 1
        return dataclasses.replace(self, vocab_size=vocab, length=int(x.shape[1]))

    @property
    def n_features(self) -> int:
        return int(self.length or 0)

    def _ids(self, x: Tensor, name: str) -> Tensor:
        _check_rank(x, 2, self.kind, name, "(rows, tokens)")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise DSSLError(f"{name} is declared 'tokens' but has dtype {x.dtype}; token ids "
                            "must be integers (e.g. x.astype(np.int64))")
        if x.shape[1] > self.max_len:
            raise DSSLError(f"{name} has {x.shape[1]} tokens per row, more than max_len="
                            f"{self.max_len}; pass modalities=(Tokens(max_len=...), ...)")
        if x.numel() and int(x.min()) < 0:
            raise DSSLError(f"{name} has a negative token id ({int(x.min())}); ids must be in "
                            "0..vocab_size-1")
        return x.long()

    def check(self, x: Tensor, name: str) -> Tensor:
        x = self._ids(x, name)
        if self.vocab_size is not None and x.numel() and int(x.max()) >= self.vocab_size:
            flat = int((x >= self.vocab_size).flatten().nonzero()[0])
            row, col = divmod(flat, int(x.shape[1]))
            raise DSSLError(
                f"{name} has token id {int(x[row, col])} at row {row}, position {col}, outside "
                f"the vocabulary of {self.vocab_size} ids (0..{self.vocab_size - 1}); map "
                "unknown words to a reserved id, or give Tokens(vocab_size=...) large enough "
                "when fitting")
        return x

    def _encoder(self, out_dim: int) -> TokenEncoder:
        return TokenEncoder(int(self.vocab_size or 1), out_dim, pad_id=self.pad_id,
                            d_model=self.d_model, n_heads=self.n_heads,
                            n_layers=self.n_layers, max_len=self.max_len)

    @property
    def _feature_width(self) -> int:
        return self.d_model

    def augmentation(self, noise_std: float, drop_fraction: float) -> nn.Module:
        return TokenAugment(pad_id=self.pad_id)


#: Kind name (``"vector"``, ``"sequence"``, ``"image"``, ``"tokens"``) -> its class.
KINDS: dict[str, type[Modality]] = {k.kind: k for k in (Vector, Sequence, Image, Tokens)}
_BY_RANK: dict[int, type[Modality]] = {2: Vector, 3: Sequence, 4: Image}


def modality_from_dict(doc: Mapping[str, Any]) -> Modality:
    """The kind written by :meth:`Modality.to_dict`."""
    doc = dict(doc)
    kind = doc.pop("kind", None)
    if kind not in KINDS:
        raise DSSLError(f"unknown modality kind {kind!r}; the kinds are {', '.join(KINDS)}")
    try:
        return KINDS[kind](**doc)
    except TypeError as exc:
        raise DSSLError(f"invalid {kind!r} modality description {doc!r}: {exc}") from exc


def as_modality(spec: object, rank: int | None, name: str) -> Modality:
    """A kind from a name ("auto", "vector", ...), a :class:`Modality` or its dict."""
    if isinstance(spec, Modality):
        return spec
    if isinstance(spec, Mapping):
        return modality_from_dict(spec)
    if spec == "auto":
        if rank not in _BY_RANK:
            raise DSSLError(
                f"{name} has {rank} dimensions; 'auto' reads 2-D arrays as vectors, 3-D as "
                "sequences (rows, time, features) and 4-D as images (rows, channels, height, "
                f"width): reshape it or declare its kind in modalities=(...)")
        return _BY_RANK[rank]()
    if isinstance(spec, str) and spec in KINDS:
        return KINDS[spec]()
    raise DSSLError(f"unknown modality kind {spec!r} for {name}; use 'auto', "
                    f"{', '.join(repr(k) for k in KINDS)} or one of their classes")


def modality_specs(modalities: object, n: int) -> list[object]:
    """``modalities`` as one entry per modality: a single name applies to all."""
    if isinstance(modalities, (str, Modality, Mapping)):
        return [modalities] * n
    if isinstance(modalities, (list, tuple)):
        if len(modalities) != n:
            raise DSSLError(f"modalities has {len(modalities)} entries for {n} modalities; give "
                            "one kind per modality (or one for all)")
        return list(modalities)
    raise DSSLError(f"modalities must be 'auto', a kind name or one kind per modality, got "
                    f"{modalities!r}")


def check_modalities_param(modalities: object) -> None:
    """Fail early on an unknown name (the count is checked against the data)."""
    entries = ([modalities] if isinstance(modalities, (str, Modality, Mapping))
               else modalities if isinstance(modalities, (list, tuple)) else None)
    if entries is None or not entries:
        raise DSSLError(f"modalities must be 'auto', a kind name or a list of one kind per "
                        f"modality, got {modalities!r}")
    for k, spec in enumerate(entries):
        if isinstance(spec, str) and spec != "auto" and spec not in KINDS:
            raise DSSLError(f"modalities[{k}] is {spec!r}; the kinds are 'auto', "
                            f"{', '.join(repr(x) for x in KINDS)}")
        if not isinstance(spec, (str, Modality, Mapping)):
            raise DSSLError(f"modalities[{k}] is a {type(spec).__name__}; give a kind name or "
                            "a kind object such as Tokens(vocab_size=5000)")


def resolve_modalities(modalities: object, samples: SequenceOf[Tensor],
                       names: SequenceOf[str], masked: SequenceOf[bool] | None = None
                       ) -> list[Modality]:
    """One resolved kind per modality from the parameter and a sample of each (all training
    rows, or the first batch of a loader)."""
    specs = modality_specs(modalities, len(samples))
    out = []
    for k, (spec, x, name) in enumerate(zip(specs, samples, names)):
        kind = as_modality(spec, x.dim(), name)
        if masked is not None and masked[k]:
            if not isinstance(kind, Sequence):
                raise DSSLError(f"{name} came with lengths, which only 'sequence' modalities "
                                f"take, but it is declared {kind.kind!r}")
            kind = dataclasses.replace(kind, masked=True)
        out.append(kind.resolve(x, name))
    return out


def as_kind_array(x: object, name: str) -> np.ndarray:
    """Any array-like as a numpy array (dtype kept), or a DSSLError naming it."""
    try:
        array = np.asarray(x)
    except Exception as exc:
        raise DSSLError(f"{name} could not be read as an array ({exc}); sequences of different "
                        "lengths must be padded: pack_sequences(list_of_arrays) returns "
                        "(values, lengths)") from exc
    if array.dtype == object:
        raise DSSLError(f"{name} is ragged or non-numeric (dtype object); pad sequences of "
                        "different lengths with pack_sequences(list_of_arrays), which returns "
                        "(values, lengths), and pass that pair")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DSSLError(f"{name} must be numeric, got dtype {array.dtype}; convert or drop "
                        "non-numeric columns first")
    if array.ndim < 2:
        raise DSSLError(f"{name} must be 2-D (rows × features), got shape {array.shape}; use "
                        "x.reshape(-1, 1) for a single feature")
    if 0 in array.shape:
        raise DSSLError(f"{name} is empty (shape {array.shape}); it needs rows and features")
    return array
