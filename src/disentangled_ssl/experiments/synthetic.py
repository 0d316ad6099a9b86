"""``dssl reproduce synthetic``: the paper's Figure 3 experiment.

Step 1 over a β grid (probe the concatenated shared codes on yc, y1, y2), then step 2 over a
λ grid on chosen β values (probe specific1/specific2), for each seed. Writes a tidy CSV of every
accuracy, a comparison table against the paper, and Figure 3(a)/(b)-shaped PNGs.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.synthetic import LABEL_NAMES, PairedData, make_synthetic
from disentangled_ssl.estimator import DisentangledSSL
from disentangled_ssl.evaluation.probe import linear_probe
from disentangled_ssl.experiments.paper import (
    FIGURE_3A,
    PAPER_BETAS,
    PAPER_LAMBDAS,
    PAPER_STEP2_BETAS,
)

CSV_FIELDS = ("stage", "beta", "lam", "seed", "representation", "label", "accuracy",
              "train_seconds")


@dataclass
class SyntheticConfig:
    """Size and grid of the reproduction (defaults: a small run of a few minutes on 2 cores;
    the paper's size is ``n_samples=90000, shared_epochs=50, specific_epochs=30``).

    ``batched=True`` trains each seed's β grid, and each (seed, β)'s λ grid, as one batched
    ensemble (:mod:`disentangled_ssl.training.ensemble`): every model equals its one-by-one
    run to float tolerance, in less time; ``train_seconds`` is then the grid's time divided
    equally among its members.
    """

    n_samples: int = 20000
    shared_epochs: int = 5
    specific_epochs: int = 5
    betas: Sequence[float] = PAPER_BETAS
    step2_betas: Sequence[float] = PAPER_STEP2_BETAS
    lambdas: Sequence[float] = PAPER_LAMBDAS
    seeds: Sequence[int] = (0,)
    batch_size: int = 256
    lr: float = 1e-4
    kappa: float = 1000.0
    device: str = "auto"
    data_seed: int = 0
    extra: dict = field(default_factory=dict)
    batched: bool = False


def _write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _probe_rows(stage: str, beta: float, lam: float | None, seed: int, seconds: float,
                est: DisentangledSSL, train: PairedData, test: PairedData) -> list[dict]:
    """Probe the representations of one fitted model: the concatenated shared codes after
    step 1, both specific codes after step 2."""
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    if stage == "shared":
        reps = {"shared": (tr.shared, te.shared)}
    else:
        reps = {"specific1": (tr.specific1, te.specific1),
                "specific2": (tr.specific2, te.specific2)}
    train_y, test_y = train.labels, test.labels
    rows = []
    for rep, (train_x, test_x) in reps.items():
        for label, acc in linear_probe(train_x, train_y, test_x, test_y).items():
            rows.append({
                "stage": stage, "beta": beta, "lam": "" if lam is None else lam, "seed": seed,
                "representation": rep, "label": label, "accuracy": round(acc, 5),
                "train_seconds": round(seconds, 3),
            })
    return rows


def _run_batched(config: SyntheticConfig, train, test, out: Path, bar: tqdm) -> list[dict]:
    """run_synthetic's runs, in its row order, with each grid trained as one ensemble."""
    from disentangled_ssl.training.ensemble import fit_shared_grid, fit_specific_grid

    rows: list[dict] = []
    for seed in config.seeds:
        base = DisentangledSSL(
            shared_epochs=config.shared_epochs, specific_epochs=config.specific_epochs,
            batch_size=config.batch_size, lr=config.lr, kappa=config.kappa, random_state=seed,
            device=config.device, verbose=False,
        )
        tic = time.perf_counter()
        grid = fit_shared_grid(base, list(config.betas), train.x1, train.x2)
        seconds = (time.perf_counter() - tic) / len(grid)
        for beta, est in zip(config.betas, grid):
            rows += _probe_rows("shared", beta, None, seed, seconds, est, train, test)
            bar.update()
            bar.set_postfix(beta=beta, seed=seed)
            if beta in config.step2_betas:
                tic = time.perf_counter()
                specs = fit_specific_grid(est, list(config.lambdas), train.x1, train.x2)
                seconds2 = (time.perf_counter() - tic) / len(specs)
                for lam, spec in zip(config.lambdas, specs):
                    rows += _probe_rows("specific", beta, lam, seed, seconds2, spec, train, test)
                    bar.update()
                    bar.set_postfix(beta=beta, lam=lam, seed=seed)
            _write_csv(out / "results.csv", rows)  # partial results survive an interruption
    return rows


def run_synthetic(config: SyntheticConfig, out_dir: str | os.PathLike[str],
                  overwrite: bool = False, progress: bool = True) -> list[dict]:
    """Run the experiment and write ``results.csv``, ``summary.md``, ``run.json``,
    ``figure3a.png`` and ``figure3b.png`` into ``out_dir``. Returns the CSV rows."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DSSLError(f"output folder {out} exists and is not empty; pass --overwrite")
    missing = sorted(set(config.step2_betas) - set(config.betas))
    if missing:
        raise DSSLError(
            f"step2 betas {missing} are not in the step-1 beta grid {list(config.betas)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(n_samples=config.n_samples, seed=config.data_seed)
    train, test = data.split(0.2, seed=0)
    started = time.perf_counter()
    rows: list[dict] = []
    runs = [(s, b) for s in config.seeds for b in config.betas]
    n_runs = len(runs) + len(config.seeds) * len(config.step2_betas) * len(config.lambdas)
    bar = tqdm(total=n_runs, desc="reproduce synthetic", unit="run", disable=not progress)
    if config.batched:
        runs = []  # the same runs, trained grid by grid below
        rows = _run_batched(config, train, test, out, bar)
    for seed, beta in runs:
        est = DisentangledSSL(
            beta=beta, shared_epochs=config.shared_epochs,
            specific_epochs=config.specific_epochs, batch_size=config.batch_size, lr=config.lr,
            kappa=config.kappa, random_state=seed, device=config.device, verbose=False,
        )
        tic = time.perf_counter()
        est.fit_shared(train.x1, train.x2)
        seconds = time.perf_counter() - tic
        rows += _probe_rows("shared", beta, None, seed, seconds, est, train, test)
        bar.update()
        bar.set_postfix(beta=beta, seed=seed)
        if beta in config.step2_betas:
            for lam in config.lambdas:
                spec = est.with_params(lam=lam)
                tic = time.perf_counter()
                spec.fit_specific(train.x1, train.x2)
                seconds = time.perf_counter() - tic
                rows += _probe_rows("specific", beta, lam, seed, seconds, spec, train, test)
                bar.update()
                bar.set_postfix(beta=beta, lam=lam, seed=seed)
        _write_csv(out / "results.csv", rows)  # partial results survive an interruption
    bar.close()
    total = time.perf_counter() - started
    _write_csv(out / "results.csv", rows)
    (out / "summary.md").write_text(summary_table(rows, config))
    meta = {
        "config": {k: list(v) if isinstance(v, (tuple, list)) else v
                   for k, v in asdict(config).items()},
        "seconds": round(total, 1),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
    }
    (out / "run.json").write_text(json.dumps(meta, indent=2))
    from disentangled_ssl.plots import plot_figure3a, plot_figure3b

    plot_figure3a(rows, out / "figure3a.png")
    if any(r["stage"] == "specific" for r in rows):
        plot_figure3b(rows, out / "figure3b.png")
    return rows


def aggregate(rows: list[dict], stage: str, representation: str) -> dict:
    """(beta, lam, label) -> (mean, std, n) over seeds."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        if r["stage"] == stage and r["representation"] == representation:
            groups.setdefault((float(r["beta"]), r["lam"], r["label"]), []).append(
                float(r["accuracy"]))
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def summary_table(rows: list[dict], config: SyntheticConfig) -> str:
    """Markdown tables: shared accuracies vs β next to the paper's Figure 3(a), and the
    specific1/specific2 accuracies per (β, λ)."""
    shared = aggregate(rows, "shared", "shared")
    lines = [
        f"# Synthetic reproduction (n={config.n_samples}, step 1 {config.shared_epochs} "
        f"epochs, step 2 {config.specific_epochs} epochs, seeds {list(config.seeds)})",
        "",
        "## Shared representation (shared1 ‖ shared2) vs β — ours (paper Figure 3(a))",
        "",
        "| β | yc | y1 | y2 |",
        "|---|---|---|---|",
    ]
    for beta in config.betas:
        paper = FIGURE_3A.get(float(beta))
        cells = []
        for k, label in enumerate(("yc", "y1", "y2")):
            mean, std, n = shared.get((float(beta), "", label), (float("nan"), 0.0, 0))
            cell = f"{mean:.3f}" + (f" ± {std:.3f}" if n > 1 else "")
            if paper is not None:
                cell += f" ({paper[k]:.2f})"
            cells.append(cell)
        lines.append(f"| {beta:g} | " + " | ".join(cells) + " |")
    for rep in ("specific1", "specific2"):
        spec = aggregate(rows, "specific", rep)
        if not spec:
            continue
        lines += ["", f"## {rep} vs (β, λ)", "", "| β | λ | " + " | ".join(LABEL_NAMES) + " |",
                  "|---|---|---|---|---|"]
        for beta in config.step2_betas:
            for lam in config.lambdas:
                cells = []
                for label in LABEL_NAMES:
                    mean, std, n = spec.get((float(beta), lam, label), (float("nan"), 0.0, 0))
                    cells.append(f"{mean:.3f}" + (f" ± {std:.3f}" if n > 1 else ""))
                lines.append(f"| {beta:g} | {lam:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
