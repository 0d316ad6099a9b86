"""Choosing the dials: the setting of a sweep that meets a target best, with the evidence.

A target is a list of constraints on seed-averaged metrics plus an objective to optimise among
the settings that meet them. Metric names are ``representation.label`` for probe accuracies
(``shared.yc``, ``specific1.yc``) and ``representation.metric`` for the label-free held-out
terms (``shared.heldout_mi_bound``, ``shared.heldout_alignment``,
``specific.heldout_orthogonality``). A constraint's bound may be relative to the best value of
the grid: ``shared.yc>=0.95*best`` keeps at least 95 % of the best shared accuracy (``best`` is
the maximum for ``>=`` and the minimum for ``<=``; for a negative best the bound is the same
relative distance from it, ``best + (fraction − 1)·|best|``).

Presets follow the paper's reading of the dials (Wang et al., ICLR 2025, Section 3): β trades
private information dropped by the shared code against shared information kept; λ trades
coverage of the specific code against its leakage of shared information.

Example:
    >>> rows = read_csv("sweep/results.csv")                       # doctest: +SKIP
    >>> sel = select(rows, leakage_target(0.55, "specific1"))       # doctest: +SKIP
    >>> sel.chosen.dials, sel.met                                   # doctest: +SKIP
    ({'beta': 1.0, 'lam': 1.0}, True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.experiments.results import Config, Row, configs, dial_columns, metric_name

_CONSTRAINT = re.compile(
    r"^\s*([A-Za-z_][\w]*\.[A-Za-z_][\w]*)\s*(<=|>=)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\*\s*best)?\s*$")
_TERM = re.compile(r"\s*([-+]?)\s*([A-Za-z_][\w]*\.[A-Za-z_][\w]*)\s*")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound`` on the seed mean; ``relative`` makes the bound ``bound × best``."""

    metric: str
    op: str
    bound: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """``"specific1.yc<=0.55"`` or ``"shared.yc>=0.95*best"``."""
        m = _CONSTRAINT.match(text)
        if m is None:
            raise DSSLError(
                f"cannot read the constraint {text!r}; write METRIC<=NUMBER, METRIC>=NUMBER "
                "or METRIC>=FRACTION*best, e.g. 'specific1.yc<=0.55' or 'shared.yc>=0.95*best'")
        return cls(m.group(1), m.group(2), float(m.group(3)), m.group(4) is not None)

    def threshold(self, cfgs: Sequence[Config]) -> float:
        if not self.relative:
            return self.bound
        means = [c.mean(self.metric) for c in cfgs if self.metric in c.values]
        best = max(means) if self.op == ">=" else min(means)
        # bound × best for a positive best; the same relative distance from a negative one.
        return best + (self.bound - 1.0) * abs(best)

    def slack(self, cfg: Config, threshold: float) -> float:
        """>= 0 when met; the shortfall (negative) otherwise."""
        value = cfg.mean(self.metric)
        return value - threshold if self.op == ">=" else threshold - value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} " + (f"{self.bound:g}·best" if self.relative
                                               else f"{self.bound:g}")


@dataclass(frozen=True)
class Objective:
    """Maximise (or minimise) a signed sum of metrics, e.g. ``shared.y1+shared.y2``."""

    terms: tuple[tuple[float, str], ...]
    maximize: bool = True

    @classmethod
    def parse(cls, text: str, maximize: bool = True) -> Objective:
        terms, pos = [], 0
        for m in _TERM.finditer(text):
            if m.start() != pos or (terms and not m.group(1)):
                break
            terms.append((-1.0 if m.group(1) == "-" else 1.0, m.group(2)))
            pos = m.end()
        if not terms or pos != len(text):
            raise DSSLError(f"cannot read the objective {text!r}; write a metric or a sum of "
                            "metrics, e.g. 'specific1.y1' or 'shared.y1+shared.y2'")
        return cls(tuple(terms), maximize)

    def value(self, cfg: Config) -> float:
        return float(sum(sign * cfg.mean(name) for sign, name in self.terms))

    @property
    def metrics(self) -> list[str]:
        return [name for _, name in self.terms]

    def __str__(self) -> str:
        text = "".join(("-" if s < 0 else "+") + n for s, n in self.terms).lstrip("+")
        return f"{'maximise' if self.maximize else 'minimise'} {text}"


@dataclass(frozen=True)
class Target:
    """Constraints to meet and the objective that ranks the settings meeting them."""

    constraints: tuple[Constraint, ...]
    objective: Objective
    description: str = ""

    @property
    def metrics(self) -> list[str]:
        names = [c.metric for c in self.constraints] + self.objective.metrics
        return list(dict.fromkeys(names))

    @property
    def level(self) -> str:
        """"specific" when a metric concerns a specific code (the setting includes λ)."""
        return "specific" if any(m.startswith("specific") for m in self.metrics) else "shared"

    def __str__(self) -> str:
        return (self.description + ": " if self.description else "") + "; ".join(
            [*map(str, self.constraints), str(self.objective)])


