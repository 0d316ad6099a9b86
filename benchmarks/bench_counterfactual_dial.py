"""Counterfactual quality as a function of the dials β and λ, and the leakage-based choice.

For every seed: the paper's generator (n = 20000), step 1 for every β of the grid in one
batched ensemble (:func:`~disentangled_ssl.estimator.fit_shared_grid`), step 2 for every λ on
each of them (:func:`~disentangled_ssl.estimator.fit_specific_grid`), decoders on each
(β, λ) model's frozen codes (``fit_decoders``), and on the test rows:

- the counterfactual R² against the truth (each test row ``a`` with a random other row
  ``b``, as ``bench_counterfactual.py``) and the reconstruction R² (the decoders' ceiling);
- the linear probes ``dssl sweep`` records: the shared code on ``yc``, ``y1``, ``y2``, the
  specific codes on their own private label and on ``yc`` (leakage).

Then the settings ``dssl select`` would choose from those probes (``--max-leakage`` on the
specific code of modality 1, and ``--keep`` for β) are set beside the setting with the best
counterfactuals. The figure: counterfactual R² and specific-code leakage over the grid.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_counterfactual_dial.py            # 3 seeds, ~25 min
    OMP_NUM_THREADS=1 python benchmarks/bench_counterfactual_dial.py --seeds 0  # ~8 min

Writes ``benchmarks/results/counterfactual_dial.json`` and ``counterfactual_dial.png``.
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
from bench_counterfactual import estimator_scores, pairs

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.estimator import fit_shared_grid, fit_specific_grid
from disentangled_ssl.evaluation import linear_probe
from disentangled_ssl.experiments.results import configs, tidy_rows
from disentangled_ssl.experiments.select import keep_target, leakage_target, select

BETAS = (0.0, 1.0, 10.0, 100.0, 1000.0)
LAMS = (0.0, 0.1, 1.0, 10.0, 100.0)


def run_seed(seed: int, args: argparse.Namespace) -> list[dict]:
    data = make_synthetic(n_samples=args.n_samples, seed=seed)
    train, test = data.split(test_fraction=0.2, seed=0)
    a, b = pairs(test, seed)
    base = DisentangledSSL(shared_epochs=args.shared_epochs, specific_epochs=args.specific_epochs,
                           decoder_epochs=args.decoder_epochs, random_state=seed, verbose=False)
    records = []
    for beta, step1 in zip(args.betas, fit_shared_grid(base, args.betas, train.x1, train.x2)):
        emb_train, emb_test = step1.transform(train.x1, train.x2), step1.transform(test.x1,
                                                                                  test.x2)
        records.append(probe_record(f"shared-{beta}-{seed}", "shared", {"beta": beta}, seed, {
            "shared": linear_probe(emb_train.shared, train.labels, emb_test.shared,
                                   test.labels)}))
        for lam, est in zip(args.lams, fit_specific_grid(step1, args.lams, train.x1, train.x2)):
            tic = time.perf_counter()
            est.fit_decoders(train.x1, train.x2)
            scores = estimator_scores(est, test, a, b)
            emb_train, emb_test = est.transform(train.x1, train.x2), est.transform(test.x1,
                                                                                  test.x2)
            probes = {f"specific{i + 1}": linear_probe(
                emb_train.specific_list[i], train.labels, emb_test.specific_list[i],
                test.labels) for i in range(2)}
            decoded = [{"representation": "decoded", "label": "", "metric": f"{what}_r2",
                        "value": scores[what]["mean"]}
                       for what in ("counterfactual", "reconstruction")]
            records.append(probe_record(f"specific-{beta}-{lam}-{seed}", "specific",
                                        {"beta": beta, "lam": lam}, seed, probes, decoded))
            print(f"  seed {seed} β {beta:g} λ {lam:g}: counterfactual R² "
                  f"{scores['counterfactual']['mean']:.3f}, reconstruction "
                  f"{scores['reconstruction']['mean']:.3f} ({time.perf_counter() - tic:.0f} s)",
                  flush=True)
    return records


def plot(grid: dict, args: argparse.Namespace, marks: dict[str, tuple[float, float]],
         path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("decoded.counterfactual_r2", "counterfactual R² vs truth (higher is better)",
               "viridis"),
              ("specific1.yc", "leakage: specific1 probe accuracy on yc (lower is better)",
               "magma_r"))
    styles = {"best counterfactual": ("*", "white", 260),
              "dssl select --max-leakage": ("s", "red", 150),
              "dssl select --keep (β) + --max-leakage (λ)": ("D", "cyan", 90)}
    for ax, (metric, title, cmap) in zip(axes, panels):
        values = np.array([[grid[(beta, lam)][metric]["mean"] for lam in args.lams]
                           for beta in args.betas])
        image = ax.imshow(values, cmap=cmap, aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.85)
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                red, green, blue, _ = image.cmap(image.norm(values[r, c]))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(c, r, f"{values[r, c]:.3f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        for offset, (label, (beta, lam)) in zip((-0.3, 0.0, 0.3), marks.items()):
            marker, colour, size = styles[label]
            ax.scatter([list(args.lams).index(lam) + offset],
                       [list(args.betas).index(beta) - 0.3],
                       marker=marker, s=size, color=colour, edgecolors="black",
                       label=label, zorder=3)
        ax.set_xticks(range(len(args.lams)), [f"{v:g}" for v in args.lams])
        ax.set_yticks(range(len(args.betas)), [f"{v:g}" for v in args.betas])
        ax.set_xlabel("λ (step 2)")
        ax.set_ylabel("β (step 1)")
        ax.set_title(title, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle(f"Counterfactuals over the dials (n = {args.n_samples}, seeds "
                 f"{list(args.seeds)}: seed means)", fontsize=11)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--betas", type=float_list, default=BETAS)
    parser.add_argument("--lams", type=float_list, default=LAMS)
    parser.add_argument("--shared-epochs", type=int, default=5)
    parser.add_argument("--specific-epochs", type=int, default=5)
    parser.add_argument("--decoder-epochs", type=int, default=10)
    parser.add_argument("--max-leakage", type=float, default=0.6,
                        help="dssl select --max-leakage on specific1's yc accuracy (default 0.6)")
    parser.add_argument("--keep", type=float, default=0.95)
    parser.add_argument("--seeds", type=int_list, default=(0, 1, 2))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--replot", type=Path, default=None,
                        help="redraw the figure from an earlier run's JSON (no training)")
    args = parser.parse_args()
    if args.replot is not None:
        payload = json.loads(args.replot.read_text())
        settings = payload["settings"]
        args.betas, args.lams = tuple(settings["betas"]), tuple(settings["lams"])
        args.n_samples, args.seeds = settings["n_samples"], tuple(settings["seeds"])
        grid = {(g["beta"], g["lam"]): g for g in payload["grid"]}
        marks = {k: (v["beta"], v["lam"]) for k, v in payload["choices"].items()}
        plot(grid, args, marks, args.replot.with_suffix(".png"))
        print(f"figure: {args.replot.with_suffix('.png')}")
        return
    set_threads(args.threads)
    machine = machine_info()
    tic = time.perf_counter()
    records = [r for seed in args.seeds for r in run_seed(seed, args)]
    rows = tidy_rows(records, ["beta", "lam"])
    grid = {}
    for cfg in configs(rows, "specific"):
        key = (float(cfg.dials["beta"]), float(cfg.dials["lam"]))
        grid[key] = {m: {"mean": cfg.mean(m), "std": cfg.std(m)} for m in cfg.values}
    best = max(grid, key=lambda k: grid[k]["decoded.counterfactual_r2"]["mean"])
    leakage = select(rows, leakage_target(args.max_leakage, "specific1"))
    leak_pick = leakage.chosen or leakage.closest
    keep = select(rows, keep_target(args.keep))
    keep_beta = float((keep.chosen or keep.closest).dials["beta"])
    at_beta = [r for r in rows if r["beta"] == keep_beta or r["stage"] == "shared"]
    two_step = select(at_beta, leakage_target(args.max_leakage, "specific1"))
    two_pick = two_step.chosen or two_step.closest
    marks = {"best counterfactual": best,
             "dssl select --max-leakage": (float(leak_pick.dials["beta"]),
                                           float(leak_pick.dials["lam"])),
             "dssl select --keep (β) + --max-leakage (λ)": (float(two_pick.dials["beta"]),
                                                           float(two_pick.dials["lam"]))}
    out = args.out or RESULTS_DIR / "counterfactual_dial.json"
    figure = out.with_suffix(".png")
    plot(grid, args, marks, figure)

    print(f"\n{'β':>7}{'λ':>7}{'counterfactual R²':>20}{'reconstruction':>16}"
          f"{'spec1 y1':>10}{'spec1 yc':>10}")
    for (beta, lam), m in grid.items():
        print(f"{beta:>7g}{lam:>7g}{m['decoded.counterfactual_r2']['mean']:>14.3f} ± "
              f"{m['decoded.counterfactual_r2']['std']:.3f}"
              f"{m['decoded.reconstruction_r2']['mean']:>16.3f}"
              f"{m['specific1.y1']['mean']:>10.3f}{m['specific1.yc']['mean']:>10.3f}")
    for label, (beta, lam) in marks.items():
        print(f"{label}: β {beta:g}, λ {lam:g}: counterfactual R² "
              f"{grid[(beta, lam)]['decoded.counterfactual_r2']['mean']:.3f}")
    write_json("counterfactual_dial", {
        "benchmark": "counterfactual_dial", "machine": machine,
        "settings": {"n_samples": args.n_samples, "betas": list(args.betas),
                     "lams": list(args.lams), "seeds": list(args.seeds),
                     "shared_epochs": args.shared_epochs, "specific_epochs": args.specific_epochs,
                     "decoder_epochs": args.decoder_epochs, "max_leakage": args.max_leakage,
                     "keep": args.keep, "figure": figure.name},
        "seconds": round(time.perf_counter() - tic, 1),
        "grid": [{"beta": k[0], "lam": k[1], **v} for k, v in grid.items()],
        "choices": {label: {"beta": v[0], "lam": v[1]} for label, v in marks.items()},
        "leakage_selection_met": leakage.met, "rows": rows}, out)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
