"""``dssl reproduce synthetic``: the paper's Figure 3 experiment, a preset of the grid engine.

Step 1 over a β grid (probe the concatenated shared codes on yc, y1, y2), then step 2 over a
λ grid on chosen β values (probe specific1/specific2), for each seed: one sweep
(:func:`synthetic_grid`) run by :func:`~disentangled_ssl.experiments.engine.run_sweep` into the
output folder (``trials/`` holds every finished trial; a re-run with ``overwrite`` starts
afresh). Writes a tidy CSV of every accuracy, a comparison table against the paper, and Figure
3(a)/(b)-shaped PNGs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_text_atomic
from disentangled_ssl.data.synthetic import LABEL_NAMES
from disentangled_ssl.experiments.engine import output_folder, run_sweep
from disentangled_ssl.experiments.figures import plot_figure3a, plot_figure3b
from disentangled_ssl.experiments.paper import (
    FIGURE_3A,
    PAPER_BETAS,
    PAPER_LAMBDAS,
    PAPER_STEP2_BETAS,
)
from disentangled_ssl.experiments.results import Config, Row, configs, write_csv
from disentangled_ssl.experiments.spec import DataSpec, SweepSpec, SweepUnion

#: Columns of ``dssl reproduce synthetic``'s results.csv.
CSV_FIELDS = ("stage", "beta", "lam", "seed", "representation", "label", "accuracy",
                        "train_seconds")


@dataclass
class SyntheticConfig:
    """Size and grid of the reproduction (defaults: a small run of a few minutes on 2 cores;
    the paper's size is ``n_samples=90000, shared_epochs=50, specific_epochs=30``).

    ``batched=True`` trains each seed's β grid, and each (seed, β)'s λ grid, as one batched
    ensemble (:func:`~disentangled_ssl.estimator.fit_shared_grid`): every model equals its
    one-by-one run to float tolerance, in less time; ``train_seconds`` is then the grid's time
    divided equally among its members. ``workers > 1`` trains independent units of the grid
    in that many processes, each with ``cpu_count // workers`` torch threads (on a 2-core CPU
    two 1-thread processes do more work than one 2-thread process); results equal the
    one-process run's to float tolerance (grid chunks are smaller ensembles).
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
    batched: bool = False
    workers: int = 1


def synthetic_grid(config: SyntheticConfig) -> SweepUnion:
    """The reproduction as one sweep: the β grid (step 1), plus the λ grid on the step-2 β
    values (their step-1 units are shared, not retrained).

    Raises:
        DSSLError: step-2 β values outside the β grid.
    """
    missing = sorted(set(config.step2_betas) - set(config.betas))
    if missing:
        raise DSSLError(
            f"step2 betas {missing} are not in the step-1 beta grid {list(config.betas)}")
    params = {"shared_epochs": config.shared_epochs, "specific_epochs": config.specific_epochs,
              "batch_size": config.batch_size, "lr": config.lr, "kappa": config.kappa}
    data = DataSpec(n_samples=config.n_samples, data_seed=config.data_seed,
                    test_fraction=0.2, split_seed=0)
    grids = [SweepSpec(betas=config.betas, seeds=config.seeds, params=params, data=data)]
    if list(config.step2_betas) and list(config.lambdas):
        grids.append(SweepSpec(betas=config.step2_betas, lambdas=config.lambdas,
                               seeds=config.seeds, params=params, data=data))
    return SweepUnion(grids)


def synthetic_rows(rows: Sequence[Row], config: SyntheticConfig) -> list[dict[str, Any]]:
    """The accuracy rows in ``results.csv``'s columns (:data:`CSV_FIELDS`), in the
    order seed, β, then the shared rows before the specific ones by λ."""
    def order(r: Row) -> tuple:
        lam = -1 if r["lam"] == "" else list(config.lambdas).index(r["lam"])
        return (list(config.seeds).index(r["seed"]), list(config.betas).index(r["beta"]),
                r["stage"] != "shared", lam, r["representation"], LABEL_NAMES.index(r["label"]))

    probes = [r for r in rows if r["metric"] == "accuracy"]
    return [{"stage": r["stage"], "beta": r["beta"], "lam": r["lam"], "seed": r["seed"],
             "representation": r["representation"], "label": r["label"],
             "accuracy": round(r["value"], 5), "train_seconds": round(r["train_seconds"], 3)}
            for r in sorted(probes, key=order)]