@dataclass
class Selection:
    """The outcome of :func:`select`.

    Attributes:
        target: what was asked.
        chosen: the setting that meets every constraint with the best objective (``None``
            when no setting meets the target).
        closest: ``chosen`` if met, else the setting with the smallest total shortfall.
        met: whether ``chosen`` exists.
        thresholds: constraint -> the absolute bound used (relative bounds resolved).
        table: one dict per setting: dials, seed means of the target's metrics, ``meets``,
            ``objective``.
        evidence: the tidy rows (every seed) of the chosen/closest setting's metrics.
    """

    target: Target
    chosen: Config | None
    closest: Config
    met: bool
    thresholds: dict[str, float]
    table: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[Row] = field(default_factory=list)

    def markdown(self) -> str:
        """A short report: the choice, then every setting with its metrics (✓ meets)."""
        metrics = self.target.metrics
        head = (f"**{self.chosen.label()}** meets {self.target}" if self.met else
                f"no setting meets {self.target}; closest: **{self.closest.label()}**")
        cols = [*self.table[0]["dials"]] if self.table else []
        lines = [head, "", "| " + " | ".join([*cols, *metrics, "meets", "objective"]) + " |",
                 "|" + "---|" * (len(cols) + len(metrics) + 2)]
        for t in self.table:
            mark = "✓" if t["meets"] else ""
            if self.closest.dials == t["dials"]:
                mark += " ← chosen" if self.met else " ← closest"
            cells = [f"{t['dials'].get(c, '')}" for c in cols]
            cells += [f"{t['mean'][m]:.4f} ± {t['std'][m]:.4f}" for m in metrics]
            lines.append("| " + " | ".join([*cells, mark, f"{t['objective']:.4f}"]) + " |")
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {"target": str(self.target), "met": self.met,
                "chosen": self.chosen.dials if self.chosen else None,
                "closest": self.closest.dials, "thresholds": self.thresholds,
                "table": self.table, "evidence": self.evidence}


def _check_metrics(cfgs: Sequence[Config], metrics: Sequence[str], level: str) -> None:
    available = sorted({m for c in cfgs for m in c.values})
    for m in metrics:
        if not any(m in c.values for c in cfgs):
            raise DSSLError(
                f"metric {m!r} is not in the sweep results at the {level} level; available: "
                + ", ".join(available))


def select(rows: Sequence[Row], target: Target) -> Selection:
    """The setting of a sweep that meets ``target`` best (seed means), with the evidence.

    Args:
        rows: tidy sweep rows (:func:`~disentangled_ssl.experiments.results.read_csv` or
            ``SweepResult.rows``).
        target: constraints + objective.

    Returns:
        :class:`Selection`. Ties on the objective go to the first setting in grid order.

    Raises:
        DSSLError: a metric of the target is not in the results.
    """
    level = target.level
    cfgs = [c for c in configs(rows, level) if all(m in c.values for m in target.metrics)]
    if not cfgs:
        _check_metrics(configs(rows, level), target.metrics, level)
        raise DSSLError(f"no setting has every metric of the target ({target.metrics})")
    thresholds = {str(c): c.threshold(cfgs) for c in target.constraints}
    table = []
    for cfg in cfgs:
        slacks = [c.slack(cfg, thresholds[str(c)]) for c in target.constraints]
        table.append({
            "dials": dict(cfg.dials), "mean": {m: cfg.mean(m) for m in target.metrics},
            "std": {m: cfg.std(m) for m in target.metrics},
            "n_seeds": min(cfg.n(m) for m in target.metrics),
            "meets": all(s >= -1e-12 for s in slacks),
            "shortfall": float(sum(min(s, 0.0) for s in slacks)),
            "objective": target.objective.value(cfg)})
    sign = 1.0 if target.objective.maximize else -1.0
    feasible = [i for i, t in enumerate(table) if t["meets"]]
    if feasible:
        best = max(feasible, key=lambda i: (sign * table[i]["objective"], -i))
    else:
        best = max(range(len(table)),
                   key=lambda i: (table[i]["shortfall"], sign * table[i]["objective"], -i))
    chosen = cfgs[best]
    dials = dial_columns(rows)
    evidence = [r for r in rows if metric_name(r) in target.metrics and all(
        r[d] == "" or r[d] == chosen.dials.get(d, "") for d in dials)]
    return Selection(target, chosen if feasible else None, chosen, bool(feasible),
                     thresholds, table, evidence)


