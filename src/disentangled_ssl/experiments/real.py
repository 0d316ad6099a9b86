"""The real-data benchmark behind ``dssl benchmark real``.

For each offline dataset (:data:`~disentangled_ssl.data.datasets.DATASETS`) and seed: a
stratified train/test split (``test_size`` test rows), DisentangledSSL and CLIP fitted on the
training rows (features standardised with the training statistics), then on the test rows:

- class-probe accuracy (logistic regression fitted on the training embeddings) of the shared
  codes (both modalities side by side), the specific codes, both together, CLIP's codes and the
  raw features;
- cross-modal retrieval in both directions (modality 1 → 2: ``top1`` … ``mrr``; 2 → 1:
  ``rev_top1`` … ``rev_mrr``; cosine; top-1/5/10, MRR) of the shared codes, CLIP's codes, raw
  features in a CCA space fitted on the training rows, and a random ranking (exact
  expectation).

Datasets of other modality kinds (:data:`~disentangled_ssl.data.datasets.KIND_DATASETS`: the
shipped ``emoji-captions``) train the kinds' own encoders (a CNN for the images, a Transformer
for the caption tokens; :func:`evaluate_kinds_split`), beside the same two methods on the views
flattened into vectors (pixels, bag of words) through the MLP, and add a probe per extra label
(``probe_subgroup``), loss curves and a PNG grid of query images with their top captions.

Results are written as a tidy CSV (one row per dataset, seed, representation and metric) and a
Markdown table of mean ± std over seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_json_atomic, write_text_atomic
from disentangled_ssl.data.datasets import DATASETS, KIND_DATASETS, load_dataset
from disentangled_ssl.data.readers import MultimodalData
from disentangled_ssl.estimator import DisentangledSSL, Embeddings
from disentangled_ssl.evaluation.baselines import (
    CCA,
    cca_retrieval,
    random_retrieval,
    raw_probe,
)
from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.evaluation.retrieval import retrieval_metrics
from disentangled_ssl.experiments.results import seed_stats, write_csv
from disentangled_ssl.methods import get_method

#: Columns of results.csv.
CSV_FIELDS = ("dataset", "seed", "representation", "metric", "value", "label", "n_train",
              "n_test")

#: Representations in table order, and which metrics each has.
REPRESENTATIONS = ("shared", "specific", "both", "clip", "shared_vector", "specific_vector",
                   "both_vector", "clip_vector", "raw", "random")
RETRIEVAL = ("top1", "top5", "top10", "mrr")
METRICS = ("probe", *RETRIEVAL, *(f"rev_{m}" for m in RETRIEVAL))
REP_LABELS = {
    "shared": "DisentangledSSL shared",
    "specific": "DisentangledSSL specific",
    "both": "DisentangledSSL shared + specific",
    "clip": "CLIP",
    "shared_vector": "DisentangledSSL shared, vector MLP",
    "specific_vector": "DisentangledSSL specific, vector MLP",
    "both_vector": "DisentangledSSL shared + specific, vector MLP",
    "clip_vector": "CLIP, vector MLP",
    "raw": "raw features (retrieval: CCA)",
    "random": "random (probe: majority class)",
}
#: Labels probed beside the dataset's own (``DATASETS[name][1]``), as ``probe_<label>``.
EXTRA_PROBES: dict[str, tuple[str, ...]] = {"emoji-captions": ("subgroup",)}


@dataclass
class RealBenchmarkConfig:
    """Settings of ``dssl benchmark real`` (every dataset uses the same ones).

    The defaults were chosen on UCI Multiple Features, seed-0 split: with 1600 training rows
    longer training overfits (shared-code probe 0.95 after 30 epochs, 0.86 after 200), and
    strong augmentation (noise 0.5 on standardised features, 30 % of features dropped) helps.
    """

    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    test_size: int = 400
    beta: float = 0.1
    lam: float = 1.0
    shared_dim: int = 64
    specific_dim: int = 64
    hidden_dim: int = 256
    shared_epochs: int = 30
    specific_epochs: int = 15
    batch_size: int = 128
    lr: float = 1e-3
    noise_std: float = 0.5
    drop_fraction: float = 0.3
    cca_components: int = 16
    cca_reg: float = 0.1
    device: str = "auto"
    #: Image / token datasets (``emoji-captions``): the kinds' encoders and their budget,
    #: chosen on a validation split of the seed-0 training rows (``benchmarks/tune_emoji.py``;
    #: CLIP's image -> caption top-1 0.532 with global pooling and one Transformer layer,
    #: 0.602 with 4 x 4 pooling cells and a bag of words).
    kind_epochs: int = 120
    kind_specific_epochs: int = 30
    kind_lr: float = 2e-3
    cnn_width: int = 16
    image_pool: int = 4
    token_dim: int = 64
    token_layers: int = 0


def _estimator(config: RealBenchmarkConfig, seed: int, **extra: object) -> DisentangledSSL:
    """The benchmark's estimator; ``extra`` overrides (method, dials, modalities)."""
    params: dict[str, object] = dict(
        beta=config.beta, lam=config.lam, shared_dim=config.shared_dim,
        specific_dim=config.specific_dim, hidden_dim=config.hidden_dim,
        shared_epochs=config.shared_epochs, specific_epochs=config.specific_epochs,
        batch_size=config.batch_size, lr=config.lr, standardize=True, random_state=seed,
        noise_std=config.noise_std, drop_fraction=config.drop_fraction,
        device=config.device, verbose=False,
    )
    return DisentangledSSL(**{**params, **extra})  # type: ignore[arg-type]


