"""``dssl compare``: methods × dials × seeds on one dataset, probed the same way; a preset of
the grid engine.

Every method trains through the one loop (via :class:`~disentangled_ssl.DisentangledSSL` with
``method=...``) on the same split; every representation is probed by the same linear probe.
Each (method, dial value) setting is a one-point grid (:func:`compare_grid`), all run as one
sweep: DisentangledSSL's λ settings share their step-1 unit, so step 1 trains once per seed.
Writes a tidy CSV (one accuracy per row), a Markdown summary that checks the paper's claim (is
each baseline point dominated by a DisentangledSSL point: at least its accuracy on the
modality-1 label and less leakage of the shared label?) and a PNG shaped like the paper's
Figure 3(b) (Wang et al., ICLR 2025).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_text_atomic
from disentangled_ssl.data.synthetic import LABEL_NAMES, PairedData
from disentangled_ssl.experiments.engine import output_folder, run_sweep
from disentangled_ssl.experiments.figures import plot_compare
from disentangled_ssl.experiments.results import (
    Row,
    accuracy_rows,
    configs,
    format_stat,
    write_csv,
)
from disentangled_ssl.experiments.spec import (
    DataSpec,
    SweepSpec,
    SweepUnion,
    check_representations,
    estimator_defaults,
)
from disentangled_ssl.methods import DEFAULT_METHOD, get_method

#: Columns of ``dssl compare``'s results.csv.
CSV_FIELDS = ("method", "dial", "dial_value", "settings", "seed", "representation", "label",
              "accuracy", "train_seconds")

#: Parameters ``--set`` may fix besides a method's dials.
COMMON_PARAMS = ("kappa", "temperature")

#: Fixed settings used unless overridden: DisentangledSSL at β = 0.1 (one of the two β of the
#: paper's Figure 3(b)); JointOpt and FOCAL at a = 1 (their authors' default).
DEFAULT_FIXED: dict[str, dict[str, float]] = {
    "disentangled_ssl": {"beta": 0.1},
    "joint": {"alpha": 1.0},
    "focal": {"alpha": 1.0},
}

#: Tolerance on y1 accuracy for "equal or higher" in the dominance check.
Y1_TOLERANCE = 0.005


@dataclass
class CompareConfig:
    """What to compare and at which budget.

    Attributes:
        methods: method names (see :func:`~disentangled_ssl.methods.method_names`).
        sweeps: method -> (dial, values) to sweep; methods not listed use their registry
            default (``MethodSpec.sweep``), or a single setting if they have none.
        fixed: method -> {parameter: value} held fixed (merged over :data:`DEFAULT_FIXED`).
        seeds: training seeds (the data and split are the same for every seed).
        n_samples, data_seed: size and seed of the synthetic data (ignored with ``data``).
        test_fraction, split_seed: the train/test split.
        epochs: epochs of one-stage methods; shared_epochs/specific_epochs: DisentangledSSL's.
        batch_size, lr, device: optimisation settings shared by every method.
        representations: representations probed; for methods without specific codes,
            ``specificK`` is replaced by ``sharedK`` (their modality-K code).
        own_label, leak_label: labels of the Figure-3(b) axes.
    """

    methods: Sequence[str] = ("disentangled_ssl", "joint", "focal", "dmvae")
    sweeps: Mapping[str, tuple[str, Sequence[float]]] = field(default_factory=dict)
    fixed: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    seeds: Sequence[int] = (0, 1, 2)
    n_samples: int = 20000
    data_seed: int = 0
    test_fraction: float = 0.2
    split_seed: int = 0
    epochs: int = 5
    shared_epochs: int = 5
    specific_epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-4
    device: str = "auto"
    representations: Sequence[str] = ("shared", "specific1", "specific2")
    own_label: str = "y1"
    leak_label: str = "yc"


@dataclass(frozen=True)
class Setting:
    """One point of a method's curve: the swept dial's value plus the fixed parameters."""

    method: str
    dial: str
    value: float | None
    params: dict

    @property
    def settings_text(self) -> str:
        return json.dumps(self.params, sort_keys=True)


def _check_config(config: CompareConfig) -> None:
    if not config.methods:
        raise DSSLError("no methods to compare; pass at least one (e.g. --methods joint)")
    if len(set(config.methods)) != len(config.methods):
        raise DSSLError(f"methods repeat: {list(config.methods)}")
    if not config.seeds:
        raise DSSLError("no seeds; pass at least one (e.g. --seeds 0)")
    check_representations(config.representations)
    for name in list(config.sweeps) + list(config.fixed):
        get_method(name)
        if name not in config.methods:
            raise DSSLError(
                f"a sweep or setting is given for {name!r}, which is not among the compared "
                f"methods {list(config.methods)}; add it to --methods")


def _check_value(method: str, key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise DSSLError(f"{method}: {key} must be a finite number, got {value!r}")
    if value < 0 or (key in COMMON_PARAMS and value == 0):
        raise DSSLError(f"{method}: {key} must be {'> 0' if key in COMMON_PARAMS else '>= 0'}, "
                        f"got {value!r}")


def _method_settings(config: CompareConfig, name: str) -> list[Setting]:
    """The settings of one method: its swept dial's values over its fixed parameters."""
    spec = get_method(name)
    sweep = config.sweeps.get(name, spec.sweep)
    swept = sweep[0] if sweep is not None else None
    defaults = {k: v for k, v in DEFAULT_FIXED.get(name, {}).items() if k != swept}
    fixed = {**defaults, **dict(config.fixed.get(name, {}))}
    allowed = set(spec.dials) | set(COMMON_PARAMS)
    for key, value in fixed.items():
        if key not in allowed:
            raise DSSLError(f"method {name!r} has no parameter {key!r}; it takes "
                            f"{', '.join(sorted(allowed))}")
        _check_value(name, key, value)
    if sweep is None:
        return [Setting(name, "", None, fixed)]
    dial, values = sweep
    if dial not in spec.dials:
        have = ", ".join(spec.dials) if spec.dials else "none"
        raise DSSLError(f"method {name!r} has no dial {dial!r} to sweep (its dials: {have})")
    if dial in fixed:
        raise DSSLError(f"{name}: {dial!r} is both swept and fixed; choose one")
    if not values:
        raise DSSLError(f"{name}: the sweep of {dial!r} has no values")
    for value in values:
        _check_value(name, dial, value)
    return [Setting(name, dial, float(v), {**fixed, dial: float(v)}) for v in values]


