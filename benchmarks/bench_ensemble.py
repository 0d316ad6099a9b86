"""Batched ensemble vs one-by-one training of a dial grid: speed ratio and how closely the
members match.

Step 1: K values of β trained by :func:`~disentangled_ssl.training.ensemble.fit_shared_grid`
against K calls of ``DisentangledSSL(beta=b).fit_shared``. Step 2: K values of λ on one fitted
step 1, :func:`~disentangled_ssl.training.ensemble.fit_specific_grid` against K calls of
``fitted.with_params(lam=l).fit_specific``. The two orders alternate between repeats so both see
the same contention. ``match`` is the largest relative gap between a member's weights and its
one-by-one twin (max |a - b| / max |b| over each tensor).

Usage::

    python benchmarks/bench_ensemble.py                        # K = 4, ~1 min on 2 cores
    python benchmarks/bench_ensemble.py --members 13 --n-samples 90000 --epochs 1

Writes ``benchmarks/results/ensemble.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import (
    add_common_args,
    fmt,
    machine_info,
    set_threads,
    summary,
    write_json,
)

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.estimator import fit_shared_grid, fit_specific_grid
from disentangled_ssl.experiments.paper import PAPER_BETAS, PAPER_LAMBDAS


def _gap(members: list[DisentangledSSL], singles: list[DisentangledSSL]) -> tuple[float, float]:
    """Largest (max-abs, Frobenius) relative gap of any weight tensor of any member. The
    max-abs gap is dominated by weights whose gradient is ~0, where Adam's normalised step
    turns rounding noise into a step of ~lr; the Frobenius gap measures the whole tensor."""
    worst_max = worst_fro = 0.0
    for a, b in zip(members, singles):
        for p, q in zip(a.model_.parameters(), b.model_.parameters()):
            d, q = (p - q).detach(), q.detach()
            if float(q.abs().max()) > 0:
                worst_max = max(worst_max, float(d.abs().max() / q.abs().max()))
                worst_fro = max(worst_fro, float(d.norm() / q.norm()))
    return worst_max, worst_fro


def _timed(fn):
    tic, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - tic, time.process_time() - cpu


def _record(res: dict, step: str, ensemble: tuple[float, float],
            sequential: tuple[float, float], gap: tuple[float, float]) -> None:
    """Append one repeat's (wall, CPU) times, their ratios and the member gaps for ``step``."""
    res[f"{step}_ensemble_s"].append(ensemble[0])
    res[f"{step}_sequential_s"].append(sequential[0])
    res[f"{step}_ratio"].append(sequential[0] / ensemble[0])
    res[f"{step}_cpu_ratio"].append(sequential[1] / ensemble[1])
    res[f"{step}_match"].append(gap[0])
    res[f"{step}_match_fro"].append(gap[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, n_samples=10000, epochs=1, repeats=2)
    parser.add_argument("--members", type=int, default=4,
                        help="grid size K (β values from the paper's grid; λ likewise, up to 7)")
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()
    train, _ = make_synthetic(n_samples=args.n_samples, seed=0).split(0.2, seed=0)
    x1, x2 = train.x1, train.x2
    betas = [PAPER_BETAS[round(i * (len(PAPER_BETAS) - 1) / max(args.members - 1, 1))]
             for i in range(args.members)] if args.members <= len(PAPER_BETAS) else \
        [0.01 * (k + 1) for k in range(args.members)]
    lams = [PAPER_LAMBDAS[k % len(PAPER_LAMBDAS)] * (1 + k // len(PAPER_LAMBDAS))
            for k in range(args.members)]
    settings = {"shared_epochs": args.epochs, "specific_epochs": args.epochs,
                "random_state": 0, "device": "cpu", "verbose": False}
    # Warm-up (lazy imports and first-call costs would otherwise land on the first timing).
    DisentangledSSL(**settings).fit(x1[:1024], x2[:1024])
    fit_shared_grid(DisentangledSSL(**settings), betas[:2], x1[:1024], x2[:1024])

    keys = ("step1_ensemble_s", "step1_sequential_s", "step1_ratio", "step1_cpu_ratio",
            "step2_ensemble_s", "step2_sequential_s", "step2_ratio", "step2_cpu_ratio",
            "step1_match", "step2_match", "step1_match_fro", "step2_match_fro")
    res: dict[str, list[float]] = {k: [] for k in keys}
    for rep in range(args.repeats):
        def ens1():
            return fit_shared_grid(DisentangledSSL(**settings), betas, x1, x2)

        def seq1():
            return [DisentangledSSL(beta=b, **settings).fit_shared(x1, x2) for b in betas]

        first, second = (ens1, seq1) if rep % 2 == 0 else (seq1, ens1)
        out_a, wall_a, cpu_a = _timed(first)
        out_b, wall_b, cpu_b = _timed(second)
        (grid, e_wall, e_cpu), (singles, s_wall, s_cpu) = (
            ((out_a, wall_a, cpu_a), (out_b, wall_b, cpu_b)) if first is ens1
            else ((out_b, wall_b, cpu_b), (out_a, wall_a, cpu_a)))
        _record(res, "step1", (e_wall, e_cpu), (s_wall, s_cpu), _gap(grid, singles))

        fitted = singles[0]
        spec_grid, e_wall, e_cpu = _timed(lambda f=fitted: fit_specific_grid(f, lams, x1, x2))
        spec_singles, s_wall, s_cpu = _timed(
            lambda f=fitted: [f.with_params(lam=lam).fit_specific(x1, x2) for lam in lams])
        _record(res, "step2", (e_wall, e_cpu), (s_wall, s_cpu), _gap(spec_grid, spec_singles))
        print(f"repeat {rep + 1}/{args.repeats}: step 1 ×{res['step1_ratio'][-1]:.2f} "
              f"(CPU ×{res['step1_cpu_ratio'][-1]:.2f}, match {res['step1_match'][-1]:.1e}), "
              f"step 2 ×{res['step2_ratio'][-1]:.2f} (CPU ×{res['step2_cpu_ratio'][-1]:.2f}, "
              f"match {res['step2_match'][-1]:.1e})", flush=True)
    stats = {k: summary(v, digits=10 if "match" in k else 4) for k, v in res.items()}
    payload = {
        "benchmark": "ensemble",
        "settings": {"members": args.members, "betas": betas, "lams": lams,
                     "n_samples": args.n_samples, "n_train": len(x1), "epochs": args.epochs,
                     "repeats": args.repeats},
        "machine": {**machine, "device": "cpu", "torch_threads": torch.get_num_threads()},
        "results": stats,
    }
    for k in (1, 2):
        print(f"step {k}, {args.members} members: ensemble "
              f"{fmt(stats[f'step{k}_ensemble_s'], ' s', digits=2)} vs sequential "
              f"{fmt(stats[f'step{k}_sequential_s'], ' s', digits=2)}: "
              f"×{fmt(stats[f'step{k}_ratio'], '', digits=2)}")
    print(f"largest relative weight gap to one-by-one training (max-abs / Frobenius): step 1 "
          f"{stats['step1_match']['max']:.1e} / {stats['step1_match_fro']['max']:.1e}, step 2 "
          f"{stats['step2_match']['max']:.1e} / {stats['step2_match_fro']['max']:.1e}")
    write_json("ensemble", payload, args.out)


if __name__ == "__main__":
    main()
