"""``dssl reproduce synthetic``: the paper's Figure 3 experiment.

Step 1 over a β grid (probe the concatenated shared codes on yc, y1, y2), then step 2 over a
λ grid on chosen β values (probe specific1/specific2), for each seed. Writes a tidy CSV of every
accuracy, a comparison table against the paper, and Figure 3(a)/(b)-shaped PNGs.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    equally among its members. ``workers > 1`` trains independent units of the grid in that
    many processes, each with ``cpu_count // workers`` torch threads (on a 2-core CPU two
    1-thread processes do more work than one 2-thread process); results equal the
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
    extra: dict = field(default_factory=dict)
    batched: bool = False
    workers: int = 1


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


def _fit_unit(config: SyntheticConfig, seed: int, betas: Sequence[float], train: PairedData,
              test: PairedData, on_run: Callable[[dict], None]) -> dict[float, list[dict]]:
    """Train and probe one unit of work: the step-1 models of ``betas`` at ``seed`` (one
    batched ensemble when ``config.batched``, else one by one) and, for the β values in
    ``config.step2_betas``, their λ grids. Returns β -> its rows (shared rows, then the
    specific rows in λ order); ``on_run`` is called after every trained model."""
    from disentangled_ssl.training.ensemble import fit_shared_grid, fit_specific_grid

    def estimator(beta: float = 1.0) -> DisentangledSSL:
        return DisentangledSSL(
            beta=beta, shared_epochs=config.shared_epochs,
            specific_epochs=config.specific_epochs, batch_size=config.batch_size, lr=config.lr,
            kappa=config.kappa, random_state=seed, device=config.device, verbose=False,
        )

    lams = list(config.lambdas)
    rows: dict[float, list[dict]] = {}
    if config.batched:
        tic = time.perf_counter()
        fitted = fit_shared_grid(estimator(), list(betas), train.x1, train.x2)
        shared_seconds = [(time.perf_counter() - tic) / len(fitted)] * len(fitted)
    else:
        fitted, shared_seconds = [], []
        for beta in betas:
            tic = time.perf_counter()
            fitted.append(estimator(beta).fit_shared(train.x1, train.x2))
            shared_seconds.append(time.perf_counter() - tic)
    for beta, est, seconds in zip(betas, fitted, shared_seconds):
        rows[beta] = _probe_rows("shared", beta, None, seed, seconds, est, train, test)
        on_run({"beta": beta, "seed": seed})
        if beta not in config.step2_betas:
            continue
        if config.batched:
            tic = time.perf_counter()
            specs = fit_specific_grid(est, lams, train.x1, train.x2)
            spec_seconds = [(time.perf_counter() - tic) / len(specs)] * len(specs)
        else:
            specs, spec_seconds = [], []
            for lam in lams:
                tic = time.perf_counter()
                specs.append(est.with_params(lam=lam).fit_specific(train.x1, train.x2))
                spec_seconds.append(time.perf_counter() - tic)
        for lam, spec, seconds in zip(lams, specs, spec_seconds):
            rows[beta] += _probe_rows("specific", beta, lam, seed, seconds, spec, train, test)
            on_run({"beta": beta, "lam": lam, "seed": seed})
    return rows


def _units(config: SyntheticConfig) -> list[tuple[int, tuple[float, ...]]]:
    """The (seed, β values) units of work, heaviest first.

    One worker: the β grid of each seed in one unit (one batched ensemble) or one unit per
    (seed, β). Several workers, batched: each seed's β grid is cut into ``workers`` chunks
    when the seeds alone do not divide evenly among the workers; chunks are balanced by
    estimated cost (a step-2 model ~2.6 step-1 model-epochs per epoch, measured), the step-2
    β values spread over them first."""
    betas = list(config.betas)

    def cost(beta: float) -> float:
        step2 = beta in config.step2_betas
        return config.shared_epochs + (
            2.6 * config.specific_epochs * len(config.lambdas) if step2 else 0.0)

    def unit_cost(unit: tuple[int, tuple[float, ...]]) -> float:
        return sum(cost(b) for b in unit[1])

    if not config.batched:
        units = [(s, (b,)) for s in config.seeds for b in betas]
    elif config.workers <= 1 or len(config.seeds) % config.workers == 0:
        units = [(s, tuple(betas)) for s in config.seeds]
    else:
        parts = min(config.workers, len(betas))
        chunks: list[list[float]] = [[] for _ in range(parts)]
        loads = [0.0] * parts
        for beta in sorted(betas, key=cost, reverse=True):  # greedy: largest first
            k = loads.index(min(loads))
            chunks[k].append(beta)
            loads[k] += cost(beta)
        units = [(s, tuple(b for b in betas if b in chunk))
                 for s in config.seeds for chunk in chunks if chunk]
    if config.workers > 1:
        units.sort(key=unit_cost, reverse=True)  # longest first: the pool finishes together
    return units


def _split_data(config: SyntheticConfig) -> tuple[PairedData, PairedData]:
    return make_synthetic(n_samples=config.n_samples, seed=config.data_seed).split(0.2, seed=0)


def _threads_per_worker(config: SyntheticConfig) -> int:
    return max(1, (os.cpu_count() or 1) // config.workers)


_WORKER_DATA: dict[tuple[int, int], tuple[PairedData, PairedData]] = {}


def _worker_unit(config: SyntheticConfig, seed: int, betas: tuple[float, ...], threads: int,
                 events: Any) -> dict[float, list[dict]]:
    """Process-pool side of :func:`_fit_unit` (data generated once per worker process). Torch
    and the probes' BLAS/OpenMP pools get ``threads`` threads, so the workers do not
    oversubscribe the cores."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        key = (config.n_samples, config.data_seed)
        if key not in _WORKER_DATA:  # a worker process serves several units of one run
            _WORKER_DATA.clear()
            _WORKER_DATA[key] = _split_data(config)
        train, test = _WORKER_DATA[key]
        return _fit_unit(config, seed, betas, train, test, events.put)


