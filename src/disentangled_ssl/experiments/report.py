"""A sweep's report: ``results.csv`` (tidy), ``summary.md`` (tables) and PNG figures shaped
like the paper's Figure 3 (Wang et al., ICLR 2025): (a) probe accuracy of the shared code vs β
with seed bands, (b) coverage vs leakage of the specific code over (β, λ) with its Pareto
frontier, plus the label-free held-out terms vs β (``labelfree.png``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from disentangled_ssl.sweeps.results import Config, Row, configs, write_csv
from disentangled_ssl.sweeps.spec import SweepSpec

if TYPE_CHECKING:
    from disentangled_ssl.sweeps.engine import SweepResult

SYNTHETIC_LABELS = ("yc", "y1", "y2")


def _groups(rows: Sequence[Row], dial_names: Sequence[str]) -> dict[str, list[Row]]:
    """Rows split by the values of the dials other than β and λ (one figure each); the key is
    a file-name suffix ("" when there are no other dials)."""
    others = [d for d in dial_names if d not in ("beta", "lam")]
    groups: dict[str, list[Row]] = {}
    for r in rows:
        suffix = "".join(f"_{d}-{r[d]}" for d in others if r[d] != "")
        groups.setdefault(suffix, []).append(r)
    return groups


def figure_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Probe-accuracy rows in the shape :mod:`disentangled_ssl.plots` reads (``stage, beta,
    lam, seed, representation, label, accuracy``; ``lam`` is "" on shared rows)."""
    return [{"stage": r["stage"], "beta": r["beta"],
             "lam": "" if r["stage"] == "shared" else r.get("lam", ""), "seed": r["seed"],
             "representation": r["representation"], "label": r["label"],
             "accuracy": r["value"]} for r in rows
            if r["metric"] == "accuracy" and r.get("beta", "") != ""]


def _band(ax: Any, x: Sequence[float], cfgs: Sequence[Config], metric: str, **style: Any
          ) -> None:
    mean = np.array([c.mean(metric) for c in cfgs])
    std = np.array([c.std(metric) for c in cfgs])
    (line,) = ax.plot(x, mean, "o-", **style)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)


def plot_label_free(rows: Sequence[Row], path: str | Path,
                    marks: dict[str, float] | None = None) -> None:
    """Held-out label-free terms vs β, mean ± std over seeds: the InfoNCE bound on
    I(Ẑc1; Ẑc2) (shared information kept) and the alignment term (−cos; lower means the two
    modalities' codes agree more, i.e. less private information), with the shared-label and
    private-label probe accuracies on twin axes when labels exist. ``marks``: name -> β drawn
    as a vertical line (e.g. the labelled and label-free choices)."""
    from disentangled_ssl.plots import _save, plt

    cfgs = [c for c in configs(rows, "shared")
            if "shared.heldout_mi_bound" in c.values and "beta" in c.dials]
    betas = [float(c.dials["beta"]) for c in cfgs]
    positive = [b for b in betas if b > 0] or [1.0]
    linthresh = min(positive) / 10
    xlim = (min(0.0, *betas) if min(betas) <= 0 else min(betas) / 2, max(betas) * 2)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    specs = [("shared.heldout_mi_bound", "held-out InfoNCE bound on I(Ẑc1;Ẑc2) (nats)",
              "shared.yc", "tab:red"),
             ("shared.heldout_alignment", "held-out alignment term (−cos; lower = aligned)",
              "shared.y1", "tab:blue")]
    for ax, (metric, title, acc, color) in zip(axes, specs):
        ax.set_xscale("symlog", linthresh=linthresh)
        _band(ax, betas, cfgs, metric, color="black", label=metric.split(".")[1])
        ax.set_ylabel(title)
        handles, names = ax.get_legend_handles_labels()
        if all(acc in c.values for c in cfgs):
            twin = ax.twinx()
            _band(twin, betas, cfgs, acc, color=color, alpha=0.8, label=f"{acc} (probe)")
            twin.set_ylabel(f"{acc} probe accuracy", color=color)
            more = twin.get_legend_handles_labels()
            handles, names = handles + more[0], names + more[1]
        for name, beta in (marks or {}).items():
            ax.axvline(beta, ls=":" if "free" in name else "--", color="grey", lw=1.2)
            ax.annotate(name, (beta, 0.02), xycoords=("data", "axes fraction"), fontsize=7,
                        rotation=90, va="bottom", ha="right", color="dimgrey")
        ax.set_xlim(*xlim)
        ax.set_xlabel("β (symlog)")
        ax.grid(alpha=0.3)
        ax.legend(handles, names, fontsize=7, loc="upper right")
    fig.suptitle("Label-free criteria on held-out data vs β (mean ± std over seeds)")
    fig.tight_layout()
    _save(fig, path)


def _cell(cfg: Config, metric: str, digits: int = 3) -> str:
    if metric not in cfg.values:
        return ""
    text = f"{cfg.mean(metric):.{digits}f}"
    return text + (f" ± {cfg.std(metric):.{digits}f}" if cfg.n(metric) > 1 else "")


