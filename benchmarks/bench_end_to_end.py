"""End-to-end time of the paper's synthetic experiment (``dssl reproduce synthetic``),
measured on a small grid and extrapolated to the paper's full size and grid.

The paper's Figure 3 needs, at n = 90000 (72000 training rows): step 1 for 13 β × 3 seeds
(50 epochs each) and step 2 for 2 β × 7 λ × 3 seeds (30 epochs each), every model probed.

* ``sequential`` — runs :func:`disentangled_ssl.experiments.synthetic.run_synthetic` (the code
  behind ``dssl reproduce synthetic``) on a small grid (2 β, 1 step-2 β, 2 λ, 1 seed) at
  ``--n-samples`` / ``--epochs`` and takes the evaluation cost per run (transform + probes +
  writing results) from its wall time minus the training seconds in its CSV. The training cost
  comes from one ``fit_shared`` / ``fit_specific`` at the same size: the loop's per-epoch time,
  plus the fixed per-run setup (validation, initialisation). Extrapolation: epoch time ∝ rows,
  setup and evaluation ∝ rows (``bench_probe.py --n-samples 90000`` measures evaluation at the
  paper's size directly).
* ``ensemble`` — times the same grid trained as batched ensembles
  (:func:`~disentangled_ssl.training.ensemble.fit_shared_grid` over all 13 β of one seed,
  :func:`~disentangled_ssl.training.ensemble.fit_specific_grid` over the 7 λ of one β) and
  extrapolates with the same evaluation cost.
* ``workers`` — the paper's whole grid (13 β, 2 β × 7 λ, 3 seeds) at ``--n-samples`` with
  ``--epochs`` step-1 epochs and 3/5 as many step-2 epochs (the paper's 50:30), batched, in one
  process (all threads) and in ``--workers`` processes, side by side: the measured ratio of
  ``dssl reproduce synthetic --batched`` with and without ``--workers``.

Usage::

    python benchmarks/bench_end_to_end.py                        # ~1-2 min on 2 cores
    python benchmarks/bench_end_to_end.py --n-samples 90000 --epochs 2
    python benchmarks/bench_end_to_end.py --mode workers --epochs 5   # ~5 min

The real thing, for a quiet machine (the measured number to quote; ``--batched`` is the
ensemble path)::

    time dssl reproduce synthetic [--batched [--workers 2]] --n-samples 90000 \\
        --shared-epochs 50 --specific-epochs 30 --seeds 0,1,2 --device cpu \\
        --out results/paper-size --overwrite

Writes ``benchmarks/results/end_to_end.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import add_common_args, machine_info, set_threads, write_json

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.estimator import fit_shared_grid, fit_specific_grid
from disentangled_ssl.experiments.paper import PAPER_BETAS, PAPER_LAMBDAS, PAPER_STEP2_BETAS
from disentangled_ssl.experiments.synthetic import SyntheticConfig, run_synthetic

PAPER = {"n_samples": 90000, "n_train": 72000, "shared_epochs": 50, "specific_epochs": 30,
         "seeds": 3, "betas": len(PAPER_BETAS), "step2_betas": len(PAPER_STEP2_BETAS),
         "lambdas": len(PAPER_LAMBDAS)}


def _paper_runs() -> tuple[int, int]:
    step1 = PAPER["betas"] * PAPER["seeds"]
    step2 = PAPER["step2_betas"] * PAPER["lambdas"] * PAPER["seeds"]
    return step1, step2


def measure_sequential(n: int, epochs: int) -> dict:
    """Run a small grid through run_synthetic; per-sample-epoch training and per-run
    evaluation costs."""
    config = SyntheticConfig(n_samples=n, shared_epochs=epochs, specific_epochs=epochs,
                             betas=(0.1, 1.0), step2_betas=(1.0,), lambdas=(0.0, 1.0),
                             seeds=(0,), device="cpu")
    tic = time.perf_counter()
    make_synthetic(n_samples=n, seed=0)
    generate = time.perf_counter() - tic
    with tempfile.TemporaryDirectory() as out:
        tic = time.perf_counter()
        rows = run_synthetic(config, out, overwrite=True, progress=False)
        total = time.perf_counter() - tic
    runs: dict[tuple, float] = {}
    for r in rows:
        runs[(r["stage"], r["beta"], r["lam"], r["seed"])] = float(r["train_seconds"])
    evaluation = (total - generate - sum(runs.values())) / len(runs)
    # Training cost: the loop's epoch time and the per-run setup, from one direct fit.
    train, _ = make_synthetic(n_samples=n, seed=0).split(0.2, seed=0)
    est = DisentangledSSL(shared_epochs=epochs, specific_epochs=epochs, random_state=0,
                          device="cpu", verbose=False)
    tic = time.perf_counter()
    est.fit_shared(train.x1, train.x2)
    fit1 = time.perf_counter() - tic
    tic = time.perf_counter()
    est.fit_specific(train.x1, train.x2)
    fit2 = time.perf_counter() - tic
    epoch1 = [r["seconds"] for r in est.history_["shared"]]
    epoch2 = [r["seconds"] for r in est.history_["specific"]]
    samples = (len(train.x1) // est.batch_size) * est.batch_size
    return {
        "grid": "betas (0.1, 1), step-2 beta 1, lambdas (0, 1), seed 0",
        "total_s": round(total, 2), "generate_s": round(generate, 2),
        "train_seconds_in_csv": list(runs.values()),
        "evaluation_s_per_run": round(evaluation, 3),
        "step1_epoch_s": min(epoch1), "step2_epoch_s": min(epoch2),
        "step1_setup_s": round(fit1 - sum(epoch1), 3),
        "step2_setup_s": round(fit2 - sum(epoch2), 3),
        "step1_samples_per_s": round(samples / min(epoch1)),
        "step2_samples_per_s": round(samples / min(epoch2)),
        "n_train": len(train.x1),
    }


def measure_ensemble(n: int, epochs: int) -> dict:
    """Train one seed's whole β grid and one β's λ grid as batched ensembles."""
    train, _ = make_synthetic(n_samples=n, seed=0).split(0.2, seed=0)
    base = DisentangledSSL(shared_epochs=epochs, specific_epochs=epochs, random_state=0,
                           device="cpu", verbose=False)
    tic = time.perf_counter()
    grid = fit_shared_grid(base, PAPER_BETAS, train.x1, train.x2)
    step1 = time.perf_counter() - tic
    fitted = grid[list(PAPER_BETAS).index(PAPER_STEP2_BETAS[0])]
    tic = time.perf_counter()
    lam_grid = fit_specific_grid(fitted, PAPER_LAMBDAS, train.x1, train.x2)
    step2 = time.perf_counter() - tic
    epoch1 = [r["seconds"] for r in grid[0].history_["shared"]]  # the whole grid's epoch
    epoch2 = [r["seconds"] for r in lam_grid[0].history_["specific"]]
    samples = (len(train.x1) // base.batch_size) * base.batch_size
    return {
        "step1_grid_s": round(step1, 2), "step2_grid_s": round(step2, 2),
        "step1_members": len(PAPER_BETAS), "step2_members": len(PAPER_LAMBDAS),
        "step1_grid_epoch_s": min(epoch1), "step2_grid_epoch_s": min(epoch2),
        "step1_grid_setup_s": round(step1 - sum(epoch1), 3),
        "step2_grid_setup_s": round(step2 - sum(epoch2), 3),
        "step1_member_samples_per_s": round(len(PAPER_BETAS) * samples / min(epoch1)),
        "step2_member_samples_per_s": round(len(PAPER_LAMBDAS) * samples / min(epoch2)),
    }


def measure_workers(n: int, epochs: int, workers: int) -> dict:
    """The full paper grid, batched, with 1 and with ``workers`` processes (wall seconds)."""
    out: dict = {"grid": "13 betas, 2 step-2 betas x 7 lambdas, seeds 0,1,2 (batched)",
                 "shared_epochs": epochs, "specific_epochs": max(1, round(epochs * 3 / 5))}
    for k in (1, workers):
        config = SyntheticConfig(n_samples=n, shared_epochs=out["shared_epochs"],
                                 specific_epochs=out["specific_epochs"], seeds=(0, 1, 2),
                                 device="cpu", batched=True, workers=k)
        with tempfile.TemporaryDirectory() as folder:
            tic = time.perf_counter()
            run_synthetic(config, folder, overwrite=True, progress=False)
            out[f"workers_{k}_s"] = round(time.perf_counter() - tic, 1)
        print(f"  full grid, batched, {k} process(es): {out[f'workers_{k}_s']} s", flush=True)
    out["speedup"] = round(out["workers_1_s"] / out[f"workers_{workers}_s"], 2)
    return out


def extrapolate(seq: dict, ens: dict | None, n: int, generate_paper_s: float) -> dict:
    """Hours for the paper's grid at full size, one by one and with batched grids."""
    step1_runs, step2_runs = _paper_runs()
    scale = PAPER["n_train"] / seq["n_train"]  # epoch time and setup ∝ rows
    evaluation = (step1_runs + step2_runs) * seq["evaluation_s_per_run"] * PAPER["n_samples"] / n
    train_seq = (step1_runs * (seq["step1_epoch_s"] * PAPER["shared_epochs"]
                               + seq["step1_setup_s"]) * scale
                 + step2_runs * (seq["step2_epoch_s"] * PAPER["specific_epochs"]
                                 + seq["step2_setup_s"]) * scale)
    out = {
        "evaluation_h": round(evaluation / 3600, 3),
        "sequential_train_h": round(train_seq / 3600, 3),
        "sequential_total_h": round((train_seq + evaluation + generate_paper_s) / 3600, 3),
    }
    if ens is not None:
        grids1 = PAPER["seeds"]
        grids2 = PAPER["seeds"] * PAPER["step2_betas"]
        train_ens = (grids1 * (ens["step1_grid_epoch_s"] * PAPER["shared_epochs"]
                               + ens["step1_grid_setup_s"]) * scale
                     + grids2 * (ens["step2_grid_epoch_s"] * PAPER["specific_epochs"]
                                 + ens["step2_grid_setup_s"]) * scale)
        out["ensemble_train_h"] = round(train_ens / 3600, 3)
        out["ensemble_total_h"] = round((train_ens + evaluation + generate_paper_s) / 3600, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, n_samples=20000, epochs=1, repeats=1)
    parser.add_argument("--mode", choices=("sequential", "ensemble", "both", "workers"),
                        default="both")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for --mode workers (default 2)")
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()
    tic = time.perf_counter()
    make_synthetic(n_samples=PAPER["n_samples"], seed=0)
    generate_paper = time.perf_counter() - tic
    # Warm-up: the first fit of a process pays one-time initialisation (lazy imports).
    warm = make_synthetic(n_samples=1024, seed=0)
    DisentangledSSL(shared_epochs=1, specific_epochs=1, random_state=0, device="cpu",
                    verbose=False).fit(warm.x1, warm.x2)
    results: dict = {"generate_paper_data_s": round(generate_paper, 2), "repeats": []}
    for rep in range(args.repeats):
        entry: dict = {}
        if args.mode == "workers":
            entry["workers"] = measure_workers(args.n_samples, args.epochs, args.workers)
            print(f"repeat {rep + 1}: {args.workers} processes ×{entry['workers']['speedup']} "
                  "faster than one", flush=True)
            results["repeats"].append(entry)
            continue
        entry["sequential"] = measure_sequential(args.n_samples, args.epochs)
        print(f"repeat {rep + 1}: run_synthetic small grid {entry['sequential']['total_s']} s "
              f"(step 1 {entry['sequential']['step1_samples_per_s']:,} samples/s, step 2 "
              f"{entry['sequential']['step2_samples_per_s']:,} samples/s, evaluation "
              f"{entry['sequential']['evaluation_s_per_run']} s per run)", flush=True)
        if args.mode in ("ensemble", "both"):
            entry["ensemble"] = measure_ensemble(args.n_samples, args.epochs)
            print(f"  batched grids: 13 β in {entry['ensemble']['step1_grid_s']} s "
                  f"({entry['ensemble']['step1_member_samples_per_s']:,} member-samples/s), "
                  f"7 λ in {entry['ensemble']['step2_grid_s']} s "
                  f"({entry['ensemble']['step2_member_samples_per_s']:,} member-samples/s)",
                  flush=True)
        entry["paper_grid_estimate"] = extrapolate(entry["sequential"], entry.get("ensemble"),
                                                   args.n_samples, generate_paper)
        print(f"  paper grid at full size ≈ {entry['paper_grid_estimate']}", flush=True)
        results["repeats"].append(entry)
    payload = {
        "benchmark": "end_to_end",
        "settings": {"n_samples": args.n_samples, "epochs": args.epochs, "mode": args.mode,
                     "paper": PAPER},
        "machine": machine,
        "results": results,
    }
    write_json("end_to_end", payload, args.out)


if __name__ == "__main__":
    main()
