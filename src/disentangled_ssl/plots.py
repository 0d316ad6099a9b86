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
    for label, color in _COLORS.items():
        mean = np.array([stats[(b, "", label)][0] for b in betas])
        std = np.array([stats[(b, "", label)][1] for b in betas])
        ax.plot(betas, mean, "o-", color=color, label=f"{label} (ours)")
        ax.fill_between(betas, mean - std, mean + std, color=color, alpha=0.2)
        if show_paper:
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
                  leak_label: str = "yc") -> None:
    """Accuracy of a specific representation on its own label (x) vs leakage of the shared
    label (y), one curve per β over λ, mean ± std over seeds (cf. paper Fig. 3b)."""
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
    ax.set_xlabel(f"{representation} accuracy on {own_label} (higher is better)")
    ax.set_ylabel(f"{representation} accuracy on {leak_label} (leakage, lower is better)")
    ax.set_title("Specific representation: coverage vs leakage (cf. paper Fig. 3b)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