def run_synthetic(config: SyntheticConfig, out_dir: str | os.PathLike[str],
                  overwrite: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Run the experiment and write ``results.csv``, ``summary.md``, ``run.json``,
    ``figure3a.png`` and ``figure3b.png`` into ``out_dir``. Returns the CSV rows.

    Raises:
        DSSLError: a non-empty ``out_dir`` without ``overwrite``, bad settings, or a unit
            that failed (its message).
    """
    out = output_folder(out_dir, overwrite)
    if isinstance(config.workers, bool) or not isinstance(config.workers, int) or (
            config.workers < 1):
        raise DSSLError(f"workers must be a positive integer, got {config.workers!r}")
    grid = synthetic_grid(config)
    result = run_sweep(grid, out, workers=config.workers, threads_per_worker=None,
                       device=config.device, keep_models=False, batched=config.batched,
                       progress=progress, report=False, desc="reproduce synthetic",
                       run_info={"config": asdict(config)})
    result.raise_failures(out)
    rows = synthetic_rows(result.rows, config)
    write_csv(out / "results.csv", rows, CSV_FIELDS)
    write_text_atomic(out / "summary.md", summary_table(result.rows, config))
    plot_figure3a(result.rows, out / "figure3a.png")
    if any(r["stage"] == "specific" for r in rows):
        plot_figure3b(result.rows, out / "figure3b.png")
    return rows


def _by_dials(cfgs: Sequence[Config], *names: str) -> dict[tuple, Config]:
    return {tuple(float(c.dials[n]) for n in names): c for c in cfgs}


def summary_table(rows: Sequence[Row], config: SyntheticConfig) -> str:
    """Markdown tables: shared accuracies vs β next to the paper's Figure 3(a), and the
    specific1/specific2 accuracies per (β, λ)."""
    shared = _by_dials(configs(rows, "shared"), "beta")
    lines = [
        f"# Synthetic reproduction (n={config.n_samples}, step 1 {config.shared_epochs} "
        f"epochs, step 2 {config.specific_epochs} epochs, seeds {list(config.seeds)})", "",
        "## Shared representation (shared1 ‖ shared2) vs β — ours (paper Figure 3(a))", "",
        "| β | yc | y1 | y2 |", "|---|---|---|---|"]
    for beta in config.betas:
        paper = FIGURE_3A.get(float(beta))
        cells = [(shared[(float(beta),)].cell(f"shared.{label}", "nan")
                  if (float(beta),) in shared else "nan")
                 + (f" ({paper[k]:.2f})" if paper is not None else "")
                 for k, label in enumerate(("yc", "y1", "y2"))]
        lines.append(f"| {beta:g} | " + " | ".join(cells) + " |")
    specific = _by_dials(configs(rows, "specific"), "beta", "lam")
    for rep in ("specific1", "specific2"):
        if not any(f"{rep}.{label}" in c.values for c in specific.values()
                   for label in LABEL_NAMES):
            continue
        lines += ["", f"## {rep} vs (β, λ)", "", "| β | λ | " + " | ".join(LABEL_NAMES) + " |",
                  "|---|---|---|---|---|"]
        for beta in config.step2_betas:
            for lam in config.lambdas:
                cfg = specific.get((float(beta), float(lam)))
                cells = [cfg.cell(f"{rep}.{label}", "nan") if cfg else "nan"
                         for label in LABEL_NAMES]
                lines.append(f"| {beta:g} | {lam:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