def plan(config: CompareConfig) -> list[Setting]:
    """Validate the config and list every (method, dial value) setting, in order.

    Raises:
        DSSLError: unknown method, a dial the method does not have, a bad value.
    """
    _check_config(config)
    return [s for name in config.methods for s in _method_settings(config, name)]


def _setting_grid(config: CompareConfig, setting: Setting, data: DataSpec) -> SweepSpec:
    """One setting as a grid of one point: every parameter of the setting is a (one-value)
    dial, so it has a column in the tidy rows; a two-step method always trains step 2."""
    params = dict(setting.params)
    two_step = get_method(setting.method).two_step
    defaults = estimator_defaults()
    lam = params.pop("lam", defaults["lam"] if two_step else None)
    return SweepSpec(
        betas=[params.pop("beta", defaults["beta"])], lambdas=[] if lam is None else [lam],
        seeds=config.seeds, data=data, probes=config.representations,
        dials={"method": [setting.method], **{k: [v] for k, v in params.items()}},
        params={"epochs": config.epochs, "shared_epochs": config.shared_epochs,
                "specific_epochs": config.specific_epochs, "batch_size": config.batch_size,
                "lr": config.lr})


def compare_grid(config: CompareConfig, settings: Sequence[Setting], data: DataSpec
                 ) -> tuple[SweepUnion, dict[tuple[int, int], list[str]]]:
    """The comparison as one sweep, and (setting index, seed) -> that model's trial keys (a
    two-step method's λ settings share their step-1 unit: step 1 trains once per seed)."""
    grids = [_setting_grid(config, s, data) for s in settings]
    keys = {(i, u.seed): u.trial_keys for i, grid in enumerate(grids) for u in grid.units()}
    return SweepUnion(grids), keys


