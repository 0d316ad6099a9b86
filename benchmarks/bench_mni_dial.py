"""The generator's MNI dial: the step-1 β trade-off at three settings of ``entanglement``.

``make_synthetic(entanglement=e)`` observes each modality through a random projection that
drops ``round(e · x_dim)`` of its dimensions: at 0 (the paper's setting) the shared latent is
recoverable exactly from either modality and independent of the private ones, so the Minimum
Necessary Information point is attainable; above 0 it is not (the best estimate of Zs from
X_i carries some of Z_i; :func:`~disentangled_ssl.data.synthetic.shared_recoverability` gives
how much, exactly, from the generator's matrices).

At each setting: step 1 for every β of the grid in one batched ensemble
(:func:`~disentangled_ssl.estimator.fit_shared_grid`), linear probes of the shared code on
``yc`` (shared information kept) and ``y1``, ``y2`` (private information leaked), the β that
``dssl select --keep 0.95`` would choose (keep at least 95 % of the best ``yc`` accuracy, and
among those settings leak the least), then step 2 at that β (``lam`` at its default) and the
probes of the specific codes (own private label recovered; ``yc`` leaked).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_mni_dial.py   # n = 20000, 3 settings, 3 seeds: ~6 min

Writes ``benchmarks/results/mni_dial.json`` and ``mni_dial.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import (
    RESULTS_DIR,
    float_list,
    int_list,
    machine_info,
    probe_record,
    set_threads,
    write_json,
)

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.data import shared_recoverability
from disentangled_ssl.estimator import fit_shared_grid
from disentangled_ssl.evaluation import linear_probe
from disentangled_ssl.experiments.results import tidy_rows
from disentangled_ssl.experiments.select import keep_target, select

BETAS = (0.0, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)


def run_setting(entanglement: float, args: argparse.Namespace) -> dict:
    """Step 1 over the β grid for every seed, the β chosen on the seed means, step 2 there."""
    records, members, splits, recoverability = [], {}, {}, []
    step1_seconds = 0.0
    for seed in args.seeds:
        data = make_synthetic(n_samples=args.n_samples, seed=seed, entanglement=entanglement)
        train, test = data.split(test_fraction=0.2, seed=0)
        splits[seed] = (train, test)
        recoverability.append(shared_recoverability(data))
        base = DisentangledSSL(shared_epochs=args.shared_epochs,
                               specific_epochs=args.specific_epochs, random_state=seed,
                               verbose=False)
        tic = time.perf_counter()
        members[seed] = fit_shared_grid(base, args.betas, train.x1, train.x2)
        step1_seconds += time.perf_counter() - tic
        for beta, est in zip(args.betas, members[seed]):
            probe = linear_probe(est.transform(train.x1, train.x2).shared, train.labels,
                                 est.transform(test.x1, test.x2).shared, test.labels)
            records.append(probe_record(f"e{entanglement}-b{beta}-s{seed}", "shared",
                                        {"beta": beta}, seed, {"shared": probe}))
    rows = tidy_rows(records, ["beta"])
    selection = select(rows, keep_target(args.keep))
    chosen = float((selection.chosen or selection.closest).dials["beta"])
    curve = []
    for beta in args.betas:
        point: dict = {"beta": beta}
        for label in ("yc", "y1", "y2"):
            values = [r["value"] for r in rows if r["beta"] == beta and r["label"] == label]
            point[label], point[f"{label}_std"] = float(np.mean(values)), _std(values)
        curve.append(point)
    step2: dict[str, list[dict[str, float]]] = {"specific1": [], "specific2": []}
    tic = time.perf_counter()
    for seed in args.seeds:
        train, test = splits[seed]
        est = members[seed][list(args.betas).index(chosen)].fit_specific(train.x1, train.x2)
        emb_train, emb_test = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
        for i, name in enumerate(step2):
            step2[name].append(linear_probe(emb_train.specific_list[i], train.labels,
                                            emb_test.specific_list[i], test.labels))
    step2_seconds = time.perf_counter() - tic
    summary = {name: {label: {"mean": float(np.mean([p[label] for p in probes])),
                              "std": _std([p[label] for p in probes])}
                      for label in probes[0]} for name, probes in step2.items()}
    return {"entanglement": entanglement,
            "recoverability": {k: float(np.mean([r[k] for r in recoverability]))
                               for k in recoverability[0]},
            "curve": curve, "chosen_beta": chosen, "met": selection.met,
            "step2_at_chosen_beta": summary, "step2_per_seed": step2,
            "step1_seconds": round(step1_seconds, 1), "step2_seconds": round(step2_seconds, 1)}


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def plot(results: list[dict], path: Path, keep: float) -> None:
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    fig = Figure(figsize=(4.2 * len(results), 3.9), layout="constrained")
    axes = fig.subplots(1, len(results), sharey=True, squeeze=False)[0]
    for ax, res in zip(axes, results):
        betas = [p["beta"] for p in res["curve"]]
        x = np.arange(len(betas))
        for label, colour, name in (("yc", "tab:blue", "yc (shared: kept)"),
                                    ("y1", "tab:red", "y1 (private 1: leaked)"),
                                    ("y2", "tab:orange", "y2 (private 2: leaked)")):
            ax.errorbar(x, [p[label] for p in res["curve"]],
                        yerr=[p[f"{label}_std"] for p in res["curve"]], fmt="o-",
                        color=colour, label=name, capsize=2)
        k = betas.index(res["chosen_beta"])
        ax.axvline(k, color="grey", ls="--", lw=1)
        s1, s2 = res["step2_at_chosen_beta"]["specific1"], res["step2_at_chosen_beta"]["specific2"]
        r = res["recoverability"]
        ax.set_title(f"entanglement = {res['entanglement']:g}\n"
                     f"R²(Zs from X1) = {r['shared_r2_1']:.2f}; Z1 in that estimate: "
                     f"{r['private_in_shared_1']:.0%}", fontsize=9)
        ax.text(0.02, 0.03, f"chosen β = {res['chosen_beta']:g} (dashed)\nstep 2 there: "
                f"specific1 y1 {s1['y1']['mean']:.3f} (yc {s1['yc']['mean']:.3f})\n"
                f"specific2 y2 {s2['y2']['mean']:.3f} (yc {s2['yc']['mean']:.3f})",
                transform=ax.transAxes, fontsize=8, va="bottom",
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.set_xticks(x, [f"{b:g}" for b in betas], rotation=45)
        ax.set_xlabel("β (step 1)")
        ax.axhline(0.5, color="black", lw=0.5, ls=":")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("linear-probe accuracy of the shared code")
    axes[-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"The MNI dial: step-1 β trade-off (chosen: keep ≥ {keep:.0%} of the best "
                 "yc, then least leakage)", fontsize=10)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--entanglements", type=float_list, default=(0.0, 0.4, 0.7))
    parser.add_argument("--betas", type=float_list, default=BETAS)
    parser.add_argument("--shared-epochs", type=int, default=5)
    parser.add_argument("--specific-epochs", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.95)
    parser.add_argument("--seeds", type=int_list, default=(0, 1, 2))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--replot", type=Path, default=None,
                        help="redraw the figure from an earlier run's JSON (no training)")
    args = parser.parse_args()
    if args.replot is not None:
        payload = json.loads(args.replot.read_text())
        plot(payload["results"], args.replot.with_suffix(".png"), payload["settings"]["keep"])
        print(f"figure: {args.replot.with_suffix('.png')}")
        return
    set_threads(args.threads)
    machine = machine_info()
    results = []
    for e in args.entanglements:
        res = run_setting(e, args)
        results.append(res)
        print(f"entanglement {e:g}: R²(Zs|X1) {res['recoverability']['shared_r2_1']:.3f}; "
              f"chosen β {res['chosen_beta']:g}; step 1 {res['step1_seconds']:.0f} s")
        for p in res["curve"]:
            print(f"  β {p['beta']:>7g}  " + "  ".join(
                f"{k} {p[k]:.3f} ± {p[k + '_std']:.3f}" for k in ("yc", "y1", "y2")))
        for name, probe in res["step2_at_chosen_beta"].items():
            print(f"  step 2 {name}: " + "  ".join(
                f"{k} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in probe.items()))
    out = args.out or RESULTS_DIR / "mni_dial.json"
    figure = out.with_suffix(".png")
    plot(results, figure, args.keep)
    write_json("mni_dial", {
        "benchmark": "mni_dial", "machine": machine,
        "settings": {"n_samples": args.n_samples, "betas": list(args.betas),
                     "shared_epochs": args.shared_epochs, "specific_epochs": args.specific_epochs,
                     "seeds": list(args.seeds), "selection": f"keep_target({args.keep})",
                     "keep": args.keep, "figure": figure.name},
        "results": results}, out)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
