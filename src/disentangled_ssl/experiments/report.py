"""A sweep's report: ``results.csv`` (tidy), ``summary.md`` (tables) and PNG figures shaped
like the paper's Figure 3 (Wang et al., ICLR 2025): (a) probe accuracy of the shared code vs β
with seed bands, (b) coverage vs leakage of the specific code over (β, λ) with its Pareto
frontier, plus the label-free held-out terms vs β (``labelfree.png``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from disentangled_ssl._io import write_text_atomic
from disentangled_ssl.experiments.figures import plot_figure3a, plot_figure3b, plot_label_free
from disentangled_ssl.experiments.results import Config, Row, configs, sweep_columns, write_csv
from disentangled_ssl.experiments.select import agreement
from disentangled_ssl.experiments.spec import SweepSpec

if TYPE_CHECKING:
    from disentangled_ssl.experiments.engine import SweepResult

SYNTHETIC_LABELS = ("yc", "y1", "y2")


def label_order(label: str) -> tuple:
    """Sort key of labels: the synthetic generator's yc, y1, y2 first, then the others."""
    known = label in SYNTHETIC_LABELS
    return (not known, SYNTHETIC_LABELS.index(label) if known else 0, label)


def _groups(rows: Sequence[Row], dial_names: Sequence[str]) -> dict[str, list[Row]]:
    """Rows split by the values of the dials other than β and λ (one figure each); the key is
    a file-name suffix ("" when there are no other dials)."""
    others = [d for d in dial_names if d not in ("beta", "lam")]
    groups: dict[str, list[Row]] = {}
    for r in rows:
        suffix = "".join(f"_{d}-{r[d]}" for d in others if r[d] != "")
        groups.setdefault(suffix, []).append(r)
    return groups


def _table(title: str, cfgs: Sequence[Config], metrics: Sequence[str]) -> list[str]:
    """A Markdown table: one row per setting (its dials), mean ± std of each metric and
    the mean training seconds."""
    dials = list(dict.fromkeys(k for c in cfgs for k in c.dials))
    lines = ["", title, "", "| " + " | ".join([*dials, *metrics, "train s"]) + " |",
             "|" + "---|" * (len(dials) + len(metrics) + 1)]
    for c in cfgs:
        secs = np.mean(list(c.train_seconds.values())) if c.train_seconds else float("nan")
        lines.append("| " + " | ".join([*(f"{c.dials.get(d, '')}" for d in dials),
                                        *(c.cell(m) for m in metrics), f"{secs:.1f}"]) + " |")
    return lines


def _agreement_lines(rows: Sequence[Row]) -> list[str]:
    agree = agreement(rows, 0.95)
    lines = ["", "## Label-free vs labelled choice of β (keep ≥ 95 % of the best)", "",
             f"- labelled (shared.yc ≥ 95 % of best, minimise shared.y1+shared.y2): "
             f"{agree['labelled']}",
             f"- label-free (held-out InfoNCE bound ≥ 95 % of best, minimise held-out "
             f"alignment): {agree['label_free']}",
             f"- same choice: {agree['same_choice']}; label-free choice meets the "
             f"labelled target: {agree['label_free_meets_labelled_target']}"]
    for key in ("spearman_mi_vs_shared_acc", "spearman_alignment_vs_private_acc",
                "spearman_orthogonality_vs_specific_leakage"):
        if key in agree:
            lines.append(f"- {key}: {agree[key]:+.2f}")
    return lines


def summary_markdown(spec: SweepSpec, rows: Sequence[Row], result: SweepResult | None = None
                     ) -> str:
    """Markdown tables of a sweep: shared code per step-1 setting, specific codes per
    setting, mean ± std over seeds; and, on labelled synthetic-style data, how the label-free
    criterion agrees with the labelled one."""
    labels = sorted({r["label"] for r in rows if r["metric"] == "accuracy"}, key=label_order)
    lines = [f"# Sweep {spec.sweep_id()}", "",
             f"- data: {spec.data.describe()}",
             f"- grid: {spec.to_dict()['grid']}, seeds {list(spec.seeds)}",
             f"- fixed parameters: {spec.fixed or 'library defaults'}"]
    if result is not None:
        lines.append(f"- trials: {result.n_done}/{result.n_trials} done, {result.n_computed} "
                     f"computed by this run in {result.seconds:.0f} s"
                     + (f"; {len(result.failed)} unit(s) failed" if result.failed else ""))
    shared = configs(rows, "shared")
    if shared:
        lines += _table("## Shared code (shared1 ‖ shared2): held-out probe accuracy and "
                        "label-free terms", shared,
                        [f"shared.{lab}" for lab in labels]
                        + ["shared.heldout_mi_bound", "shared.heldout_alignment"])
    specific = configs(rows, "specific")
    if specific:
        reps = sorted({r["representation"] for r in rows
                       if r["stage"] == "specific" and r["metric"] == "accuracy"})
        lines += _table("## Specific codes: held-out probe accuracy and label-free terms",
                        specific, [f"{rep}.{lab}" for rep in reps for lab in labels]
                        + ["specific.heldout_orthogonality"])
    if set(SYNTHETIC_LABELS) <= set(labels) and len(shared) >= 2:
        lines += _agreement_lines(rows)
    return "\n".join(lines) + "\n"


def _marks(group: Sequence[Row], labels: set[str]) -> dict[str, float] | None:
    """The labelled and label-free choices of β, to mark on the label-free figure."""
    if not (set(SYNTHETIC_LABELS) <= labels and len(configs(group, "shared")) >= 2):
        return None
    agree = agreement(group, 0.95)
    if "beta" in agree["labelled"] and "beta" in agree["label_free"]:
        return {"labelled choice": float(agree["labelled"]["beta"]),
                "label-free choice": float(agree["label_free"]["beta"])}
    return None


def write_report(spec: SweepSpec, rows: Sequence[Row], root: Path,
                 result: SweepResult | None = None) -> list[Path]:
    """Write results.csv, summary.md and the figures into ``root``; returns the paths."""
    files = [write_csv(root / "results.csv", rows, sweep_columns(spec.dial_names)),
             write_text_atomic(root / "summary.md", summary_markdown(spec, rows, result))]
    paper = spec.data.is_synthetic and not spec.data.synthetic
    for suffix, group in _groups(rows, spec.dial_names).items():
        probes = [r for r in group if r["metric"] == "accuracy" and r.get("beta", "") != ""]
        labels = {r["label"] for r in probes}
        if any(r["stage"] == "shared" and r["representation"] == "shared" for r in probes):
            files.append(root / f"figure3a{suffix}.png")
            plot_figure3a(probes, files[-1], show_paper=paper)
        if {"y1", "yc"} <= labels and any(r["representation"] == "specific1" for r in probes):
            files.append(root / f"figure3b{suffix}.png")
            plot_figure3b(probes, files[-1], frontier=True)
        if any(r["metric"] == "heldout_mi_bound" and r.get("beta", "") != "" for r in group):
            files.append(root / f"labelfree{suffix}.png")
            plot_label_free(group, files[-1], _marks(group, labels))
    return files