def summary_markdown(spec: SweepSpec, rows: Sequence[Row], result: SweepResult | None = None
                     ) -> str:
    """Markdown tables of a sweep: shared code per step-1 setting, specific codes per
    setting, mean ± std over seeds; and, on labelled synthetic-style data, how the label-free
    criterion agrees with the labelled one."""
    labels = sorted({r["label"] for r in rows if r["metric"] == "accuracy"},
                    key=lambda s: (s not in SYNTHETIC_LABELS, SYNTHETIC_LABELS.index(s)
                                   if s in SYNTHETIC_LABELS else 0, s))
    params = spec.fixed
    lines = [f"# Sweep {spec.sweep_id()}", "",
             f"- data: {spec.data.describe()}",
             f"- grid: {spec.to_dict()['grid']}, seeds {list(spec.seeds)}",
             f"- fixed parameters: {params or 'library defaults'}"]
    if result is not None:
        lines.append(f"- trials: {result.n_done}/{result.n_trials} done, {result.n_computed} "
                     f"computed by this run in {result.seconds:.0f} s"
                     + (f"; {len(result.failed)} unit(s) failed" if result.failed else ""))
    shared = configs(rows, "shared")
    if shared:
        dials = list(dict.fromkeys(k for c in shared for k in c.dials))
        metrics = [f"shared.{lab}" for lab in labels] + [
            "shared.heldout_mi_bound", "shared.heldout_alignment"]
        lines += ["", "## Shared code (shared1 ‖ shared2): held-out probe accuracy and "
                  "label-free terms", "",
                  "| " + " | ".join([*dials, *metrics, "train s"]) + " |",
                  "|" + "---|" * (len(dials) + len(metrics) + 1)]
        for c in shared:
            secs = np.mean(list(c.train_seconds.values())) if c.train_seconds else float("nan")
            lines.append("| " + " | ".join([*(f"{c.dials.get(d, '')}" for d in dials),
                                            *(_cell(c, m) for m in metrics), f"{secs:.1f}"])
                         + " |")
    specific = configs(rows, "specific")
    if specific:
        dials = list(dict.fromkeys(k for c in specific for k in c.dials))
        reps = sorted({r["representation"] for r in rows
                       if r["stage"] == "specific" and r["metric"] == "accuracy"})
        metrics = [f"{rep}.{lab}" for rep in reps for lab in labels] + [
            "specific.heldout_orthogonality"]
        lines += ["", "## Specific codes: held-out probe accuracy and label-free terms", "",
                  "| " + " | ".join([*dials, *metrics, "train s"]) + " |",
                  "|" + "---|" * (len(dials) + len(metrics) + 1)]
        for c in specific:
            secs = np.mean(list(c.train_seconds.values())) if c.train_seconds else float("nan")
            lines.append("| " + " | ".join([*(f"{c.dials.get(d, '')}" for d in dials),
                                            *(_cell(c, m) for m in metrics), f"{secs:.1f}"])
                         + " |")
    if set(SYNTHETIC_LABELS) <= set(labels) and len(shared) >= 2:
        from disentangled_ssl.sweeps.select import agreement

        lines += ["", "## Label-free vs labelled choice of β (keep ≥ 95 % of the best)", ""]
        agree = agreement(rows, 0.95)
        lines += [f"- labelled (shared.yc ≥ 95 % of best, minimise shared.y1+shared.y2): "
                  f"{agree['labelled']}",
                  f"- label-free (held-out InfoNCE bound ≥ 95 % of best, minimise held-out "
                  f"alignment): {agree['label_free']}",
                  f"- same choice: {agree['same_choice']}; label-free choice meets the "
                  f"labelled target: {agree['label_free_meets_labelled_target']}"]
        for key in ("spearman_mi_vs_shared_acc", "spearman_alignment_vs_private_acc",
                    "spearman_orthogonality_vs_specific_leakage"):
            if key in agree:
                lines.append(f"- {key}: {agree[key]:+.2f}")
    return "\n".join(lines) + "\n"


def write_report(spec: SweepSpec, rows: Sequence[Row], root: Path,
                 result: SweepResult | None = None) -> list[Path]:
    """Write results.csv, summary.md and the figures into ``root``; returns the paths."""
    from disentangled_ssl.plots import plot_figure3a, plot_figure3b

    files = [write_csv(root / "results.csv", rows, spec.dial_names)]
    summary = root / "summary.md"
    summary.write_text(summary_markdown(spec, rows, result))
    files.append(summary)
    paper = spec.data.is_synthetic and not spec.data.synthetic
    for suffix, group in _groups(rows, spec.dial_names).items():
        fig_rows = figure_rows(group)
        if any(r["stage"] == "shared" and r["representation"] == "shared" for r in fig_rows):
            plot_figure3a(fig_rows, root / f"figure3a{suffix}.png", show_paper=paper)
            files.append(root / f"figure3a{suffix}.png")
        labels = {r["label"] for r in fig_rows}
        if {"y1", "yc"} <= labels and any(r["representation"] == "specific1"
                                          for r in fig_rows):
            plot_figure3b(fig_rows, root / f"figure3b{suffix}.png", frontier=True)
            files.append(root / f"figure3b{suffix}.png")
        if any(r["metric"] == "heldout_mi_bound" and r.get("beta", "") != "" for r in group):
            marks = None
            if set(SYNTHETIC_LABELS) <= labels and len(configs(group, "shared")) >= 2:
                from disentangled_ssl.sweeps.select import agreement

                agree = agreement(group, 0.95)
                if "beta" in agree["labelled"] and "beta" in agree["label_free"]:
                    marks = {"labelled choice": float(agree["labelled"]["beta"]),
                             "label-free choice": float(agree["label_free"]["beta"])}
            plot_label_free(group, root / f"labelfree{suffix}.png", marks)
            files.append(root / f"labelfree{suffix}.png")
    return files
