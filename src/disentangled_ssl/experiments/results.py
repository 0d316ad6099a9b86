"""The one results schema: a tidy row per (trial, representation, label, metric), the one CSV
writer and reader, and the one aggregation over seeds (:class:`Config`) that reports, figures
and selection read.

Columns: ``key, stage, <dials: beta, lam, ...>, seed, representation, label, metric, value,
train_seconds, eval_seconds``. ``metric`` is ``accuracy`` (a linear probe of ``label`` on
``representation``, fitted on the training rows, scored on the held-out rows) or a label-free
held-out term (``heldout_infonce``, ``heldout_alignment``, ``heldout_mi_bound``,
``heldout_orthogonality``; ``label`` empty). Step-2 dials are empty on ``shared`` rows.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_text_atomic

Row = dict[str, Any]
LEADING = ("key", "stage")
TRAILING = ("seed", "representation", "label", "metric", "value", "train_seconds",
            "eval_seconds")


def tidy_rows(records: Iterable[dict[str, Any]], dial_names: Sequence[str]) -> list[Row]:
    """Flatten trial records into tidy rows, sorted by stage, dials, seed, metric."""
    rows: list[Row] = []
    for rec in records:
        dials = rec["dials"]
        for r in rec["rows"]:
            row: Row = {"key": rec["key"], "stage": r.get("stage", rec["stage"])}
            row.update({d: dials.get(d, "") for d in dial_names})
            row.update(seed=rec["seed"], representation=r["representation"], label=r["label"],
                       metric=r["metric"], value=float(r["value"]),
                       train_seconds=rec["train_seconds"], eval_seconds=rec["eval_seconds"])
            rows.append(row)

    def order(row: Row) -> tuple:
        dial_key = tuple((0, v) if isinstance(v, (int, float)) else (1, str(v))
                         for v in (row[d] for d in dial_names))
        return (row["stage"] != "shared", dial_key, row["seed"], row["representation"],
                row["metric"], row["label"])

    return sorted(rows, key=order)


def dial_columns(rows: Sequence[Row]) -> list[str]:
    """The dial columns of tidy rows (everything between ``stage`` and ``seed``)."""
    if not rows:
        return []
    return [k for k in rows[0] if k not in LEADING and k not in TRAILING]


def sweep_columns(dial_names: Sequence[str]) -> list[str]:
    """The columns of tidy rows with these dials: ``key, stage, <dials>, seed, ...``."""
    return [*LEADING, *dial_names, *TRAILING]


def write_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]],
              columns: Sequence[str]) -> Path:
    """Write ``rows`` (dicts keyed by ``columns``) as CSV, atomically: a reader sees the old
    file or the complete new one. The one CSV writer of the package's results."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def _number(text: str) -> Any:
    if text == "":
        return ""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_csv(path: str | os.PathLike[str]) -> list[Row]:
    """Read a tidy ``results.csv`` back (numbers parsed; empty cells stay ``""``)."""
    p = Path(path)
    if not p.is_file():
        raise DSSLError(f"results file not found: {p}; run `dssl sweep` first")
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {*LEADING, *TRAILING} - set(reader.fieldnames or ())
        if missing:
            raise DSSLError(f"{p} is not a sweep results CSV (missing columns {sorted(missing)})")
        rows = []
        for raw in reader:
            row: Row = {}
            for k, v in raw.items():
                if k in ("key", "stage", "representation", "label", "metric"):
                    row[k] = v
                else:
                    row[k] = _number(v)
            rows.append(row)
    return rows


def metric_name(row: Row) -> str:
    """``representation.label`` for probe accuracies (``shared.yc``), else
    ``representation.metric`` (``shared.heldout_mi_bound``)."""
    name = row["label"] if row["metric"] == "accuracy" else row["metric"]
    return f"{row['representation']}.{name}"


def seed_stats(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, std, n) of per-seed values (population std: 0 for one seed); the one
    aggregation over seeds of every report."""
    values = list(values)
    return float(np.mean(values)), float(np.std(values)), len(values)


def format_stat(mean: float, std: float, n: int, digits: int = 3) -> str:
    """``0.712`` for one seed, ``0.712 ± 0.004`` for several."""
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


@dataclass
class Config:
    """One dial setting, summarised over seeds.

    Attributes:
        dials: dial name -> value (step-2 dials absent at the shared level).
        values: metric name -> per-seed values (seed -> value).
        train_seconds: seed -> training seconds of this configuration's own stage.
    """

    dials: dict[str, Any]
    values: dict[str, dict[int, float]] = field(default_factory=dict)
    train_seconds: dict[int, float] = field(default_factory=dict)

    def stat(self, metric: str) -> tuple[float, float, int]:
        """(mean, std, n) over seeds of ``metric``; KeyError if it is absent."""
        if metric not in self.values:
            raise KeyError(metric)
        return seed_stats(self.values[metric].values())

    def mean(self, metric: str) -> float:
        return self.stat(metric)[0]

    def std(self, metric: str) -> float:
        return self.stat(metric)[1]

    def n(self, metric: str) -> int:
        return len(self.values.get(metric, {}))

    def cell(self, metric: str, missing: str = "", digits: int = 3) -> str:
        """Mean (± std over several seeds) of ``metric`` for a table; ``missing`` if absent."""
        return format_stat(*self.stat(metric), digits) if metric in self.values else missing

    def label(self) -> str:
        return ", ".join(f"{'β' if k == 'beta' else 'λ' if k == 'lam' else k}={v:g}"
                         if isinstance(v, float) else f"{k}={v}" for k, v in self.dials.items())


def configs(rows: Sequence[Row], level: str) -> list[Config]:
    """Per-configuration summaries over seeds, in grid order.

    ``level="shared"``: one per step-1 setting (the dials set on ``shared`` rows: β and the
    other step-1 dials; for a one-stage method every dial). ``level="specific"``: one per
    setting with specific rows, with its step-1 setting's shared metrics attached (so a
    target may combine ``shared.*`` and ``specific1.*`` metrics).
    """
    if level not in ("shared", "specific"):
        raise DSSLError(f"level must be 'shared' or 'specific', got {level!r}")
    dials = dial_columns(rows)
    by_key: dict[tuple, Config] = {}

    def add(cfg: Config, row: Row, own: bool) -> None:
        cfg.values.setdefault(metric_name(row), {})[int(row["seed"])] = float(row["value"])
        if own:
            cfg.train_seconds[int(row["seed"])] = float(row["train_seconds"])

    own_stage = level
    for r in rows:
        if r["stage"] == own_stage:
            key = tuple(r[d] for d in dials)
            cfg = by_key.setdefault(key, Config({d: r[d] for d in dials if r[d] != ""}))
            add(cfg, r, True)
    if level == "specific":
        for r in rows:
            if r["stage"] != "shared":
                continue
            for key, cfg in by_key.items():
                if all(r[d] == "" or r[d] == v for d, v in zip(dials, key)):
                    add(cfg, r, False)

    def order(cfg: Config) -> tuple:
        return tuple((0, v) if isinstance(v, (int, float)) else (1, str(v))
                     for v in (cfg.dials.get(d, "") for d in dials))

    return sorted(by_key.values(), key=order)


def accuracy_rows(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Trial key -> its probe-accuracy rows, in order."""
    out: dict[str, list[Row]] = {}
    for r in rows:
        if r["metric"] == "accuracy":
            out.setdefault(r["key"], []).append(r)
    return out