# ---------------------------------------------------------------------- presets
def leakage_target(max_leakage: float, representation: str = "shared",
                   shared_label: str = "yc", private_labels: Sequence[str] = ("y1", "y2")
                   ) -> Target:
    """Leakage at most ``max_leakage`` (probe accuracy; 0.5 is chance for balanced labels).

    ``representation="shared"``: the shared code's accuracy on every private label must be
    ≤ the bound; maximise its accuracy on the shared label (choose β).
    ``"specific1"`` / ``"specific2"``: the specific code's accuracy on the shared label must be
    ≤ the bound; maximise its accuracy on its own private label (choose β and λ).
    """
    if representation == "shared":
        return Target(tuple(Constraint(f"shared.{p}", "<=", max_leakage)
                            for p in private_labels),
                      Objective(((1.0, f"shared.{shared_label}"),)),
                      f"shared-code leakage of {'/'.join(private_labels)} <= {max_leakage:g}")
    m = re.fullmatch(r"specific(\d+)", representation)
    if m is None or not 1 <= int(m.group(1)) <= len(private_labels):
        raise DSSLError(f"representation must be 'shared' or specific1..specific"
                        f"{len(private_labels)}, got {representation!r}")
    own = private_labels[int(m.group(1)) - 1]
    return Target((Constraint(f"{representation}.{shared_label}", "<=", max_leakage),),
                  Objective(((1.0, f"{representation}.{own}"),)),
                  f"{representation} leakage of {shared_label} <= {max_leakage:g}")


def keep_target(fraction: float, shared_label: str = "yc",
                private_labels: Sequence[str] = ("y1", "y2")) -> Target:
    """Keep ≥ ``fraction`` of the best shared-label accuracy of the shared code, and among
    those settings drop the most private information (minimise the private accuracies)."""
    _check_fraction(fraction)
    return Target((Constraint(f"shared.{shared_label}", ">=", fraction, True),),
                  Objective(tuple((1.0, f"shared.{p}") for p in private_labels), False),
                  f"keep >= {fraction:.0%} of the best shared {shared_label} accuracy")


def label_free_keep_target(fraction: float) -> Target:
    """The label-free counterpart of :func:`keep_target`: keep ≥ ``fraction`` of the best
    held-out InfoNCE bound on I(Ẑc1; Ẑc2) (shared information kept) and, among those, align
    the two modalities' codes most (lowest held-out alignment term: least modality-private
    information, the quantity β penalises)."""
    _check_fraction(fraction)
    return Target((Constraint("shared.heldout_mi_bound", ">=", fraction, True),),
                  Objective(((1.0, "shared.heldout_alignment"),), False),
                  f"label-free: keep >= {fraction:.0%} of the best held-out InfoNCE bound")


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise DSSLError(f"the fraction to keep must be in (0, 1], got {fraction!r}")


def agreement(rows: Sequence[Row], fraction: float = 0.95, shared_label: str = "yc",
              private_labels: Sequence[str] = ("y1", "y2")) -> dict[str, Any]:
    """How well the label-free criterion agrees with the labelled one on a labelled sweep.

    Returns the labelled choice (:func:`keep_target`), the label-free choice
    (:func:`label_free_keep_target`), whether they pick the same step-1 setting, the labelled
    objective's regret of the label-free choice, and Spearman rank correlations across the
    step-1 settings between the held-out InfoNCE bound and the shared accuracy, and between
    the held-out alignment term and the private accuracies (the latter is expected positive:
    worse alignment, more private information).
    """
    from scipy.stats import spearmanr

    labelled = select(rows, keep_target(fraction, shared_label, private_labels))
    free = select(rows, label_free_keep_target(fraction))
    cfgs = configs(rows, "shared")
    mi = [c.mean("shared.heldout_mi_bound") for c in cfgs]
    shared_acc = [c.mean(f"shared.{shared_label}") for c in cfgs]
    align = [c.mean("shared.heldout_alignment") for c in cfgs]
    private = [float(np.mean([c.mean(f"shared.{p}") for p in private_labels])) for c in cfgs]
    by_dials = {tuple(t["dials"].items()): t for t in labelled.table}
    free_in_labelled = by_dials[tuple(free.closest.dials.items())]
    out: dict[str, Any] = {
        "fraction": fraction,
        "labelled": labelled.closest.dials, "labelled_met": labelled.met,
        "label_free": free.closest.dials, "label_free_met": free.met,
        "same_choice": labelled.closest.dials == free.closest.dials,
        "label_free_meets_labelled_target": bool(free_in_labelled["meets"]),
        "labelled_objective": {"labelled_choice": by_dials[
            tuple(labelled.closest.dials.items())]["objective"],
            "label_free_choice": free_in_labelled["objective"]},
    }
    if len(cfgs) >= 3:
        out["spearman_mi_vs_shared_acc"] = float(spearmanr(mi, shared_acc)[0])
        out["spearman_alignment_vs_private_acc"] = float(spearmanr(align, private)[0])
    spec = configs(rows, "specific")
    orth = [c for c in spec if "specific.heldout_orthogonality" in c.values
            and f"specific1.{shared_label}" in c.values]
    if len(orth) >= 3:
        leak = [float(np.mean([c.mean(f"specific{i + 1}.{shared_label}")
                               for i in range(len(private_labels))
                               if f"specific{i + 1}.{shared_label}" in c.values]))
                for c in orth]
        out["spearman_orthogonality_vs_specific_leakage"] = float(spearmanr(
            [c.mean("specific.heldout_orthogonality") for c in orth], leak)[0])
    return out
