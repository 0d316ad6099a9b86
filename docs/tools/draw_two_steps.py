"""Draw the home page's diagram of DisentangledSSL's two steps: ``docs/figures/two_steps.svg``.

    python docs/tools/draw_two_steps.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a tool, not the library: it only writes a file

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "figures" / "two_steps.svg"
BLUE, ORANGE, GREY, GREEN = "#3b5bdb", "#e8590c", "#adb5bd", "#2b8a3e"


def box(ax, x, y, text, colour, w=1.9, h=0.62, fill=True, style="round,pad=0.06"):
    """A labelled box centred on (x, y): filled for a network, outlined for data."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style,
                                facecolor=colour if fill else "white", edgecolor=colour,
                                linewidth=1.6, alpha=0.9 if fill else 1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=10.5 if fill else 13,
            color="white" if fill else colour, weight="bold" if fill else "normal")


def arrow(ax, start, end, colour="#495057", style="-|>", **kwargs):
    """An arrow from ``start`` to ``end``."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=13,
                                 color=colour, linewidth=1.4, shrinkA=2, shrinkB=2, **kwargs))


def step1(ax):
    ax.set_title("Step 1: shared encoders", fontsize=13, loc="left", weight="bold")
    for y, i in [(3.0, 1), (1.0, 2)]:
        box(ax, 0.7, y, f"$x_{i}$", "#495057", w=0.9, fill=False)
        box(ax, 2.9, y, f"shared encoder {i}", BLUE)
        box(ax, 5.0, y, f"$z^c_{i}$", BLUE, w=0.9, fill=False)
        arrow(ax, (1.15, y), (1.95, y))
        arrow(ax, (3.85, y), (4.55, y))
    arrow(ax, (5.0, 2.69), (5.0, 1.31), BLUE, style="<|-|>")
    ax.text(5.62, 2.28, "InfoNCE: keep what\n$x_1$ and $x_2$ share", fontsize=10,
            va="center", color=BLUE)
    ax.text(5.62, 1.62, "+ β × alignment: drop\nwhat only one holds", fontsize=10,
            va="center", color=ORANGE)
    ax.text(0.25, 0.1, "von Mises–Fisher samples of both codes; β is the first dial",
            fontsize=9, color="#495057")


def step2(ax):
    ax.set_title("Step 2: specific encoders (shared ones frozen)", fontsize=13, loc="left",
                 weight="bold")
    box(ax, 0.7, 3.0, "$x_1$", "#495057", w=0.9, fill=False)
    box(ax, 2.9, 3.0, "shared encoder 1\n(frozen)", GREY, h=0.72)
    box(ax, 2.9, 1.5, "specific encoder 1", GREEN)
    box(ax, 5.0, 3.0, "$z^c_1$", GREY, w=0.9, fill=False)
    box(ax, 5.0, 1.5, "$z^s_1$", GREEN, w=0.9, fill=False)
    arrow(ax, (1.15, 3.0), (1.95, 3.0))
    arrow(ax, (3.85, 3.0), (4.55, 3.0), GREY)
    arrow(ax, (0.7, 2.69), (1.95, 1.62), connectionstyle="arc3,rad=0.2")
    arrow(ax, (4.55, 2.85), (3.85, 1.7), GREY, connectionstyle="arc3,rad=0.25")
    ax.text(2.9, 2.22, "input $[x_1, z^c_1]$", fontsize=10, ha="center", va="center",
            color="#495057")
    arrow(ax, (3.85, 1.5), (4.55, 1.5))
    arrow(ax, (5.0, 1.81), (5.0, 2.69), ORANGE, style="<|-|>", linestyle="--")
    ax.text(5.62, 2.28, "+ λ × orthogonality:\nno shared content", fontsize=10,
            va="center", color=ORANGE)
    ax.text(5.62, 1.2, "InfoNCE between two\naugmentations of\n$[z^s_1, z^c_2]$: "
            "cover $x_1$", fontsize=10, va="center", color=GREEN)
    ax.text(0.25, 0.1, "the same for modality 2; λ is the second dial", fontsize=9,
            color="#495057")


def main() -> None:
    fig, axes = plt.subplots(2, 1, figsize=(8.2, 7.6))  # stacked: legible at page width
    for ax, draw in zip(axes, [step1, step2]):
        ax.set_xlim(0, 8.2)
        ax.set_ylim(0, 3.7)
        ax.set_axis_off()
        draw(ax)
    fig.tight_layout(h_pad=2)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, format="svg", bbox_inches="tight", metadata={"Date": None})
    print(OUT)


if __name__ == "__main__":
    main()
