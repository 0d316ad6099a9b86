"""Readers for the published files of the paper's real benchmarks, for users who have them.

- MultiBench affective-computing sets (MOSI, MOSEI, MUStARD = "sarcasm", UR-FUNNY = "humor"):
  pre-extracted feature pickles as loaded by ``pliang279/MultiBench``
  ``datasets/affect/get_data.py`` (a dict with ``train``/``valid``/``test`` splits, each a dict
  of ``vision``, ``audio``, ``text`` arrays (N, T, D), ``labels`` and optionally ``id``).
- InfoCORE molecule–phenotype data (``uhlerlab/InfoCORE``): LINCS L1000 gene expression
  ("GE", 978 landmark genes) and Cell Painting ("CP", Bray et al. 2017, 701 features), each
  paired with Mol2Vec vectors of the perturbing molecule.

The files are Python pickles, and unpickling can run arbitrary code. :func:`safe_load_pickle`
uses a restricted unpickler whose ``find_class`` admits only numpy array, dtype and scalar
reconstruction and built-in containers; anything else is refused with a :class:`DSSLError`.

None of these files can be downloaded here; ``docs/real-data.md`` says where users get them.
Formats and protocols follow ``shared/reference/real-benchmarks.md`` (MultiBench @49f9be2,
FactorCL @0f9f740, InfoCORE @5e752e6).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.readers import MultimodalData

__all__ = [
    "AFFECT_DATASETS",
    "CORE_CELL_LINES",
    "affect_labels",
    "drug_split",
    "read_infocore_cp",
    "read_infocore_ge",
    "read_multibench_affect",
    "safe_load_pickle",
]

#: (module, name) pairs the restricted unpickler may resolve.
_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
     for n in ("_reconstruct", "scalar")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "bytearray",
                                 "complex", "slice", "range")]
    + [("collections", "OrderedDict")]
)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str) -> None:  # noqa: ANN001 - a binary file object
        super().__init__(fh)
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith("numpy.dtypes") or (module == "numpy" and name.endswith("DType")):
            return super().find_class(module, name)  # numpy >= 2 dtype classes
        raise DSSLError(
            f"{self.source}: refusing to unpickle {module}.{name}: only numpy arrays and "
            "built-in containers are allowed (the file may not be what it claims to be)"
        )


def safe_load_pickle(path: str | os.PathLike[str]) -> object:
    """Unpickle a file holding only numpy arrays, numbers, strings and built-in containers.

    Raises:
        DSSLError: the file is missing, truncated, or references any other class or function.
    """
    p = Path(path)
    if not p.is_file():
        raise DSSLError(f"file not found: {p}")
    try:
        with open(p, "rb") as fh:
            return _RestrictedUnpickler(fh, str(p)).load()
    except DSSLError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, UnicodeDecodeError) as exc:
        raise DSSLError(f"{p} is not a readable pickle of arrays ({type(exc).__name__}: {exc})"
                        ) from exc


# ---------------------------------------------------------------------------------------------
# MultiBench affect
# ---------------------------------------------------------------------------------------------
#: Dataset name -> whether its labels are sentiment scores (True) or 0/1 classes (False).
AFFECT_DATASETS: dict[str, bool] = {"mosi": True, "mosei": True, "sarcasm": False,
                                    "humor": False}
_AFFECT_KEYS = ("vision", "audio", "text", "labels")


def affect_labels(scores: np.ndarray, dataset: str, policy: str = "factorcl"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels and the rows to keep.

    Policies (``real-benchmarks.md`` §1.5):
        "factorcl": MOSI/MOSEI ``y >= 0 -> 1`` else 0 (zeros kept, as FactorCL's
            ``mosi_label``); sarcasm/humor: MultiBench maps ``label < 1`` to -1, FactorCL
            maps -1 to 0, so ``label >= 1 -> 1`` else 0.
        "multibench": MOSI/MOSEI ``y > 0 -> 1``, ``y < 0 -> 0``, rows with ``y == 0``
            dropped (MultiBench's primary posneg accuracy); sarcasm/humor as above.

    Returns:
        (labels int64 of the kept rows, boolean keep mask over all rows).
    """
    if dataset not in AFFECT_DATASETS:
        raise DSSLError(f"unknown affect dataset {dataset!r}; choose from "
                        f"{sorted(AFFECT_DATASETS)}")
    if policy not in ("factorcl", "multibench"):
        raise DSSLError(f"label policy must be 'factorcl' or 'multibench', got {policy!r}")
    y = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not AFFECT_DATASETS[dataset]:
        return (y >= 1).astype(np.int64), np.ones(y.size, dtype=bool)
    if policy == "factorcl":
        return (y >= 0).astype(np.int64), np.ones(y.size, dtype=bool)
    keep = y != 0
    return (y[keep] > 0).astype(np.int64), keep


