"""Every figure of the package, shaped like the paper's Figure 3 (Wang et al., ICLR 2025), from
tidy rows (:mod:`~disentangled_ssl.experiments.results`), written to PNG.

Figures are drawn on a :class:`matplotlib.figure.Figure` with its own
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`: nothing here selects or changes the
process-wide matplotlib backend (a notebook's backend stays as the user set it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from disentangled_ssl._io import write_bytes_atomic
from disentangled_ssl.experiments.paper import FIGURE_3A, PAPER_FIG3B_DSSL
from disentangled_ssl.experiments.results import Config, Row, configs

_LABEL_COLORS = {"yc": "tab:red", "y1": "tab:blue", "y2": "tab:green"}

_METHOD_STYLE = {
    "disentangled_ssl": ("tab:red", "o", "DisentangledSSL"),
    "joint": ("tab:blue", "s", "JointOpt"),
    "focal": ("tab:green", "^", "FOCAL"),
    "dmvae": ("tab:purple", "D", "DMVAE"),
    "factorcl": ("tab:orange", "v", "FactorCL"),
    "clip": ("tab:gray", "P", "CLIP"),
    "simclr": ("tab:brown", "X", "SimCLR"),
}


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure with its own Agg canvas (the global backend is left alone)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Render ``fig`` to PNG and write it to ``path`` atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def _beta_configs(rows: Sequence[Row], level: str) -> list[Config]:
    return [c for c in configs(rows, level) if "beta" in c.dials]


def plot_figure3a(rows: Sequence[Row], path: str | os.PathLike[str],
                  show_paper: bool = True) -> None:
    """Probe accuracy of the shared code (shared1 ‖ shared2) vs β (symlog axis), mean ± std
    over seeds, with the paper's Figure 3(a) values dashed."""
    cfgs = sorted(_beta_configs(rows, "shared"), key=lambda c: float(c.dials["beta"]))
    betas = [float(c.dials["beta"]) for c in cfgs]
    present = {m.split(".", 1)[1] for c in cfgs for m in c.values
               if m.startswith("shared.") and not m.startswith("shared.heldout_")}
    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    for label in [lab for lab in _LABEL_COLORS if lab in present] + sorted(
            present - set(_LABEL_COLORS)):
        color = _band(ax, betas, cfgs, f"shared.{label}", color=_LABEL_COLORS.get(label),
                      label=f"{label} (ours)")
        if show_paper and label in _LABEL_COLORS:
            paper = sorted(FIGURE_3A)
            k = ("yc", "y1", "y2").index(label)
            ax.plot(paper, [FIGURE_3A[b][k] for b in paper], "x--", color=color, alpha=0.6,
                    label=f"{label} (paper)")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("β (symlog)")
    ax.set_ylabel("linear-probe accuracy (test)")
    ax.set_title("Shared representation vs β (cf. paper Fig. 3a)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    save_png(fig, path)


def _finish_coverage_leakage(fig: Figure, ax: Any, path: str | os.PathLike[str], x: str,
                             y: str) -> None:
    """Axis labels, title, grid and legend of a Figure-3(b)-shaped plot, then save it."""
    ax.set_xlabel(f"{x} (higher is better)")
    ax.set_ylabel(f"{y} (leakage, lower is better)")
    ax.set_title("Specific representation: coverage vs leakage (cf. paper Fig. 3b)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_png(fig, path)


def plot_figure3b(rows: Sequence[Row], path: str | os.PathLike[str],
                  representation: str = "specific1", own_label: str = "y1",
                  leak_label: str = "yc", frontier: bool = False) -> None:
    """Accuracy of a specific code on its own label (x) vs its leakage of the shared label
    (y), one curve per β over λ, mean ± std over seeds (cf. paper Fig. 3b). ``frontier`` adds
    the Pareto frontier over all (β, λ): the settings no other setting beats on both coverage
    and leakage."""
    own, leak = f"{representation}.{own_label}", f"{representation}.{leak_label}"
    cfgs = [c for c in _beta_configs(rows, "specific") if own in c.values and leak in c.values]
    fig = new_figure((6.0, 4.6))
    ax = fig.subplots()
    for n_curve, beta in enumerate(sorted({float(c.dials["beta"]) for c in cfgs})):
        curve = sorted((c for c in cfgs if float(c.dials["beta"]) == beta),
                       key=lambda c: float(c.dials.get("lam", 0.0)))
        x, y = [c.stat(own) for c in curve], [c.stat(leak) for c in curve]
        ax.errorbar([m for m, _, _ in x], [m for m, _, _ in y], xerr=[s for _, s, _ in x],
                    yerr=[s for _, s, _ in y], fmt="o-", capsize=2,
                    label=f"DisentangledSSL β={beta:g}")
        if n_curve > 0:
            continue  # the curves share their λ values: labelling one keeps them readable
        for k, (cfg, (mx, _, _), (my, _, _)) in enumerate(zip(curve, x, y)):
            ax.annotate(f"λ={float(cfg.dials.get('lam', 0.0)):g}", (mx, my), fontsize=7,
                        xytext=(4, 4) if k % 2 else (4, -10), textcoords="offset points")
    if frontier:
        points = sorted((c.mean(own), c.mean(leak)) for c in cfgs)
        best = [p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p
                                              for q in points)]
        ax.plot([p[0] for p in best], [p[1] for p in best], "--", color="grey", lw=2,
                alpha=0.6, zorder=0, label="Pareto frontier over (β, λ)")
    _finish_coverage_leakage(fig, ax, path, f"{representation} accuracy on {own_label}",
                             f"{representation} accuracy on {leak_label}")


def plot_compare(points: Mapping[str, Sequence[Mapping[str, Any]]],
                 path: str | os.PathLike[str], own_label: str = "y1", leak_label: str = "yc",
                 show_paper: bool = True) -> None:
    """``dssl compare``'s figure, shaped like the paper's Figure 3(b): the modality-1 code's
    accuracy on its own label (x) against its leakage of the shared label (y), one curve per
    method across its dial, mean ± std over seeds. Shared-only methods (CLIP, SimCLR) are
    drawn hollow at their modality-1 shared code.

    Args:
        points: method -> its points in dial order, each with ``dial``, ``value`` (None for
            a single setting), ``representation`` and ``own``/``leak`` (mean, std, n).
    """
    fig = new_figure((6.4, 4.8))
    ax = fig.subplots()
    for method, pts in points.items():
        color, marker, title = _METHOD_STYLE.get(method, ("black", "o", method))
        xs, ys = [p["own"][0] for p in pts], [p["leak"][0] for p in pts]
        hollow = pts[0]["representation"] != "specific1"
        dial = pts[0]["dial"]
        label = title + (f" ({dial} sweep)" if dial else "") + (" — shared1" if hollow else "")
        ax.errorbar(xs, ys, xerr=[p["own"][1] for p in pts], yerr=[p["leak"][1] for p in pts],
                    fmt=marker + "-", color=color, capsize=2, lw=1.2, ms=6, label=label,
                    mfc="none" if hollow else color)
        for k, (p, x, y) in enumerate(zip(pts, xs, ys)):
            if p["value"] is not None:  # alternating offsets: close points stay readable
                ax.annotate(f"{p['value']:g}", (x, y), fontsize=6,
                            xytext=[(5, 4), (5, -10), (-24, 4)][k % 3],
                            textcoords="offset points", color=color)
    ax.margins(x=0.08, y=0.06)  # room for the dial labels at the edges
    if show_paper and (own_label, leak_label) == ("y1", "yc"):
        ref = PAPER_FIG3B_DSSL
        ax.errorbar([ref["y1"]], [(ref["yc_low"] + ref["yc_high"]) / 2],
                    yerr=[[(ref["yc_high"] - ref["yc_low"]) / 2]], fmt="*", color="tab:red",
                    alpha=0.5, ms=11, capsize=3, label="DisentangledSSL, paper Fig. 3b (≈)")
    _finish_coverage_leakage(fig, ax, path, f"modality-1 code: accuracy on {own_label}",
                             f"accuracy on {leak_label}")


def plot_loss_curves(curves: Sequence[Mapping[str, Any]], path: str | os.PathLike[str],
                     title: str | None = None) -> None:
    """``dssl compare``'s loss curves: one panel per method (per step for DisentangledSSL),
    the total training loss per epoch of every run, one colour per dial value (its seeds in
    the same colour), the validation loss dashed when recorded, on a log y axis where every
    value is positive and they span more than a factor 5. Under each panel, the same runs
    as ``(L - L[last]) / (max L - min L)`` (0: the final value; the first epochs, which
    hold most of the fall, are cut off at 0.3), so that the end of every curve is visible
    whatever its dial's scale.

    Args:
        curves: one dict per run and stage: ``panel`` (its title), ``label`` (dial value),
            ``seed``, ``lr``, ``loss`` (per-epoch training loss) and ``val_loss`` (or None).
        title: the figure's title (default: says what is drawn).
    """
    if title is None:
        title = "Training loss per epoch" + (
            " (dashed: validation loss)" if any(c["val_loss"] for c in curves) else "")
    panels: dict[str, list[Mapping[str, Any]]] = {}
    for c in curves:
        panels.setdefault(c["panel"], []).append(c)
    n = max(len(panels), 1)
    cols = min(3, n)
    rows = -(-n // cols)
    height = 5.4 * rows
    fig = new_figure((4.8 * cols, height))
    outer = fig.add_gridspec(rows, cols, hspace=0.32, wspace=0.3, top=1 - 0.75 / height,
                             bottom=0.45 / height)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
              "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]
    for k, (panel, runs) in enumerate(panels.items()):
        pair = outer[k // cols, k % cols].subgridspec(2, 1, height_ratios=[1.4, 1.0],
                                                      hspace=0.06)
        ax = fig.add_subplot(pair[0])
        rel = fig.add_subplot(pair[1], sharex=ax)
        ax.tick_params(labelbottom=False)
        labels = list(dict.fromkeys(c["label"] for c in runs))
        values = [v for c in runs for v in [*c["loss"], *(c["val_loss"] or [])]]
        for c in runs:
            color = colors[labels.index(c["label"]) % len(colors)]
            epochs = np.arange(1, len(c["loss"]) + 1)
            first = c is next(r for r in runs if r["label"] == c["label"])
            loss = np.asarray(c["loss"], dtype=float)
            ax.plot(epochs, loss, "-", color=color, lw=1.1, alpha=0.8,
                    label=c["label"] if first else None)
            if c["val_loss"]:
                ax.plot(epochs, c["val_loss"], "--", color=color, lw=1.0, alpha=0.7)
            span = float(loss.max() - loss.min())
            if span > 0:
                rel.plot(epochs, (loss - loss[-1]) / span, "-", color=color, lw=1.0,
                         alpha=0.8)
        if values and min(values) > 0 and max(values) / min(values) > 5:
            ax.set_yscale("log")
        lrs = sorted({float(c["lr"]) for c in runs})
        seeds = sorted({c["seed"] for c in runs})
        ax.set_title(f"{panel}\nlr {', '.join(f'{v:g}' for v in lrs)}; seeds "
                     f"{', '.join(map(str, seeds))}", fontsize=9)
        ax.set_ylabel("training loss", fontsize=8)
        ax.legend(fontsize=7, loc="best")
        rel.axhline(0.0, color="grey", lw=0.8)
        rel.set_ylim(-0.06, 0.3)
        rel.set_ylabel("(L − L[last]) / range", fontsize=8)
        rel.set_xlabel("epoch", fontsize=8)
        for a in (ax, rel):
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
            a.tick_params(labelsize=7)
            a.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=10, y=0.995)
    save_png(fig, path)


def _band(ax: Any, x: Sequence[float], cfgs: Sequence[Config], metric: str, **style: Any
          ) -> Any:
    """Mean of ``metric`` over seeds as a line with a ± std band; returns its colour."""
    mean = np.array([c.mean(metric) for c in cfgs])
    std = np.array([c.std(metric) for c in cfgs])
    (line,) = ax.plot(x, mean, "o-", **style)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    return line.get_color()


def plot_label_free(rows: Sequence[Row], path: str | os.PathLike[str],
                    marks: dict[str, float] | None = None) -> None:
    """Held-out label-free terms vs β, mean ± std over seeds: the InfoNCE bound on
    I(Ẑc1; Ẑc2) (shared information kept) and the alignment term (−cos; lower means the two
    modalities' codes agree more, i.e. less private information), with the shared-label and
    private-label probe accuracies on twin axes when labels exist. ``marks``: name -> β drawn
    as a vertical line (e.g. the labelled and label-free choices)."""
    cfgs = [c for c in _beta_configs(rows, "shared") if "shared.heldout_mi_bound" in c.values]
    betas = [float(c.dials["beta"]) for c in cfgs]
    linthresh = min([b for b in betas if b > 0] or [1.0]) / 10
    xlim = (min(0.0, *betas) if min(betas) <= 0 else min(betas) / 2, max(betas) * 2)
    fig = new_figure((12, 4.2))
    specs = [("shared.heldout_mi_bound", "held-out InfoNCE bound on I(Ẑc1;Ẑc2) (nats)",
              "shared.yc", "tab:red"),
             ("shared.heldout_alignment", "held-out alignment term (−cos; lower = aligned)",
              "shared.y1", "tab:blue")]
    for ax, (metric, title, acc, color) in zip(fig.subplots(1, 2), specs):
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
    save_png(fig, path)