def both_ways(queries: np.ndarray, items: np.ndarray) -> dict[str, float]:
    """Paired retrieval both ways: ``top1`` … ``mrr`` for queries → items, ``rev_top1`` …
    ``rev_mrr`` for items → queries."""
    back = retrieval_metrics(items, queries)
    return {**retrieval_metrics(queries, items), **{f"rev_{k}": v for k, v in back.items()}}


def _raw_scores(tr_views: Sequence[np.ndarray], te_views: Sequence[np.ndarray],
                labels: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
                config: RealBenchmarkConfig) -> dict[str, float]:
    """Raw-feature probes (one per label, see :func:`_probe_names`) and CCA retrieval both
    ways (CCA fitted on the training rows)."""
    y_tr, y_te = labels
    probes = raw_probe(tr_views, y_tr, te_views, y_te)
    cca = CCA(config.cca_components, config.cca_reg).fit(tr_views[0], tr_views[1])
    return {**_probe_names(probes), **both_ways(cca.transform(te_views[0], 0),
                                                cca.transform(te_views[1], 1))}


def _probe_names(scores: Mapping[str, float]) -> dict[str, float]:
    """Probe accuracies per label as metrics: the first label is ``probe``, the others
    ``probe_<label>``."""
    names = list(scores)
    return {("probe" if k == 0 else f"probe_{name}"): float(scores[name])
            for k, name in enumerate(names)}


def _dssl_scores(a: Embeddings, b: Embeddings, probe: Callable[[np.ndarray, np.ndarray],
                 dict[str, float]], suffix: str = "") -> dict[str, dict[str, float]]:
    """Shared (probes + retrieval both ways), specific and both (probes) of one
    DisentangledSSL model; train embeddings ``a``, test ``b``."""
    spec_tr, spec_te = np.hstack(a.specific_list), np.hstack(b.specific_list)
    return {
        "shared" + suffix: {**probe(a.shared, b.shared), **both_ways(b.shared1, b.shared2)},
        "specific" + suffix: probe(spec_tr, spec_te),
        "both" + suffix: probe(np.hstack([a.shared, spec_tr]), np.hstack([b.shared, spec_te])),
    }