def _trim_and_pad(x: np.ndarray, start: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (N, T, D) re-started at ``start`` (N,) and cut/zero-padded to ``length`` steps;
    also returns the (N, length) mask of real (not padded) steps."""
    n, t, _ = x.shape
    index = start[:, None] + np.arange(length)[None, :]
    valid = index < t
    out = np.take_along_axis(x, np.minimum(index, t - 1)[:, :, None], axis=1)
    return np.where(valid[:, :, None], out, 0.0).astype(np.float32), valid


def read_multibench_affect(
    path: str | os.PathLike[str],
    dataset: str = "mosi",
    *,
    modalities: Sequence[str] = ("vision", "text"),
    max_seq_len: int = 50,
    pooling: str = "mean",
    label_policy: str = "factorcl",
    splits: Iterable[str] = ("train", "valid", "test"),
) -> dict[str, MultimodalData]:
    """Read a MultiBench affect pickle (``mosi_data.pkl``, ``mosi_raw.pkl``,
    ``mosei_senti_data.pkl``, ``sarcasm.pkl``, ``humor.pkl``) into paired views per split.

    Preprocessing follows MultiBench's ``get_dataloader`` with its defaults (aligned, no
    z-norm): rows whose whole text array is 0 are dropped; audio ``-inf`` becomes 0; every
    modality is re-started at the first time step with non-zero text (removing the text's
    front padding), then cut or zero-padded at the end to ``max_seq_len`` steps.

    Args:
        path: the pickle (loaded with :func:`safe_load_pickle`).
        dataset: "mosi", "mosei", "sarcasm" or "humor" (selects the label rule).
        modalities: which of vision/audio/text to return, in order (FactorCL: vision, text).
        max_seq_len: fixed number of time steps T.
        pooling: "mean" (average over the real, non-padded steps: (N, D) vectors for the
            default MLP encoders), "flatten" ((N, T·D)), "none" ((N, T, D) zero-padded
            sequences) or "packed" ((N, T, D + 1): the validity mask as the last channel, the
            form of the ``Sequence(masked=True)`` modality kind).
        label_policy: see :func:`affect_labels`.
        splits: which splits to return.

    Returns:
        split name -> :class:`MultimodalData` with labels ``label`` (binary) and ``score``
        (the raw label), and ``ids`` when the file has them.
    """
    if pooling not in ("mean", "flatten", "none", "packed"):
        raise DSSLError(f"pooling must be 'mean', 'flatten', 'none' or 'packed', got "
                        f"{pooling!r}")
    bad = [m for m in modalities if m not in ("vision", "audio", "text")]
    if bad or len(modalities) < 2:
        raise DSSLError(f"modalities must be two or more of vision, audio, text; got "
                        f"{list(modalities)}")
    content = safe_load_pickle(path)
    if not isinstance(content, Mapping):
        raise DSSLError(f"{path} holds a {type(content).__name__}, not a dict of splits "
                        "(train/valid/test)")
    out: dict[str, MultimodalData] = {}
    for split in splits:
        if split not in content:
            raise DSSLError(f"{path} has no split {split!r}; it has {sorted(map(str, content))}")
        part = content[split]
        if not isinstance(part, Mapping):
            raise DSSLError(f"{path}[{split!r}] is a {type(part).__name__}, not a dict")
        missing = [k for k in _AFFECT_KEYS if k not in part]
        if missing:
            raise DSSLError(f"{path}[{split!r}] lacks {missing}; it has {sorted(map(str, part))}")
        arrays = {k: np.asarray(part[k]) for k in _AFFECT_KEYS}
        n = arrays["text"].shape[0]
        for k in ("vision", "audio", "text"):
            if arrays[k].ndim != 3 or arrays[k].shape[0] != n:
                raise DSSLError(f"{path}[{split!r}][{k!r}] has shape {arrays[k].shape}; "
                                f"expected ({n}, T, D)")
        if arrays["labels"].shape[0] != n:
            raise DSSLError(f"{path}[{split!r}]['labels'] has {arrays['labels'].shape[0]} rows, "
                            f"text has {n}")
        text = arrays["text"].astype(np.float64)
        keep = text.reshape(n, -1).sum(1) != 0
        audio = arrays["audio"].astype(np.float64)
        audio[np.isneginf(audio)] = 0.0
        arrays["audio"] = audio
        nonzero = (text != 0).any(axis=2)  # (N, T)
        start = np.argmax(nonzero, axis=1)
        labels, label_keep = affect_labels(arrays["labels"], dataset, label_policy)
        scores = np.asarray(arrays["labels"], dtype=np.float64).reshape(-1)
        rows = keep & label_keep
        label_rows = rows[label_keep]
        views = []
        for m in modalities:
            seq, valid = _trim_and_pad(arrays[m][rows].astype(np.float64), start[rows],
                                       max_seq_len)
            if not np.isfinite(seq).all():
                raise DSSLError(f"{path}[{split!r}][{m!r}] has NaN or infinite values after "
                                "MultiBench's preprocessing")
            if pooling == "mean":
                count = np.maximum(valid.sum(1, keepdims=True), 1)
                views.append((seq.sum(1) / count).astype(np.float32))
            elif pooling == "flatten":
                views.append(seq.reshape(seq.shape[0], -1))
            elif pooling == "packed":  # the sequence kind's padded form: mask channel last
                views.append(np.concatenate([seq, valid[:, :, None]], axis=2).astype(
                    np.float32))
            else:
                views.append(seq)
        ids = np.asarray(part["id"]).reshape(n, -1)[:, 0].astype(str)[rows] if "id" in part \
            else None
        out[split] = MultimodalData(
            views, {"label": labels[label_rows], "score": scores[rows]}, ids,
            list(modalities), [[] for _ in modalities])
    return out


# ---------------------------------------------------------------------------------------------
# InfoCORE molecule-phenotype data
# ---------------------------------------------------------------------------------------------
#: The 9 core L1000 cell lines InfoCORE keeps.
CORE_CELL_LINES = ("A375", "A549", "HA1E", "HCC515", "HT29", "MCF7", "PC3", "VCAP", "HEPG2")


def _molecule_matrix(smiles: Sequence[str], mol_repr: Mapping[str, object], source: str
                     ) -> np.ndarray:
    """Mol2Vec vectors, z-scored per dimension over the molecules and clipped to ±2.5."""
    x = np.stack([np.asarray(mol_repr[s], dtype=np.float64).reshape(-1) for s in smiles])
    std = x.std(0)
    if not np.isfinite(x).all():
        raise DSSLError(f"{source}: molecule vectors contain NaN or infinite values")
    return np.clip((x - x.mean(0)) / np.where(std > 0, std, 1.0), -2.5, 2.5).astype(np.float32)


def _zscore_clipped(profiles: np.ndarray, clip: float) -> np.ndarray:
    clipped = np.clip(profiles, -clip, clip)
    std = clipped.std(0)
    return ((clipped - clipped.mean(0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _load_dict(path: str | os.PathLike[str]) -> Mapping:
    content = safe_load_pickle(path)
    if not isinstance(content, Mapping):
        raise DSSLError(f"{path} holds a {type(content).__name__}, expected a dict")
    return content


def read_infocore_ge(
    inst_info: str | os.PathLike[str],
    control_means: str | os.PathLike[str],
    id_smiles: str | os.PathLike[str],
    mol_repr: str | os.PathLike[str],
    *,
    keys: str | os.PathLike[str] | Sequence[str] | None = None,
    cell_lines: Sequence[str] | None = CORE_CELL_LINES,
) -> MultimodalData:
    """LINCS L1000 (InfoCORE "GE"): one item per (cell line, drug), phenotype = mean over its
    replicates of ``expression - control_mean[batch]`` (978 genes), clipped to ±1.5 and z-scored
    per gene; molecule = Mol2Vec vector of the drug's SMILES, z-scored and clipped to ±2.5.

    Args:
        inst_info: ``inst_info_drug.pkl``: key -> sequence with [0] batch, [2] drug id,
            [9] cell line, [-1] expression vector.
        control_means: ``ctl_dict1_mean.pkl``: batch -> mean control profile (instances whose
            batch has none are skipped, as in InfoCORE).
        id_smiles: ``id_smiles``: drug id -> SMILES (drugs without one are skipped).
        mol_repr: ``mol2vec_mol_repr_dict.pkl``: SMILES -> vector.
        keys: optional instance-key subset (``sel_keys_dosesubset.npy`` or a list).
        cell_lines: keep only these cell lines (default: the 9 core lines; None keeps all).

    Returns:
        :class:`MultimodalData` with views ``phenotype`` and ``molecule``, labels ``cell``,
        ``drug`` (SMILES) and ``batch`` (first replicate's batch), ids ``cell + drug_id``.
    """
    info = _load_dict(inst_info)
    controls = _load_dict(control_means)
    smiles_of = _load_dict(id_smiles)
    vectors = _load_dict(mol_repr)
    if keys is not None:
        if isinstance(keys, (str, os.PathLike)):
            keys = [str(k) for k in np.load(keys, allow_pickle=False)]
        selected: Iterable = (k for k in keys if k in info)
    else:
        selected = info.keys()
    groups: dict[tuple[str, str], list[tuple[np.ndarray, str]]] = {}
    for key in selected:
        entry = info[key]
        try:
            batch, drug, cell, expr = str(entry[0]), str(entry[2]), str(entry[9]), entry[-1]
        except (IndexError, TypeError, KeyError) as exc:
            raise DSSLError(f"{inst_info}: entry {key!r} is not a sequence with batch [0], drug "
                            "[2], cell [9] and expression [-1]") from exc
        if cell_lines is not None and cell not in cell_lines:
            continue
        if batch not in controls or drug not in smiles_of or smiles_of[drug] not in vectors:
            continue
        diff = np.asarray(expr, np.float64).reshape(-1) - np.asarray(controls[batch],
                                                                      np.float64).reshape(-1)
        groups.setdefault((cell, drug), []).append((diff, batch))
    if not groups:
        raise DSSLError(f"{inst_info}: no instance has a control mean, a SMILES and a molecule "
                        "vector (check the files and the cell-line filter)")
    items = sorted(groups)
    phen = np.stack([np.mean([d for d, _ in groups[i]], axis=0) for i in items])
    smiles = [str(smiles_of[drug]) for _, drug in items]
    return MultimodalData(
        [_zscore_clipped(phen, 1.5), _molecule_matrix(smiles, vectors, str(mol_repr))],
        {"cell": np.array([c for c, _ in items]), "drug": np.array(smiles),
         "batch": np.array([groups[i][0][1] for i in items])},
        np.array([c + d for c, d in items]), ["phenotype", "molecule"], [[], []])


def read_infocore_cp(inst_info: str | os.PathLike[str], mol_repr: str | os.PathLike[str]
                     ) -> MultimodalData:
    """Cell Painting (InfoCORE "CP", Bray 2017): one item per drug, phenotype = mean of its
    replicate profiles (701 features, already control-normalised), clipped to ±1 and z-scored;
    molecule = Mol2Vec vector as for GE.

    Args:
        inst_info: ``inst_info_drug_cp.pkl``: key -> sequence with [3] drug id, [4] SMILES,
            [5] plate map (batch), [6] profile vector.
        mol_repr: ``mol2vec_mol_repr_dict_cp.pkl``: SMILES -> vector.

    Returns:
        :class:`MultimodalData` with views ``phenotype``, ``molecule``; labels ``drug``
        (SMILES) and ``batch`` (first replicate's plate map); ids = drug ids.
    """
    info = _load_dict(inst_info)
    vectors = _load_dict(mol_repr)
    groups: dict[str, list[tuple[np.ndarray, str, str]]] = {}
    for key, entry in info.items():
        try:
            drug, smiles, batch, profile = str(entry[3]), str(entry[4]), str(entry[5]), entry[6]
        except (IndexError, TypeError, KeyError) as exc:
            raise DSSLError(f"{inst_info}: entry {key!r} is not a sequence with drug [3], SMILES "
                            "[4], plate map [5] and profile [6]") from exc
        if smiles not in vectors:
            continue
        groups.setdefault(drug, []).append((np.asarray(profile, np.float64).reshape(-1), smiles,
                                            batch))
    if not groups:
        raise DSSLError(f"{inst_info}: no drug has a molecule vector in {mol_repr}")
    drugs = sorted(groups)
    phen = np.stack([np.mean([p for p, _, _ in groups[d]], axis=0) for d in drugs])
    smiles = [groups[d][0][1] for d in drugs]
    return MultimodalData(
        [_zscore_clipped(phen, 1.0), _molecule_matrix(smiles, vectors, str(mol_repr))],
        {"drug": np.array(smiles), "batch": np.array([groups[d][0][2] for d in drugs])},
        np.array(drugs), ["phenotype", "molecule"], [[], []])


def drug_split(drugs: np.ndarray, train_fraction: float = 0.8, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Drug-disjoint split: all items of a drug go to the same side. Drugs are taken in a
    seeded random order until the training side holds ``train_fraction`` of the items; the
    evaluation set is everything else (InfoCORE evaluates on valid + test together).

    Returns:
        (train row indices, held-out row indices).
    """
    drugs = np.asarray(drugs).astype(str)
    unique, inverse, counts = np.unique(drugs, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(unique.size)
    cumulative = np.cumsum(counts[order])
    n_train_drugs = int(np.searchsorted(cumulative, train_fraction * drugs.size) + 1)
    train_drugs = np.zeros(unique.size, dtype=bool)
    train_drugs[order[:n_train_drugs]] = True
    is_train = train_drugs[inverse]
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)

