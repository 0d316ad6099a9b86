"""Figures shaped like the paper's Figure 3 (matplotlib, written to PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from disentangled_ssl.experiments.paper import FIGURE_3A  # noqa: E402
from disentangled_ssl.experiments.synthetic import aggregate  # noqa: E402

_COLORS = {"yc": "tab:red", "y1": "tab:blue", "y2": "tab:green"}


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> None:
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def plot_figure3a(rows: list[dict], path: str | os.PathLike[str], show_paper: bool = True) -> None:
    """Probe accuracy of the shared representation vs β (symlog axis), mean ± std over seeds,
    with the paper's Figure 3(a) values dashed."""
    stats = aggregate(rows, "shared", "shared")
    betas = sorted({k[0] for k in stats})
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    present = {k[2] for k in stats}  # the synthetic labels first, then any others
    for label in [lab for lab in _COLORS if lab in present] + sorted(present - set(_COLORS)):
        mean = np.array([stats[(b, "", label)][0] for b in betas])
        std = np.array([stats[(b, "", label)][1] for b in betas])
        (line,) = ax.plot(betas, mean, "o-", color=_COLORS.get(label), label=f"{label} (ours)")
        color = line.get_color()
        ax.fill_between(betas, mean - std, mean + std, color=color, alpha=0.2)
        if show_paper and label in _COLORS:
            pb = sorted(FIGURE_3A)
            k = ("yc", "y1", "y2").index(label)
            ax.plot(pb, [FIGURE_3A[b][k] for b in pb], "x--", color=color, alpha=0.6,
                    label=f"{label} (paper)")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("β (symlog)")
    ax.set_ylabel("linear-probe accuracy (test)")
    ax.set_title("Shared representation vs β (cf. paper Fig. 3a)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_figure3b(rows: list[dict], path: str | os.PathLike[str],
                  representation: str = "specific1", own_label: str = "y1",
                  leak_label: str = "yc", frontier: bool = False) -> None:
    """Accuracy of a specific representation on its own label (x) vs leakage of the shared
    label (y), one curve per β over λ, mean ± std over seeds (cf. paper Fig. 3b).
    ``frontier`` adds the Pareto frontier over all (β, λ): the settings no other setting
    beats on both coverage and leakage."""
    stats = aggregate(rows, "specific", representation)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    for beta in sorted({k[0] for k in stats}):
        lams = sorted({k[1] for k in stats if k[0] == beta}, key=float)
        x = [stats[(beta, lam, own_label)] for lam in lams]
        y = [stats[(beta, lam, leak_label)] for lam in lams]
        ax.errorbar([m for m, _, _ in x], [m for m, _, _ in y], xerr=[s for _, s, _ in x],
                    yerr=[s for _, s, _ in y], fmt="o-", capsize=2,
                    label=f"DisentangledSSL β={beta:g}")
        for lam, (mx, _, _), (my, _, _) in zip(lams, x, y):
            ax.annotate(f"λ={float(lam):g}", (mx, my), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    if frontier:
        points = sorted((stats[(b, lam, own_label)][0], stats[(b, lam, leak_label)][0])
                        for b, lam, lab in stats if lab == own_label)
        best = [p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p
                                              for q in points)]
        ax.plot([p[0] for p in best], [p[1] for p in best], "--", color="grey", lw=2,
                alpha=0.6, zorder=0, label="Pareto frontier over (β, λ)")
    ax.set_xlabel(f"{representation} accuracy on {own_label} (higher is better)")
    ax.set_ylabel(f"{representation} accuracy on {leak_label} (leakage, lower is better)")
    ax.set_title("Specific representation: coverage vs leakage (cf. paper Fig. 3b)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


_METHOD_STYLE = {
    "disentangled_ssl": ("tab:red", "o", "DisentangledSSL"),
    "joint": ("tab:blue", "s", "JointOpt"),
    "focal": ("tab:green", "^", "FOCAL"),
    "dmvae": ("tab:purple", "D", "DMVAE"),
    "factorcl": ("tab:orange", "v", "FactorCL"),
    "clip": ("tab:gray", "P", "CLIP"),
    "simclr": ("tab:brown", "X", "SimCLR"),
}


def plot_compare(rows: list[dict], path: str | os.PathLike[str], own_label: str = "y1",
                 leak_label: str = "yc", show_paper: bool = True) -> None:
    """``dssl compare``'s figure, shaped like the paper's Figure 3(b): the modality-1 code's
    accuracy on its own label (x) against its leakage of the shared label (y), one curve per
    method across its dial, mean ± std over seeds. Shared-only methods (CLIP, SimCLR) are
    drawn hollow at their modality-1 shared code."""
    from disentangled_ssl.experiments.compare import PAPER_FIG3B_DSSL, curve_points

    points = curve_points(rows, own_label, leak_label)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for method, pts in points.items():
        color, marker, title = _METHOD_STYLE.get(method, ("black", "o", method))
        xs = [p["own"][0] for p in pts]
        ys = [p["leak"][0] for p in pts]
        hollow = pts[0]["representation"] != "specific1"
        dial = pts[0]["dial"]
        label = title + (f" ({dial} sweep)" if dial else "") + (" — shared1" if hollow else "")
        ax.errorbar(xs, ys, xerr=[p["own"][1] for p in pts], yerr=[p["leak"][1] for p in pts],
                    fmt=marker + "-", color=color, capsize=2, lw=1.2, ms=6, label=label,
                    mfc="none" if hollow else color)
        for p, x, y in zip(pts, xs, ys):
            if p["value"] is not None:
                ax.annotate(f"{p['value']:g}", (x, y), fontsize=6, xytext=(4, 3),
                            textcoords="offset points", color=color)
    if show_paper and (own_label, leak_label) == ("y1", "yc"):
        ref = PAPER_FIG3B_DSSL
        ax.errorbar([ref["y1"]], [(ref["yc_low"] + ref["yc_high"]) / 2],
                    yerr=[[(ref["yc_high"] - ref["yc_low"]) / 2]], fmt="*", color="tab:red",
                    alpha=0.5, ms=11, capsize=3, label="DisentangledSSL, paper Fig. 3b (≈)")
    ax.set_xlabel(f"modality-1 code: accuracy on {own_label} (higher is better)")
    ax.set_ylabel(f"accuracy on {leak_label} (leakage, lower is better)")
    ax.set_title("Specific representation: coverage vs leakage (cf. paper Fig. 3b)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