def _vector_views(train: MultimodalData, test: MultimodalData
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first two views as vectors: flattened, token ids as a bag of words (0 = padding
    dropped), and columns constant on the training rows (rare pixels or fingerprint bits)
    removed."""
    tr, te = [], []
    for k in range(2):
        a, b = train.views[k], test.views[k]
        if not np.issubdtype(a.dtype, np.floating):  # token ids -> bag of words
            a, b = (_bag_of_words(v, int(max(a.max(), b.max())) + 1) for v in (a, b))
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        keep = np.ptp(a, axis=0) > 0
        tr.append(a[:, keep])
        te.append(b[:, keep])
    return tr, te


def _bag_of_words(ids: np.ndarray, size: int) -> np.ndarray:
    """(n, L) token ids -> (n, size) counts, id 0 (padding) left out."""
    out = np.zeros((len(ids), size), dtype=np.float32)
    np.add.at(out, (np.repeat(np.arange(len(ids)), ids.shape[1]), ids.ravel()), 1.0)
    out[:, 0] = 0.0
    return out


def evaluate_split(train: MultimodalData, test: MultimodalData, label: str,
                   config: RealBenchmarkConfig, seed: int, extra_labels: Sequence[str] = ()
                   ) -> dict[str, dict[str, float]]:
    """Fit DisentangledSSL and CLIP on ``train`` (first two views, as vectors: see
    :func:`_vector_views`) and score every representation on ``test``; returns
    representation -> metric -> value."""
    names = [label, *extra_labels]
    y_tr = {n: train.labels[n] for n in names}
    y_te = {n: test.labels[n] for n in names}
    tr_views, te_views = _vector_views(train, test)
    model = _estimator(config, seed).fit(*tr_views)
    a, b = model.transform(*tr_views), model.transform(*te_views)
    clip = _estimator(config, seed, method="clip", epochs=config.shared_epochs).fit(*tr_views)
    ca, cb = clip.transform(*tr_views), clip.transform(*te_views)

    def probe(x_tr: np.ndarray, x_te: np.ndarray) -> dict[str, float]:
        return _probe_names(linear_probe(x_tr, y_tr, x_te, y_te, max_iter=3000))

    return {
        **_dssl_scores(a, b, probe),
        "clip": {**probe(ca.shared, cb.shared), **both_ways(cb.shared1, cb.shared2)},
        "raw": _raw_scores(tr_views, te_views, (y_tr, y_te), config),
        "random": {**_probe_names({n: float(np.unique(test.labels[n], return_counts=True)[1]
                                            .max() / len(test)) for n in names}),
                   **{k: v for m, v in random_retrieval(len(test)).items()
                      for k in (m, f"rev_{m}")}},
    }


def emoji_kinds(data: MultimodalData, config: RealBenchmarkConfig) -> tuple[object, ...]:
    """The image and token kinds of ``dssl benchmark real`` (``config.cnn_width``,
    ``config.image_pool``, ``config.token_dim``, ``config.token_layers``; the vocabulary from
    the dataset)."""
    from disentangled_ssl.nn.modalities import Image, Tokens

    vocab = data.vocabularies.get(data.view_names[1]) if data.vocabularies else None
    return (Image(cnn_width=config.cnn_width, pool=config.image_pool),
            Tokens(vocab_size=len(vocab) if vocab else None, d_model=config.token_dim,
                   n_layers=config.token_layers))


def emoji_augmentations() -> list[object]:
    """Augmentations of the image and caption views: crops of 80–100 % of the area; captions
    unchanged. No flips and no colour jitter: emoji that differ only by direction ("… facing
    right") or skin tone have different captions, so those would make two different
    captions' images look alike; and masking or dropping one word of a caption (5.8 words on
    average) can delete the word (a skin tone) that tells two captions apart. (Chosen with the
    other emoji settings by looking at the seed-0 split, see docs/real-tasks.)"""
    from disentangled_ssl.data.augment import ImageAugment, TokenAugment

    return [ImageAugment(crop_scale=(0.8, 1.0), flip_p=0.0, brightness=0.0, contrast=0.0,
                         saturation=0.0), TokenAugment(enabled=False)]


def evaluate_kinds_split(train: MultimodalData, test: MultimodalData, label: str,
                         config: RealBenchmarkConfig, seed: int,
                         extra_labels: Sequence[str] = ()) -> tuple[
                             dict[str, dict[str, float]], dict[str, object]]:
    """:func:`evaluate_split` for a dataset of image and token views: DisentangledSSL and CLIP
    with the kinds' encoders (:func:`emoji_kinds`, :func:`emoji_augmentations`,
    ``config.kind_epochs`` step-1 / CLIP epochs, ``config.kind_specific_epochs`` step-2
    epochs), plus every row of :func:`evaluate_split` on the views as vectors (its
    DisentangledSSL and CLIP rows renamed ``*_vector``). Returns the scores and, for the
    figures, the test embeddings and the loss curves (:func:`_loss_curves`)."""
    names = [label, *extra_labels]
    y_tr = {n: train.labels[n] for n in names}
    y_te = {n: test.labels[n] for n in names}

    def probe(x_tr: np.ndarray, x_te: np.ndarray) -> dict[str, float]:
        return _probe_names(linear_probe(x_tr, y_tr, x_te, y_te, max_iter=3000))

    kinds = emoji_kinds(train, config)
    common = dict(modalities=kinds, augmentations=emoji_augmentations(), lr=config.kind_lr)
    model = _estimator(config, seed, shared_epochs=config.kind_epochs,
                       specific_epochs=config.kind_specific_epochs, **common
                       ).fit(*train.views[:2])
    a, b = model.transform(*train.views[:2]), model.transform(*test.views[:2])
    clip = _estimator(config, seed, method="clip", epochs=config.kind_epochs, **common
                      ).fit(*train.views[:2])
    ca, cb = clip.transform(*train.views[:2]), clip.transform(*test.views[:2])
    vector = evaluate_split(train, test, label, config, seed, extra_labels)
    scores = {
        **_dssl_scores(a, b, probe),
        "clip": {**probe(ca.shared, cb.shared), **both_ways(cb.shared1, cb.shared2)},
        **{f"{rep}_vector": vector[rep] for rep in ("shared", "specific", "both", "clip")},
        "raw": vector["raw"], "random": vector["random"],
    }
    extras = {"shared": (b.shared1, b.shared2), "clip": (cb.shared1, cb.shared2),
              "loss_curves": {"DisentangledSSL": _loss_curves(model), "CLIP": _loss_curves(clip)}}
    return scores, extras


def _metric_header(metric: str, label: str) -> str:
    if metric == "probe":
        return f"probe {label}"
    if metric.startswith("probe_"):
        return f"probe {metric[len('probe_'):]}"
    direction = "2→1" if metric.startswith("rev_") else "1→2"
    name = metric.removeprefix("rev_")
    return f"{direction} {'MRR' if name == 'mrr' else 'top-' + name[3:]}"


def summarise(rows: list[dict[str, object]]) -> str:
    """Markdown table per dataset: representation × metric, mean ± std over seeds."""
    known = {**DATASETS, **KIND_DATASETS}
    lines: list[str] = []
    datasets = list(dict.fromkeys(str(r["dataset"]) for r in rows))
    for name in datasets:
        sub = [r for r in rows if r["dataset"] == name]
        seeds = sorted({int(r["seed"]) for r in sub})  # type: ignore[call-overload]
        n_test = int(sub[0]["n_test"])  # type: ignore[call-overload]
        label = str(sub[0]["label"])
        present = {str(r["metric"]) for r in sub}
        extra = sorted(m for m in present if m.startswith("probe_"))
        metrics = [m for m in ("probe", *extra, *METRICS[1:]) if m in present]
        reps = [rep for rep in REPRESENTATIONS if any(r["representation"] == rep for r in sub)]
        views = "modality 1 → 2 and 2 → 1"
        lines += [f"### {name}: {known[name][2] if name in known else name}", "",
                  f"Test rows: {n_test}; seeds {seeds} (mean ± std); retrieval {views} "
                  f"among the {n_test} test rows (chance top-1 {1 / n_test:.4f}); 'random' "
                  "probe = the majority class's share.", "",
                  "| representation | " + " | ".join(_metric_header(m, label) for m in metrics)
                  + " |", "|---" * (len(metrics) + 1) + "|"]
        for rep in reps:
            cells = []
            for metric in metrics:
                values = [float(r["value"]) for r in sub  # type: ignore[arg-type]
                          if r["representation"] == rep and r["metric"] == metric]
                mean, std, _ = seed_stats(values) if values else (0.0, 0.0, 0)
                cells.append(f"{mean:.3f} ± {std:.3f}" if values else "—")
            lines.append(f"| {REP_LABELS[rep]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _kind_figures(folder: Path, name: str, test: MultimodalData, extras: Mapping[str, object],
                  seed: int, label: str) -> None:
    """``<name>_retrieval.png`` (query images and their top captions) and
    ``<name>_loss_curves.png`` for one seed."""
    from disentangled_ssl.experiments.figures import save_png

    queries, items = extras["shared"]  # type: ignore[misc]
    texts = test.labels.get("caption_text")
    if texts is not None and test.views[0].ndim == 4:
        fig = retrieval_grid(test.views[0], [str(t) for t in texts], queries, items,
                             test.labels[label],
                             title=f"{name}, seed {seed}: DisentangledSSL shared codes, image → "
                                   "caption (green: the query's own caption)")
        save_png(fig, folder / f"{name}_retrieval.png")
    curves: Mapping[str, Mapping[str, list]] = extras["loss_curves"]  # type: ignore[assignment]
    title = f"{name}, seed {seed}: training loss per epoch"
    save_png(loss_curves_figure({m: [c] for m, c in curves.items()}, title),
             folder / f"{name}_loss_curves.png")


def loss_curves_figure(curves: Mapping[str, Sequence[Mapping[str, Sequence[float]]]],
                       title: str = "") -> object:
    """One panel per method and stage (a two-stage method gets two panels, their losses are
    on different scales): the training loss per epoch, one line per run (seed).
    ``curves``: method title -> runs -> stage -> losses."""
    from matplotlib.ticker import MaxNLocator

    from disentangled_ssl.experiments.figures import new_figure

    panels: dict[str, list[Sequence[float]]] = {}
    for method, runs in curves.items():
        stages = list(dict.fromkeys(stage for run in runs for stage in run))
        for stage in stages:
            name = method if len(stages) == 1 else f"{method}: {stage}"
            panels[name] = [run[stage] for run in runs if stage in run]
    cols = min(len(panels), 4)
    rows = -(-len(panels) // cols)
    fig = new_figure((3.6 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, runs) in zip(axes, panels.items()):
        for k, losses in enumerate(runs):
            ax.plot(np.arange(1, len(losses) + 1), losses, lw=1.2, alpha=0.85,
                    marker="o", ms=2.5, label=f"run {k + 1}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        n_epochs = max(len(losses) for losses in runs)
        ax.set_xlim(0.5, n_epochs + 0.5)
        if n_epochs <= 10:
            ax.set_xticks(range(1, n_epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def result_loss_curves(result: Mapping[str, object]
                       ) -> dict[str, list[Mapping[str, Sequence[float]]]]:
    """The ``loss_curves`` of a multibench / infocore result, by method title."""
    curves: dict[str, list[Mapping[str, Sequence[float]]]] = {
        "DisentangledSSL": [r["loss_curves"] for r in result["runs"]  # type: ignore[index]
                            if "loss_curves" in r]}
    for method, runs in result["baselines"].items():  # type: ignore[union-attr]
        curves[get_method(method).title] = [r["loss_curves"] for r in runs
                                            if "loss_curves" in r]
    return {k: v for k, v in curves.items() if v}


def retrieval_grid(images: np.ndarray, captions: Sequence[str], queries: np.ndarray,
                   items: np.ndarray, groups: np.ndarray, *, top: int = 3, title: str = "",
                   cols: int = 3) -> object:
    """A figure of query images (one per group, the first of each in row order, ``cols`` to a
    row), each beside its ``top`` retrieved captions (cosine between ``queries[i]`` and every
    ``items`` row); the query's own caption in green, others in grey, with its rank when
    outside the list."""
    from disentangled_ssl.experiments.figures import new_figure

    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    v = items / np.linalg.norm(items, axis=1, keepdims=True)
    scores = q @ v.T
    picks = [int(np.flatnonzero(groups == g)[0]) for g in dict.fromkeys(groups.tolist())]
    n_rows = -(-len(picks) // cols)
    fig = new_figure((6.0 * cols, 1.25 * n_rows + 0.6))
    grid = fig.add_gridspec(n_rows, 2 * cols, width_ratios=[1, 4] * cols)
    for k, i in enumerate(picks):
        r, c = divmod(k, cols)
        ax_img = fig.add_subplot(grid[r, 2 * c])
        ax_img.imshow(np.clip(np.moveaxis(images[i], 0, -1), 0.0, 1.0), interpolation="nearest")
        ax_img.set_axis_off()
        ax_txt = fig.add_subplot(grid[r, 2 * c + 1])
        ax_txt.set_axis_off()
        order = np.argsort(-scores[i], kind="stable")
        rank = int(np.flatnonzero(order == i)[0]) + 1
        ax_txt.text(0.0, 0.98, f"{groups[i]} (true caption rank {rank})", fontsize=7.5,
                    va="top", style="italic", transform=ax_txt.transAxes)
        for j, item in enumerate(order[:top]):
            text = captions[item] if len(captions[item]) <= 44 else captions[item][:43] + "…"
            ax_txt.text(0.0, 0.74 - 0.24 * j, f"{j + 1}. {text}", fontsize=8, va="top",
                        color="tab:green" if item == i else "0.35",
                        weight="bold" if item == i else "normal", transform=ax_txt.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def run_real_benchmark(config: RealBenchmarkConfig, out: str | Path, *, overwrite: bool = False,
                       log: Callable[[str], None] = print) -> list[dict[str, object]]:
    """Run the benchmark, write ``results.csv``, ``summary.md`` and ``config.json`` to ``out``
    and return the tidy rows. Datasets whose optional dependency is missing are skipped with a
    note in the summary."""
    folder = Path(out)
    targets = [folder / n for n in ("results.csv", "summary.md", "config.json")]
    if any(t.exists() for t in targets) and not overwrite:
        raise DSSLError(f"{folder} already holds benchmark results; pass --overwrite")
    known = {**DATASETS, **KIND_DATASETS}
    unknown = [d for d in config.datasets if d not in known]
    if unknown:
        raise DSSLError(f"unknown dataset(s) {unknown}; choose from {sorted(known)}")
    if not config.seeds:
        raise DSSLError("give at least one seed")
    rows: list[dict[str, object]] = []
    skipped: list[str] = []
    for name in config.datasets:
        try:
            data = load_dataset(name)
        except DSSLError as exc:
            if "pip install" not in str(exc):
                raise
            skipped.append(f"{name}: {exc}")
            log(f"skipping {name}: {exc}")
            continue
        label, extra = known[name][1], EXTRA_PROBES.get(name, ())
        if config.test_size >= len(data):
            raise DSSLError(f"test_size={config.test_size} leaves no training rows in {name} "
                            f"({len(data)} rows)")
        for seed in config.seeds:
            tic = time.perf_counter()
            train, test = data.stratified_split(label, config.test_size, seed=seed)
            if name in KIND_DATASETS:
                log(f"{name} seed {seed}: image and token encoders, {config.kind_epochs} "
                    "epochs")
                scores, extras = evaluate_kinds_split(train, test, label, config, seed, extra)
                if seed == config.seeds[0]:
                    _kind_figures(folder, name, test, extras, seed, label)
            else:
                scores = evaluate_split(train, test, label, config, seed, extra)
            for rep, metrics in scores.items():
                for metric, value in metrics.items():
                    rows.append({"dataset": name, "seed": seed, "representation": rep,
                                 "metric": metric, "value": value, "label": label,
                                 "n_train": len(train), "n_test": len(test)})
            log(f"{name} seed {seed}: shared probe {scores['shared']['probe']:.3f}, top-1 "
                f"{scores['shared']['top1']:.3f} (raw probe {scores['raw']['probe']:.3f}, CCA "
                f"top-1 {scores['raw']['top1']:.3f}) in {time.perf_counter() - tic:.0f} s")
    write_csv(folder / "results.csv", rows, CSV_FIELDS)
    summary = summarise(rows) if rows else "No dataset could be run.\n"
    if skipped:
        summary += "\nSkipped:\n" + "\n".join(f"- {s}" for s in skipped) + "\n"
    write_text_atomic(folder / "summary.md", summary)
    write_json_atomic(folder / "config.json", asdict(config), indent=2)
    return rows


# ---------------------------------------------------------------------------------------------
# the paper's benchmarks, from the published files (see data/published.py)
# ---------------------------------------------------------------------------------------------
#: FactorCL's Transformer widths per dataset (vision, text): ``multibench_model.py``.
FACTORCL_WIDTHS = {"mosi": (40, 600), "mosei": (40, 600), "sarcasm": (40, 40),
                   "humor": (40, 40)}
#: The comparison ``dssl benchmark multibench`` trains beside DisentangledSSL.
MULTIBENCH_BASELINES = ("clip", "factorcl", "joint", "focal", "simclr")


def multibench_kinds(dataset: str, modalities: Sequence[str]) -> tuple[object, ...]:
    """Padded-sequence kinds with FactorCL's Transformer width per modality (vision/text;
    others 40), one layer each."""
    from disentangled_ssl.nn.modalities import Sequence as SequenceKind

    vision, text = FACTORCL_WIDTHS.get(dataset, (40, 40))
    widths = {"vision": vision, "text": text}
    return tuple(SequenceKind(masked=True, d_model=widths.get(m, 40), n_layers=1, n_heads=4)
                 for m in modalities)


def _probes(model: DisentangledSSL, train: MultimodalData, test: MultimodalData
            ) -> dict[str, float]:
    """FactorCL's probe: logistic regression on the concatenated embeddings (shared; and the
    specific codes, and both, where the method has them, i.e. after its specific stage),
    test accuracy."""
    return _embedding_probes(model.transform(*train.views), model.transform(*test.views),
                             train, test)


def _embedding_probes(a: Embeddings, b: Embeddings, train: MultimodalData,
                      test: MultimodalData) -> dict[str, float]:
    """:func:`_probes` on embeddings already computed (train ``a``, test ``b``)."""
    y_tr, y_te = {"label": train.labels["label"]}, {"label": test.labels["label"]}
    out = {"shared": linear_probe(a.shared, y_tr, b.shared, y_te)["label"]}
    if a.specific_list:
        spec_tr, spec_te = np.hstack(a.specific_list), np.hstack(b.specific_list)
        out["specific"] = linear_probe(spec_tr, y_tr, spec_te, y_te)["label"]
        out["both"] = linear_probe(np.hstack([a.shared, spec_tr]), y_tr,
                                   np.hstack([b.shared, spec_te]), y_te)["label"]
    return out


def _loss_curves(est: DisentangledSSL) -> dict[str, list[float]]:
    """The training loss per epoch of every stage of a fitted model (for the JSON)."""
    return {stage: [float(r["loss"]) for r in records]
            for stage, records in est.history_.items()}


def _best_lr(lrs: Sequence[float], fit: Callable[[float], DisentangledSSL],
             score: Callable[[DisentangledSSL], float]
             ) -> tuple[float, DisentangledSSL, dict[str, float]]:
    """Fit a model at each learning rate of ``lrs`` and score it; the best score wins, a tie
    (a saturated validation score) goes to the lower final training loss (the same objective
    at every lr, so comparable), then to the first lr. Returns the lr, its model and the
    score of every lr (keyed by ``repr(lr)``)."""
    best: tuple[tuple[float, float], float, DisentangledSSL] | None = None
    scores: dict[str, float] = {}
    for lr in lrs:
        est = fit(lr)
        scores[repr(lr)] = value = float(score(est))
        key = (round(value, 9), -float(list(est.history_.values())[-1][-1]["loss"]))
        if best is None or key > best[0]:
            best = (key, lr, est)
    if best is None:
        raise DSSLError("no learning rate to choose from; give at least one")
    return best[1], best[2], scores


def _select_dials(config: RealBenchmarkConfig, seed: int, train: MultimodalData,
                  valid: MultimodalData, kinds: object, betas: Sequence[float],
                  lams: Sequence[float], lrs: Sequence[float] = ()
                  ) -> tuple[DisentangledSSL, float, float, float]:
    """β and the learning rate by the shared-code probe on the valid split (step 1 once per
    (β, lr); a tie between lrs at one β goes to the lower step-1 loss), then λ by the
    shared + specific probe on valid (step 2 per λ on the chosen step 1, same lr); never the
    test split. Returns the chosen model (trained on train), β, λ and the lr (``lrs`` empty:
    ``config.lr``)."""
    best_beta: tuple[float, float, float, DisentangledSSL] | None = None
    for beta in betas:
        lr, est, scores = _best_lr(
            lrs or (config.lr,),
            lambda lr, beta=beta: _estimator(config, seed, beta=beta, lr=lr, modalities=kinds
                                             ).fit_shared(*train.views),
            lambda est: _probes(est, train, valid)["shared"])  # step 1 only: the shared probe
        score = round(scores[repr(lr)], 9)
        if best_beta is None or score > best_beta[0]:
            best_beta = (score, beta, lr, est)
    assert best_beta is not None
    _, beta, lr, shared_model = best_beta
    best: tuple[float, float, DisentangledSSL] | None = None
    for lam in lams:
        est = shared_model.with_params(lam=lam).fit_specific(*train.views)
        score = _probes(est, train, valid)["both"]
        if best is None or score > best[0]:
            best = (score, lam, est)
    assert best is not None
    return best[2], beta, best[1], lr


def _select_lr(config: RealBenchmarkConfig, seed: int, method: str, train: MultimodalData,
               valid: MultimodalData, kinds: object, lrs: Sequence[float]
               ) -> tuple[DisentangledSSL, float, dict[str, float]]:
    """A baseline fitted on train at each learning rate of ``lrs`` (empty: ``config.lr``);
    the one whose valid probe (shared + specific where the method has both, else shared) is
    best; on a tie (an easy task saturates the probe), the one whose own objective went
    lowest (the same loss at every lr, so comparable). Returns it, its lr and the valid
    score of every lr."""
    def score(est: DisentangledSSL) -> float:
        probes = _probes(est, train, valid)
        return probes.get("both", probes["shared"])

    lr, est, scores = _best_lr(
        lrs or (config.lr,),
        lambda lr: _estimator(config, seed, method=method, epochs=config.shared_epochs, lr=lr,
                              modalities=kinds).fit(*train.views), score)
    return est, lr, scores


def run_multibench(path: str | Path, dataset: str, config: RealBenchmarkConfig, *,
                   modalities: tuple[str, ...] = ("vision", "text"),
                   label_policy: str = "factorcl", pooling: str = "sequence",
                   methods: Sequence[str] = MULTIBENCH_BASELINES,
                   betas: Sequence[float] = (0.1, 1.0), lams: Sequence[float] = (0.1, 1.0),
                   lrs: Sequence[float] = (1e-4, 1e-3), max_seq_len: int = 50,
                   log: Callable[[str], None] = lambda _m: None) -> dict[str, object]:
    """MultiBench affect evaluation following FactorCL.

    ``pooling="sequence"`` (default): vision and text as padded sequences through the
    ``sequence`` modality kind (FactorCL's Transformer widths, its augmentations);
    ``"mean"``: today's mean-pooled vectors through the MLP (an ablation). DisentangledSSL's
    β, λ and learning rate are chosen on the valid split (:func:`_select_dials`), and every
    baseline's learning rate too (:func:`_select_lr`; ``lrs`` empty: ``config.lr`` for
    all); every method is fitted on the train split and probed on test (logistic
    regression on the concatenated embeddings, FactorCL's protocol). With sequences, a
    mean-pooled DisentangledSSL (same dials) is scored too (``ablation_mean_pooling``). One
    entry per seed, each with its loss per epoch (``loss_curves``)."""
    from disentangled_ssl.data.published import read_multibench_affect

    if pooling not in ("sequence", "mean"):
        raise DSSLError(f"pooling must be 'sequence' or 'mean', got {pooling!r}")
    if len(modalities) != 2:
        raise DSSLError(f"the MultiBench comparison pairs two modalities (FactorCL's "
                        f"objective needs exactly two), got {len(modalities)}: "
                        f"{','.join(modalities)}; pass two, e.g. --modalities vision,text")
    read = {"sequence": "packed", "mean": "mean"}[pooling]
    splits = read_multibench_affect(path, dataset, modalities=modalities,
                                    label_policy=label_policy, pooling=read,
                                    max_seq_len=max_seq_len, splits=("train", "valid", "test"))
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    kinds = multibench_kinds(dataset, modalities) if pooling == "sequence" else "auto"
    pooled = (read_multibench_affect(path, dataset, modalities=modalities,
                                     label_policy=label_policy, pooling="mean",
                                     max_seq_len=max_seq_len, splits=("train", "test"))
              if pooling == "sequence" else None)
    runs, baselines = [], {m: [] for m in methods}
    for seed in config.seeds:
        log(f"seed {seed}: DisentangledSSL (choosing lr, beta, lam on valid)")
        model, beta, lam, lr = _select_dials(config, seed, train, valid, kinds, betas, lams,
                                             lrs)
        a, b = model.transform(*train.views), model.transform(*test.views)
        run: dict[str, object] = {
            "seed": seed, "beta": beta, "lam": lam, "lr": lr,
            "loss_curves": _loss_curves(model), "probe": {
                **_embedding_probes(a, b, train, test),
                "raw": raw_probe([_flat(v) for v in train.views],
                                 {"label": train.labels["label"]},
                                 [_flat(v) for v in test.views],
                                 {"label": test.labels["label"]})["label"]},
            "retrieval": retrieval_metrics(b.shared1, b.shared2),
        }
        if pooled is not None:
            mean = _estimator(config, seed, beta=beta, lam=lam, lr=lr
                              ).fit(*pooled["train"].views)
            run["ablation_mean_pooling"] = _probes(mean, pooled["train"], pooled["test"])
        runs.append(run)
        for method in methods:
            log(f"seed {seed}: {method} (choosing lr on valid)")
            est, lr, valid_scores = _select_lr(config, seed, method, train, valid, kinds, lrs)
            baselines[method].append({"seed": seed, "lr": lr, "valid_probe": valid_scores,
                                      "loss_curves": _loss_curves(est),
                                      "probe": _probes(est, train, test)})
    return {"dataset": dataset, "file": str(path), "modalities": list(modalities),
            "label_policy": label_policy, "pooling": pooling, "n_train": len(train),
            "n_valid": len(valid), "n_test": len(test),
            "majority": float(np.bincount(test.labels["label"]).max() / len(test)),
            "protocol": "following FactorCL: LogisticRegression probe on concatenated "
                        "embeddings, test accuracy; DisentangledSSL's beta, lam and lr and "
                        "every baseline's lr chosen on the valid split",
            "betas": list(betas), "lams": list(lams), "lrs": list(lrs or (config.lr,)),
            "config": asdict(config),
            "runs": runs, "baselines": baselines}


def _flat(view: np.ndarray) -> np.ndarray:
    """A view as (n, features) for the raw-feature probe (sequences flattened)."""
    return view.reshape(len(view), -1)


def multibench_rows(result: Mapping[str, object]) -> list[dict[str, object]]:
    """The tidy rows (dataset, seed, representation, metric, value) of a multibench result."""
    rows: list[dict[str, object]] = []
    dataset = result["dataset"]
    for run in result["runs"]:  # type: ignore[union-attr]
        for rep, value in run["probe"].items():
            name = "raw features" if rep == "raw" else f"DisentangledSSL {rep}"
            rows.append({"dataset": dataset, "seed": run["seed"], "representation": name,
                         "metric": "probe", "value": value})
        for rep, value in run.get("ablation_mean_pooling", {}).items():
            rows.append({"dataset": dataset, "seed": run["seed"],
                         "representation": f"DisentangledSSL {rep}, mean-pooled (ablation)",
                         "metric": "probe", "value": value})
    for method, method_runs in result["baselines"].items():  # type: ignore[union-attr]
        title = get_method(method).title
        for run in method_runs:
            for rep, value in run["probe"].items():
                rows.append({"dataset": dataset, "seed": run["seed"],
                             "representation": f"{title} {rep}", "metric": "probe",
                             "value": value})
    return rows


def multibench_table(rows: Sequence[Mapping[str, object]], majority: float) -> str:
    """Markdown: test probe accuracy per representation, mean ± std over seeds."""
    order: dict[str, list[float]] = {}
    for r in rows:
        order.setdefault(str(r["representation"]), []).append(float(r["value"]))  # type: ignore
    lines = ["| representation | probe accuracy (test) |", "|---|---|"]
    for rep, values in order.items():
        lines.append(f"| {rep} | {np.mean(values):.3f} ± {np.std(values):.3f} |")
    lines.append(f"| majority class | {majority:.3f} |")
    return "\n".join(lines) + "\n"


#: The comparison ``dssl benchmark infocore`` trains beside DisentangledSSL.
INFOCORE_BASELINES = ("clip", "joint", "focal")


def _retrieval_run(emb: object, held: MultimodalData, min_group: int) -> dict[str, object]:
    """Phenotype -> molecule retrieval of held-out shared codes, whole pool and by batch."""
    from disentangled_ssl.evaluation.retrieval import by_group_retrieval

    run: dict[str, object] = {"whole": retrieval_metrics(emb.shared1, emb.shared2)}  # type: ignore
    try:
        run["by_batch"] = by_group_retrieval(emb.shared1, emb.shared2,  # type: ignore
                                             held.labels["batch"], min_group)
    except DSSLError as exc:  # no batch large enough: say so instead of a silent null
        run["by_batch"], run["by_batch_skipped"] = None, str(exc)
    return run


def _infocore_lr(config: RealBenchmarkConfig, seed: int, method: str, train: MultimodalData,
                 lrs: Sequence[float], train_fraction: float) -> tuple[float, dict[str, float]]:
    """The learning rate of ``lrs`` whose model, fitted on a drug-disjoint part of the
    training drugs, gives the best whole-pool MRR on the rest of them (never the held-out
    drugs); with one lr, that lr. Returns it and the valid MRR per lr."""
    from disentangled_ssl.data.published import drug_split

    if len(lrs) <= 1:
        return (lrs[0] if lrs else config.lr), {}
    fit_idx, valid_idx = drug_split(train.labels["drug"], train_fraction, seed=1)
    fit, valid = train.subset(fit_idx), train.subset(valid_idx)
    extra = {} if method == "disentangled_ssl" else {"epochs": config.shared_epochs}

    def mrr(est: DisentangledSSL) -> float:
        emb = est.transform(*valid.views)
        return retrieval_metrics(emb.shared1, emb.shared2)["mrr"]

    best, _, scores = _best_lr(
        lrs, lambda lr: _estimator(config, seed, method=method, lr=lr, **extra).fit(*fit.views),
        mrr)
    return best, scores


def run_infocore(data: MultimodalData, config: RealBenchmarkConfig,
                 train_fraction: float = 0.8, min_group: int = 20,
                 methods: Sequence[str] = INFOCORE_BASELINES,
                 lrs: Sequence[float] = (1e-4, 1e-3)) -> dict[str, object]:
    """Molecule-phenotype retrieval following InfoCORE: drug-disjoint split (seed 0), fit on
    the training items, then on all held-out items top-1/5/10 and MRR of phenotype queries
    against molecule candidates, over the whole held-out pool and within batches of more
    than ``min_group`` items; DisentangledSSL's shared codes, the baselines' (CLIP, JointOpt,
    FOCAL: same encoders and epochs), CCA and random references. Every method's learning
    rate is chosen from ``lrs`` on a drug-disjoint validation part of the training drugs
    (:func:`_infocore_lr`), then the method is refitted on all training drugs."""
    from disentangled_ssl.data.published import drug_split

    train_idx, held_idx = drug_split(data.labels["drug"], train_fraction, seed=0)
    train, held = data.subset(train_idx), data.subset(held_idx)
    runs, baselines = [], {m: [] for m in methods}
    for seed in config.seeds:
        lr, valid = _infocore_lr(config, seed, "disentangled_ssl", train, lrs, train_fraction)
        model = _estimator(config, seed, lr=lr).fit(*train.views)
        runs.append({"seed": seed, "lr": lr, "valid_mrr": valid,
                     "loss_curves": _loss_curves(model),
                     **_retrieval_run(model.transform(*held.views), held, min_group)})
        for method in methods:
            lr, valid = _infocore_lr(config, seed, method, train, lrs, train_fraction)
            est = _estimator(config, seed, method=method, lr=lr,
                             epochs=config.shared_epochs).fit(*train.views)
            baselines[method].append({"seed": seed, "lr": lr, "valid_mrr": valid,
                                      "loss_curves": _loss_curves(est), **_retrieval_run(
                                          est.transform(*held.views), held, min_group)})
    return {"n_train": len(train), "n_heldout": len(held),
            "protocol": "following InfoCORE: phenotype query -> molecule candidates, cosine",
            "cca_whole": cca_retrieval(train.views, held.views, config.cca_components,
                                       config.cca_reg),
            "random_whole": random_retrieval(len(held)), "lrs": list(lrs or (config.lr,)),
            "config": asdict(config),
            "runs": runs, "baselines": baselines}


def infocore_rows(result: Mapping[str, object]) -> list[dict[str, object]]:
    """Tidy rows (seed, representation, metric, value) of an infocore result; metrics
    ``whole_<k>`` and ``by_batch_<k>``."""
    rows: list[dict[str, object]] = []
    sources = [("DisentangledSSL shared", result["runs"])] + [
        (f"{get_method(m).title} shared", runs)
        for m, runs in result["baselines"].items()]  # type: ignore[union-attr]
    for name, runs in sources:
        for run in runs:  # type: ignore[union-attr]
            for scope in ("whole", "by_batch"):
                for metric, value in (run.get(scope) or {}).items():
                    rows.append({"seed": run["seed"], "representation": name,
                                 "metric": f"{scope}_{metric}", "value": value})
    for name in ("cca_whole", "random_whole"):
        for metric, value in result[name].items():  # type: ignore[union-attr]
            rows.append({"seed": "", "representation": name.split("_")[0].upper()
                         if name == "cca_whole" else "random", "metric": f"whole_{metric}",
                         "value": value})
    return rows


def infocore_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Markdown: whole-pool and by-batch top-1/5/10 and MRR, mean ± std over seeds."""
    metrics = [f"{scope}_{m}" for scope in ("whole", "by_batch")
               for m in ("top1", "top5", "top10", "mrr")]
    values: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        values.setdefault(str(r["representation"]), {}).setdefault(
            str(r["metric"]), []).append(float(r["value"]))  # type: ignore[arg-type]
    head = "| representation | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 1)]
    for rep, by_metric in values.items():
        cells = [f"{np.mean(by_metric[m]):.3f} ± {np.std(by_metric[m]):.3f}"
                 if m in by_metric else "—" for m in metrics]
        lines.append(f"| {rep} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