def _ordered_rows(config: SyntheticConfig, done: dict[tuple[int, float], list[dict]]
                  ) -> list[dict]:
    """Rows in the sequential run's order (seed, then β grid order) for the finished runs."""
    return [r for s in config.seeds for b in config.betas for r in done.get((s, b), [])]


def _run_units(config: SyntheticConfig, out: Path, bar: tqdm) -> list[dict]:
    """Every unit of :func:`_units`, in this process or over ``config.workers`` processes;
    ``results.csv`` is rewritten after each unit so partial results survive an interruption."""
    units = _units(config)
    done: dict[tuple[int, float], list[dict]] = {}

    def tick(event: dict) -> None:
        bar.update()
        bar.set_postfix(event)

    def finish(seed: int, result: dict[float, list[dict]]) -> None:
        for beta, beta_rows in result.items():
            done[(seed, beta)] = beta_rows
        _write_csv(out / "results.csv", _ordered_rows(config, done))

    if config.workers <= 1:
        train, test = _split_data(config)
        for seed, betas in units:
            finish(seed, _fit_unit(config, seed, betas, train, test, tick))
        return _ordered_rows(config, done)

    threads = _threads_per_worker(config)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(
            max_workers=min(config.workers, len(units)), mp_context=context) as pool:
        events = manager.Queue()
        pending = {pool.submit(_worker_unit, config, seed, betas, threads, events): seed
                   for seed, betas in units}
        while pending:
            finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while not events.empty():
                tick(events.get())
            for future in finished:
                finish(pending.pop(future), future.result())
        while not events.empty():
            tick(events.get())
    return _ordered_rows(config, done)


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
    if isinstance(config.workers, bool) or not isinstance(config.workers, int) or (
            config.workers < 1):
        raise DSSLError(f"workers must be a positive integer, got {config.workers!r}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    n_runs = len(config.seeds) * (
        len(config.betas) + len(config.step2_betas) * len(config.lambdas))
    bar = tqdm(total=n_runs, desc="reproduce synthetic", unit="run", disable=not progress)
    rows = _run_units(config, out, bar)
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
                    "threads": torch.get_num_threads(),
                    "threads_per_worker": (_threads_per_worker(config) if config.workers > 1
                                           else torch.get_num_threads())},
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