def _representations(config: CompareConfig, method: str) -> list[str]:
    if get_method(method).has_specific:
        return list(config.representations)
    return list(dict.fromkeys(r.replace("specific", "shared") for r in config.representations))


def compare_rows(rows: Sequence[Row], config: CompareConfig, settings: Sequence[Setting],
                 keys: Mapping[tuple[int, int], list[str]], labels: Sequence[str]
                 ) -> list[dict[str, Any]]:
    """The accuracy rows in ``results.csv``'s columns (:data:`CSV_FIELDS`): per seed, per
    setting, per representation, per label; ``train_seconds`` is the model's whole training
    (both steps of a two-step method)."""
    by_key, out = accuracy_rows(rows), []
    for seed in config.seeds:
        for i, setting in enumerate(settings):
            trials = [by_key.get(k, []) for k in keys[(i, seed)]]
            seconds = sum(t[0]["train_seconds"] for t in trials if t)
            found = {(r["representation"], r["label"]): r for t in trials for r in t}
            for rep in _representations(config, setting.method):
                for label in labels:
                    if (rep, label) in found:
                        out.append({
                            "method": setting.method, "dial": setting.dial,
                            "dial_value": "" if setting.value is None else setting.value,
                            "settings": setting.settings_text, "seed": seed,
                            "representation": rep, "label": label,
                            "accuracy": round(found[(rep, label)]["value"], 5),
                            "train_seconds": round(seconds, 3)})
    return out


def _compare_data(config: CompareConfig, data: PairedData | None) -> DataSpec:
    if data is not None and not data.labels:
        raise DSSLError("the data has no labels to probe; compare needs label arrays (an .npz "
                        "from `dssl generate`, or one with 1-D integer arrays beside x1, x2)")
    spec = DataSpec(n_samples=config.n_samples, data_seed=config.data_seed, arrays=data,
                    test_fraction=config.test_fraction, split_seed=config.split_seed)
    have = data.labels if data is not None else dict.fromkeys(LABEL_NAMES)
    missing = [lab for lab in (config.own_label, config.leak_label) if lab not in have]
    if missing:
        raise DSSLError(f"labels {missing} are not in the data (it has {sorted(have)}); "
                        "choose --own-label/--leak-label among them")
    return spec


def run_compare(config: CompareConfig, out_dir: str | os.PathLike[str],
                data: PairedData | None = None, overwrite: bool = False,
                progress: bool = True) -> list[dict[str, Any]]:
    """Run the comparison and write ``results.csv``, ``summary.md``, ``run.json`` and
    ``figure3b.png`` into ``out_dir``; returns the CSV rows.

    Args:
        config: methods, dials, seeds and budget.
        out_dir: output folder (refused if it exists and is not empty, unless ``overwrite``).
        data: paired data with labels (default: the paper's synthetic generator at
            ``config.n_samples``).
        overwrite: allow a non-empty ``out_dir``.
        progress: show a progress bar.
    """
    settings = plan(config)
    out = output_folder(out_dir, overwrite)
    spec = _compare_data(config, data)
    train, test = spec.load()
    grid, keys = compare_grid(config, settings, spec)
    result = run_sweep(grid, out, threads_per_worker=None, device=config.device,
                       keep_models=False, progress=progress, report=False, desc="compare",
                       data=(train, test), run_info={"config": asdict(config),
                                                     "n_train": len(train), "n_test": len(test)})
    result.raise_failures(out)
    rows = compare_rows(result.rows, config, settings, keys, list(train.labels))
    write_csv(out / "results.csv", rows, CSV_FIELDS)
    write_text_atomic(out / "summary.md", summary_table(result.rows, config))
    plot_compare(curve_points(result.rows, config), out / "figure3b.png",
                 own_label=config.own_label, leak_label=config.leak_label)
    return rows


def curve_points(rows: Sequence[Row], config: CompareConfig) -> dict[str, list[dict]]:
    """Per method (in ``config.methods`` order), the Figure-3(b) points ordered by dial
    value: dicts with ``dial``, ``value``, ``settings``, ``representation`` and
    ``own``/``leak`` (mean, std, n over seeds) of the modality-1 code (specific1; shared1 for
    shared-only methods)."""
    by_level = {level: configs(rows, level) for level in ("shared", "specific")}
    points: dict[str, list[dict]] = {}
    for method in config.methods:
        spec = get_method(method)
        rep = "specific1" if spec.has_specific else "shared1"
        own, leak = f"{rep}.{config.own_label}", f"{rep}.{config.leak_label}"
        sweep = config.sweeps.get(method, spec.sweep)
        dial = sweep[0] if sweep is not None else ""
        for cfg in by_level["specific" if spec.has_specific else "shared"]:
            if cfg.dials.get("method") != method or own not in cfg.values or (
                    leak not in cfg.values):
                continue
            params = {k: v for k, v in cfg.dials.items() if k != "method"}
            points.setdefault(method, []).append({
                "dial": dial, "value": float(params[dial]) if dial in params else None,
                "settings": json.dumps(params, sort_keys=True), "representation": rep,
                "own": cfg.stat(own), "leak": cfg.stat(leak)})
    for pts in points.values():
        pts.sort(key=lambda p: (p["value"] is None, p["value"] or 0.0))
    return points


def _dial_text(point: Mapping[str, Any]) -> str:
    return "–" if point["value"] is None else f"{point['dial']}={point['value']:g}"


def _claim_check(points: Mapping[str, list[dict]], own: str, leak: str) -> list[str]:
    """Is each baseline point dominated by a DisentangledSSL point?"""
    ours = points.get(DEFAULT_METHOD, [])
    others = {m: p for m, p in points.items() if m != DEFAULT_METHOD
              and get_method(m).has_specific}
    if not (ours and others):
        return []
    lines = ["", f"## Claim check: is each baseline point dominated by a DisentangledSSL point "
             f"({own} within {Y1_TOLERANCE} or higher, and lower {leak} leakage; means over "
             "seeds)?", "",
             f"| baseline | dial | {own} | {leak} | dominated by | verdict |",
             "|---|---|---|---|---|---|"]
    for method, pts in others.items():
        for p in pts:
            winners = [d for d in ours if d["own"][0] >= p["own"][0] - Y1_TOLERANCE
                       and d["leak"][0] < p["leak"][0]]
            by = ", ".join(_dial_text(d) for d in winners) or "–"
            lines.append(f"| {method} | {_dial_text(p)} | {p['own'][0]:.3f} | "
                         f"{p['leak'][0]:.3f} | {by} | {'yes' if winners else 'NO'} |")
    return lines


def summary_table(rows: Sequence[Row], config: CompareConfig) -> str:
    """Markdown: per method and dial value, the modality-1 code's accuracies (mean ± std over
    seeds), then the dominance check of the paper's claim."""
    own, leak = config.own_label, config.leak_label
    points = curve_points(rows, config)
    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [
        f"# Method comparison ({len(seeds)} seed(s) {seeds}; one-stage methods "
        f"{config.epochs} epochs, DisentangledSSL {config.shared_epochs} + "
        f"{config.specific_epochs} epochs)", "",
        f"Modality-1 code (specific1; shared1 for shared-only methods): test linear-probe "
        f"accuracy on {own} (higher is better) and on {leak} (leakage, lower is better).", "",
        f"| method | dial | code | {own} | {leak} (leakage) | settings |",
        "|---|---|---|---|---|---|"]
    for method, pts in points.items():
        for p in pts:
            lines.append(f"| {method} | {_dial_text(p)} | {p['representation']} | "
                         f"{format_stat(*p['own'])} | {format_stat(*p['leak'])} | "
                         f"`{p['settings']}` |")
    return "\n".join(lines + _claim_check(points, own, leak)) + "\n"
