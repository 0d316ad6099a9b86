"""``dssl compare``: methods × dials × seeds on one dataset, probed the same way; a preset of
the grid engine's plan, store and records.

Every method trains through the one loop (via :class:`~disentangled_ssl.DisentangledSSL` with
``method=...``) on the same split; every representation is probed by the same linear probe.
Each (method, dial value) setting is a one-point grid (:func:`compare_grid`), all planned as one
sweep: DisentangledSSL's λ settings share their step-1 unit, so step 1 trains once per seed.
The units run in this process through the sweep engine (:func:`run_trials` calls
:func:`~disentangled_ssl.experiments.engine.run_sweep`), so every trial is recorded in the
engine's store (``trials/<key>.json``: probes, the fitted estimator's per-epoch ``history``
and, for DMVAE, its reconstruction and KL on the held-out rows) and event log
(``events.jsonl``), and the loss curves of every run can be shown next to its probes.

Writes a tidy CSV (one accuracy per row), the loss curves (``loss_curves.csv``,
``loss_curves.png``), the probes of each method's untrained (initialised) network
(``untrained.csv``), a Markdown summary that checks the paper's claim (is each baseline point
dominated by a DisentangledSSL point: at least its accuracy on the modality-1 label and less
leakage of the shared label?) and whether each objective converged, and a PNG shaped like the
paper's Figure 3(b) (Wang et al., ICLR 2025). With several learning rates, each method's is
chosen on a validation split of the training rows first (:func:`select_lr`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl._io import write_text_atomic
from disentangled_ssl.data.synthetic import LABEL_NAMES, PairedData
from disentangled_ssl.estimator import DisentangledSSL
from disentangled_ssl.experiments.engine import (
    SweepResult,
    output_folder,
    run_sweep,
)
from disentangled_ssl.experiments.figures import plot_compare, plot_loss_curves
from disentangled_ssl.experiments.results import (
    Row,
    accuracy_rows,
    configs,
    format_stat,
    seed_stats,
    write_csv,
)
from disentangled_ssl.experiments.spec import (
    DataSpec,
    SweepSpec,
    SweepUnion,
    check_representations,
    estimator_defaults,
)
from disentangled_ssl.experiments.trial import Split, evaluate
from disentangled_ssl.methods import DEFAULT_METHOD, get_method

#: Columns of ``dssl compare``'s results.csv.
CSV_FIELDS = ("method", "dial", "dial_value", "settings", "seed", "representation", "label",
              "accuracy", "train_seconds")

#: Columns of ``selection.csv`` (the validation probes of the learning-rate selection).
SELECTION_FIELDS = (*CSV_FIELDS, "lr", "chosen")

#: Columns of ``loss_curves.csv``: one loss term of one epoch of one run per row. ``phase`` is
#: ``compare`` (the runs of the table) or ``selection`` (the learning-rate selection runs).
CURVE_FIELDS = ("phase", "method", "dial", "dial_value", "lr", "seed", "stage", "epoch",
                "term", "value")

#: Parameters ``--set`` may fix besides a method's dials (a fixed ``lr`` is not selected).
COMMON_PARAMS = ("kappa", "temperature", "lr")

#: A run's objective counts as converged when its training loss moved by less than this share
#: of its whole range over the run during the last :data:`CONVERGENCE_WINDOW` of its epochs
#: (:func:`loss_change`).
CONVERGENCE_TOLERANCE = 0.01

#: The share of the epochs over which :data:`CONVERGENCE_TOLERANCE` is checked.
CONVERGENCE_WINDOW = 0.1

#: Sub-folder of the output that holds the learning-rate selection runs.
SELECTION_DIR = "selection"

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
        lr_candidates: two or more learning rates: each method's is chosen among them
            (:func:`select_lr`) and replaces ``lr`` (a method with ``lr`` in ``fixed`` keeps
            it); one value is used as ``lr``; empty uses ``lr``.
        selection_fraction: share of the training rows held out as the selection's
            validation split (the test rows are never used to choose).
        selection_seed: the training seed of the selection runs.
        selection_epochs: epochs of the selection runs (every stage); None: the budget of
            the comparison.
        selection_sweeps: method -> (dial, values) trained in the selection instead of the
            method's comparison sweep (the same dial; e.g. only its middle value, to save
            time).
        validation_fraction: the estimator's ``validation_fraction`` in every run: the
            loss terms on that share of the training rows are recorded per epoch
            (``val_<term>``) and drawn as dashed loss curves; those rows are not trained on.
        untrained_reference: also probe each method's initialised, untrained network (per
            seed) as a reference (``untrained.csv`` and a row in ``summary.md``).
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
    lr_candidates: Sequence[float] = ()
    selection_fraction: float = 0.2
    selection_seed: int = 0
    selection_epochs: int | None = None
    selection_sweeps: Mapping[str, tuple[str, Sequence[float]]] = field(default_factory=dict)
    validation_fraction: float = 0.0
    untrained_reference: bool = True


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
    for lr in config.lr_candidates:
        _check_value("--lr", "lr", lr)
    if len(set(config.lr_candidates)) != len(config.lr_candidates):
        raise DSSLError(f"learning rates repeat: {list(config.lr_candidates)}")
    if not 0.0 < config.selection_fraction < 1.0:
        raise DSSLError(f"selection_fraction must be in (0, 1), got "
                        f"{config.selection_fraction!r}")
    if config.selection_epochs is not None and (
            isinstance(config.selection_epochs, bool) or not isinstance(
                config.selection_epochs, int) or config.selection_epochs < 1):
        raise DSSLError(f"selection_epochs must be a positive integer, got "
                        f"{config.selection_epochs!r}")
    if not 0.0 <= config.validation_fraction < 1.0:
        raise DSSLError(f"validation_fraction must be in [0, 1), got "
                        f"{config.validation_fraction!r}")
    for name, (dial, _) in config.selection_sweeps.items():
        get_method(name)
        if name not in config.methods:
            raise DSSLError(f"a selection sweep is given for {name!r}, which is not among the "
                            f"compared methods {list(config.methods)}")
        sweep = config.sweeps.get(name, get_method(name).sweep)
        if sweep is None or sweep[0] != dial:
            raise DSSLError(f"{name}: the selection sweeps {dial!r}, the comparison sweeps "
                            f"{sweep[0] if sweep else 'nothing'!r}; select on the same dial")
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


def _lr_grid(config: CompareConfig) -> tuple[float, ...]:
    """The learning rates to choose among (empty: no selection, ``config.lr`` or the single
    candidate is used)."""
    return tuple(float(v) for v in config.lr_candidates) if len(config.lr_candidates) > 1 else ()


def _base_lr(config: CompareConfig) -> float:
    return float(config.lr_candidates[0]) if len(config.lr_candidates) == 1 else config.lr


def _setting_grid(config: CompareConfig, setting: Setting, data: DataSpec,
                  seeds: Sequence[int] | None = None) -> SweepSpec:
    """One setting as a grid of one point: every parameter of the setting is a (one-value)
    dial, so it has a column in the tidy rows (a per-method ``lr`` too); a two-step method
    always trains step 2."""
    params = dict(setting.params)
    two_step = get_method(setting.method).two_step
    defaults = estimator_defaults()
    lam = params.pop("lam", defaults["lam"] if two_step else None)
    fixed: dict[str, Any] = {
        "epochs": config.epochs, "shared_epochs": config.shared_epochs,
        "specific_epochs": config.specific_epochs, "batch_size": config.batch_size}
    if "lr" not in params:
        fixed["lr"] = _base_lr(config)
    if config.validation_fraction > 0:
        fixed["validation_fraction"] = float(config.validation_fraction)
    return SweepSpec(
        betas=[params.pop("beta", defaults["beta"])], lambdas=[] if lam is None else [lam],
        seeds=config.seeds if seeds is None else seeds, data=data,
        probes=config.representations,
        dials={"method": [setting.method], **{k: [v] for k, v in params.items()}},
        params=fixed)


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


# ---------------------------------------------------------------------- running the grid
def run_trials(grid: SweepUnion, folder: str | os.PathLike[str], data: Split, *,
               device: str = "cpu", progress: bool = True, desc: str = "compare",
               run_info: Mapping[str, Any] | None = None
               ) -> tuple[SweepResult, dict[str, dict[str, Any]]]:
    """Run every missing trial of ``grid`` into ``folder`` through the sweep engine
    (:func:`~disentangled_ssl.experiments.engine.run_sweep`: one process, the caller's thread
    settings, no batching, step-1 models kept only while their unit runs, no sweep report)
    and return its result with trial key -> record (each record holds the ``history`` of its
    estimator, and for DMVAE its diagnostics rows: :func:`~disentangled_ssl.experiments.trial.
    diagnostic_rows`)."""
    result = run_sweep(grid, folder, threads_per_worker=None, device=device,
                       keep_models=False, progress=progress, report=False, data=data,
                       run_info=dict(run_info or {}), desc=desc)
    return result, {r["key"]: r for r in result.records}


# ---------------------------------------------------------------------- untrained reference
def _initialised(est: DisentangledSSL, train: PairedData) -> DisentangledSSL:
    """``est`` with the model its fit would start from (every stage prepared, none trained:
    DisentangledSSL's specific encoders are the fresh ones step 2 would train)."""
    for name in get_method(est.method).stage_names:
        est.prepare_stage(name, (train.x1, train.x2))
        est.history_.setdefault(name, [])  # trained for 0 epochs: transform gives its codes
    return est


def untrained_rows(config: CompareConfig, settings: Sequence[Setting], data: Split,
                   spec: DataSpec) -> list[Row]:
    """Tidy rows (the engine's schema, stage ``specific`` or ``shared``, plus ``method`` and
    ``settings``) of each method's initialised, untrained network per seed: the same probes
    (and DMVAE diagnostics) as a trained run, as the reference a trained run must beat."""
    rows: list[Row] = []
    for method in config.methods:
        setting = next(s for s in settings if s.method == method)
        for unit in _setting_grid(config, setting, spec).units():
            est = _initialised(DisentangledSSL(**{**unit.params, "device": config.device,
                                                  "verbose": False}), data[0])
            found = evaluate(est, *data, "all", unit.probes)
            for r in found:
                rows.append({"key": f"untrained-{method}-{unit.seed}",
                             "stage": r.get("stage", "specific"), "method": method,
                             "settings": setting.settings_text, "seed": unit.seed,
                             "representation": r["representation"], "label": r["label"],
                             "metric": r["metric"], "value": float(r["value"]),
                             "train_seconds": 0.0, "eval_seconds": 0.0})
    return rows


def _untrained_csv_rows(rows: Sequence[Row], config: CompareConfig) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r["metric"] != "accuracy" or r["representation"] not in _representations(
                config, r["method"]):
            continue
        out.append({"method": r["method"], "dial": "", "dial_value": "",
                    "settings": r["settings"], "seed": r["seed"],
                    "representation": r["representation"], "label": r["label"],
                    "accuracy": round(r["value"], 5), "train_seconds": 0.0})
    return out


# ---------------------------------------------------------------------- learning rate
def _own_code(method: str) -> str:
    """The modality-1 code of a method: ``specific1``, or ``shared1`` without specific codes."""
    return "specific1" if get_method(method).has_specific else "shared1"


@dataclass
class LRSelection:
    """What :func:`select_lr` chose and saw.

    Attributes:
        chosen: method -> chosen learning rate (methods with a fixed ``lr`` are absent).
        rows: the ``selection.csv`` rows (:data:`SELECTION_FIELDS`): validation probes.
        histories: the selection runs' histories (see :func:`run_histories`).
        train_seconds: training time of the selection runs, summed over their trials.
    """

    chosen: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    histories: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def _train_seconds(records: Mapping[str, Mapping[str, Any]]) -> float:
    return float(sum(r.get("train_seconds", 0.0) for r in records.values()))


def select_lr(config: CompareConfig, train: PairedData,
              folder: str | os.PathLike[str], progress: bool = True) -> LRSelection:
    """Choose each method's learning rate among ``config.lr_candidates`` on validation data.

    Every setting of every method (all its dial values, or those of
    ``config.selection_sweeps``) trains once per candidate, with seed
    ``config.selection_seed`` (and ``config.selection_epochs`` if set), on the training rows
    minus a validation split of ``config.selection_fraction`` of them (drawn with
    ``config.split_seed``); the test rows are never seen. A method's score for a learning rate
    is the mean over its dial values of the validation linear-probe accuracy of
    ``config.own_label`` on its modality-1 code (specific1; shared1 for shared-only methods);
    the highest score wins; a tie goes to the lower mean final training loss of the method's
    own objective (comparable: the same loss at every lr), then to the first candidate. A
    learning rate with a diverged run is not eligible. Methods with ``lr`` in
    ``config.fixed`` keep it.

    Returns:
        :class:`LRSelection`.

    Raises:
        DSSLError: every candidate diverged for a method.
    """
    candidates = _lr_grid(config)
    methods = [m for m in config.methods if "lr" not in config.fixed.get(m, {})]
    if not methods:
        return LRSelection()
    epochs = config.selection_epochs
    budget = {} if epochs is None else {"epochs": epochs, "shared_epochs": epochs,
                                         "specific_epochs": epochs}
    sel_config = replace(config, seeds=(config.selection_seed,), representations=(
        "specific1",), **budget)
    trained = plan(replace(config, sweeps={**config.sweeps, **config.selection_sweeps}))
    sel_settings = [replace(s, params={**s.params, "lr": lr})
                    for s in trained if s.method in methods for lr in candidates]
    data = DataSpec(arrays=train, test_fraction=config.selection_fraction,
                    split_seed=config.split_seed)
    sub_train, validation = data.load()
    grid, keys = compare_grid(sel_config, sel_settings, data)
    result, records = run_trials(
        grid, folder, (sub_train, validation), device=config.device, progress=progress,
        desc="select lr", run_info={"config": asdict(sel_config), "n_train": len(sub_train),
                                    "n_validation": len(validation)})
    rows = compare_rows(result.rows, sel_config, sel_settings, keys, list(train.labels))
    histories = run_histories(records, sel_settings, keys, sel_config.seeds)
    final_loss = {(h["method"], h["setting"].settings_text): float(
        list(h["history"].values())[-1][-1]["loss"]) for h in histories
        if list(h["history"].values())[-1]}
    scores: dict[str, dict[float, list[tuple[float, float]]]] = {}
    for s in sel_settings:
        found = [r["accuracy"] for r in rows if r["settings"] == s.settings_text
                 and r["method"] == s.method and r["representation"] == _own_code(s.method)
                 and r["label"] == config.own_label]
        scores.setdefault(s.method, {}).setdefault(float(s.params["lr"]), []).append(
            (float(found[0]) if found else math.nan,
             final_loss.get((s.method, s.settings_text), math.nan)))
    chosen: dict[str, float] = {}
    for method, by_lr in scores.items():
        # the mean validation probe; a tie goes to the lower final loss of the method's own
        # objective (the same loss at every lr), then to the first candidate
        eligible = {lr: (round(float(np.mean([a for a, _ in v])), 9),
                         -float(np.mean([loss for _, loss in v])), -candidates.index(lr))
                    for lr, v in by_lr.items() if not any(math.isnan(a) for a, _ in v)}
        if not eligible:
            raise DSSLError(f"{method}: training diverged at every learning rate "
                            f"{list(candidates)}; give smaller ones (see {Path(folder)})")
        chosen[method] = max(eligible, key=eligible.__getitem__)
    for r in rows:
        r["lr"] = json.loads(r["settings"])["lr"]
        r["chosen"] = int(chosen.get(r["method"]) == r["lr"])
    return LRSelection(chosen, rows, histories, _train_seconds(records))


def _with_lr(settings: Sequence[Setting], chosen: Mapping[str, float]) -> list[Setting]:
    return [replace(s, params={**s.params, "lr": chosen[s.method]}) if s.method in chosen
            else s for s in settings]


# ---------------------------------------------------------------------- loss curves
def run_histories(records: Mapping[str, Mapping[str, Any]], settings: Sequence[Setting],
                  keys: Mapping[tuple[int, int], list[str]], seeds: Sequence[int]
                  ) -> list[dict[str, Any]]:
    """Per (setting, seed) with a record, its run's history: dicts with ``method``,
    ``setting`` (:class:`Setting`), ``seed`` and ``history`` (stage -> per-epoch terms; for a
    two-step method both steps, from its step-2 trial)."""
    out = []
    for seed in seeds:
        for i, setting in enumerate(settings):
            trial = keys[(i, seed)][-1]
            if trial in records and "history" in records[trial]:
                out.append({"method": setting.method, "setting": setting, "seed": seed,
                            "history": records[trial]["history"]})
    return out


def _lr_of(setting: Setting, config: CompareConfig) -> float:
    return float(setting.params.get("lr", _base_lr(config)))


def curve_rows(histories: Sequence[Mapping[str, Any]], config: CompareConfig, phase: str
               ) -> list[dict[str, Any]]:
    """``loss_curves.csv`` rows (:data:`CURVE_FIELDS`): every loss term of every epoch and its
    ``val_<term>`` when recorded (not the learning rate, the dial values or the timings of
    ``history_``)."""
    skip = {"lr", "seconds", "best_epoch", *(d for m in config.methods
                                               for d in get_method(m).dials)}
    out = []
    for h in histories:
        s: Setting = h["setting"]
        for stage, epochs in h["history"].items():
            for k, record in enumerate(epochs):
                for term, value in record.items():
                    if term not in skip and isinstance(value, (int, float)) and not isinstance(
                            value, bool):
                        out.append({"phase": phase, "method": s.method, "dial": s.dial,
                                    "dial_value": "" if s.value is None else s.value,
                                    "lr": _lr_of(s, config), "seed": h["seed"],
                                    "stage": stage, "epoch": k + 1, "term": term,
                                    "value": float(f"{float(value):.6g}")})
    return out


def loss_change(losses: Sequence[float], window: float = CONVERGENCE_WINDOW
                ) -> float | None:
    """How much a loss still moved at the end: its change over the last ``window`` of the
    epochs as a share of its whole range over the run, ``(L[E - k] - L[E]) / (max L - min L)``
    with ``k = max(1, round(window · E))`` (positive: still falling). Scale-free, and defined
    for losses that reach or cross 0 (InfoNCE plus a negative alignment term does); None with
    fewer than 2 epochs or a constant loss."""
    if len(losses) < 2:
        return None
    span = max(losses) - min(losses)
    if not span > 0:
        return None
    k = min(len(losses) - 1, max(1, round(window * len(losses))))
    return (losses[-1 - k] - losses[-1]) / span


def loss_noise(losses: Sequence[float]) -> float | None:
    """Epoch-to-epoch noise of a loss, as a share of its range: the standard deviation of
    the successive differences of its epoch means over the last half of the epochs, divided
    by √2 (one epoch mean's noise, if the curve is flat there) and by ``max L - min L``; None
    with fewer than 3 epochs in that half or a constant loss."""
    tail = np.asarray(losses[len(losses) // 2:], dtype=float)
    span = max(losses) - min(losses) if len(losses) else 0.0
    if tail.size < 3 or not span > 0:
        return None
    return float(np.std(np.diff(tail)) / math.sqrt(2.0) / span)


def convergence_rows(histories: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per run and stage: epochs, first and final training loss, its :func:`loss_change` over
    the last :data:`CONVERGENCE_WINDOW` and the last half of the epochs (and over the last
    window for the validation loss when recorded), its :func:`loss_noise`, and the verdict:
    ``converged`` when |change over the last window| < :data:`CONVERGENCE_TOLERANCE`;
    ``within_noise`` when it is larger but within two standard deviations of the difference of
    two noisy epoch means (|change| <= 2·√2·noise: a flat curve would give such a change one
    time in twenty); else not converged."""
    out = []
    for h in histories:
        s: Setting = h["setting"]
        for stage, epochs in h["history"].items():
            losses = [float(e["loss"]) for e in epochs]
            val = [float(e["val_loss"]) for e in epochs if "val_loss" in e]
            last, noise = loss_change(losses), loss_noise(losses)
            converged = last is not None and abs(last) < CONVERGENCE_TOLERANCE
            within = (not converged and last is not None and noise is not None
                      and abs(last) <= 2.0 * math.sqrt(2.0) * noise)
            out.append({"method": s.method, "setting": s, "seed": h["seed"], "stage": stage,
                        "epochs": len(losses), "final": losses[-1] if losses else math.nan,
                        "first": losses[0] if losses else math.nan, "last_window": last,
                        "last_half": loss_change(losses, 0.5), "noise": noise,
                        "val_last_window": loss_change(val) if len(val) == len(losses) else None,
                        "converged": converged, "within_noise": within})
    return out


# ---------------------------------------------------------------------- the run
def run_compare(config: CompareConfig, out_dir: str | os.PathLike[str],
                data: PairedData | None = None, overwrite: bool = False,
                progress: bool = True, resume: bool = False) -> list[dict[str, Any]]:
    """Run the comparison and write into ``out_dir``: ``results.csv``, ``summary.md``,
    ``figure3b.png``, ``loss_curves.csv``, ``loss_curves.png``, ``untrained.csv`` (with
    ``config.untrained_reference``), ``selection.csv`` (with several ``lr_candidates``; the
    selection runs' engine files in ``selection/``), and the engine's ``sweep.json``,
    ``run.json``, ``events.jsonl`` and ``trials/``; returns the results.csv rows.

    Args:
        config: methods, dials, seeds and budget.
        out_dir: output folder (refused if it exists and is not empty, unless ``overwrite``
            or ``resume``).
        data: paired data with labels (default: the paper's synthetic generator at
            ``config.n_samples``).
        overwrite: allow a non-empty ``out_dir``, starting afresh (its earlier trials are
            deleted).
        progress: show a progress bar.
        resume: keep the trials already recorded in ``out_dir`` (the same settings give the
            same trial keys), train only the missing ones and write every report file again
            (an interrupted run continues; a finished one is re-reported without training).
    """
    if overwrite and resume:
        raise DSSLError("overwrite starts afresh and resume keeps the earlier trials; choose "
                        "one")
    settings = plan(config)
    if resume:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = output_folder(out_dir, overwrite)
        if overwrite and (out / SELECTION_DIR).is_dir():
            output_folder(out / SELECTION_DIR, True)
    spec = _compare_data(config, data)
    train, test = spec.load()
    selection = LRSelection()
    if _lr_grid(config):
        selection = select_lr(config, train, out / SELECTION_DIR, progress)
        if selection.rows:
            write_csv(out / "selection.csv", selection.rows, SELECTION_FIELDS)
        settings = _with_lr(settings, selection.chosen)
    grid, keys = compare_grid(config, settings, spec)
    result, records = run_trials(
        grid, out, (train, test), device=config.device, progress=progress, desc="compare",
        run_info={"config": asdict(config), "n_train": len(train), "n_test": len(test),
                  "chosen_lr": selection.chosen})
    result.raise_failures(out)
    rows = compare_rows(result.rows, config, settings, keys, list(train.labels))
    write_csv(out / "results.csv", rows, CSV_FIELDS)
    untrained = (untrained_rows(config, settings, (train, test), spec)
                 if config.untrained_reference else [])
    if untrained:
        write_csv(out / "untrained.csv", _untrained_csv_rows(untrained, config), CSV_FIELDS)
    histories = run_histories(records, settings, keys, config.seeds)
    curves = (curve_rows(histories, config, "compare")
              + curve_rows(selection.histories, config, "selection"))
    write_csv(out / "loss_curves.csv", curves, CURVE_FIELDS)
    plot_loss_curves(_plot_curves(histories, config), out / "loss_curves.png")
    write_text_atomic(out / "summary.md", summary_table(
        result.rows, config, untrained=untrained, selection=selection.rows,
        chosen=selection.chosen, convergence=convergence_rows(histories),
        train_seconds=(_train_seconds(records), selection.train_seconds)))
    plot_compare(curve_points(result.rows, config), out / "figure3b.png",
                 own_label=config.own_label, leak_label=config.leak_label)
    return rows


def _plot_curves(histories: Sequence[Mapping[str, Any]], config: CompareConfig
                 ) -> list[dict[str, Any]]:
    """The loss curves of :func:`~disentangled_ssl.experiments.figures.plot_loss_curves`: per
    run and stage, the total training loss (and validation loss) per epoch. A two-step
    method's step 1, shared by its step-2 settings, is drawn once per seed."""
    out, seen = [], set()
    for h in histories:
        s: Setting = h["setting"]
        spec = get_method(s.method)
        for k, (stage, epochs) in enumerate(h["history"].items()):
            first_of_two = spec.two_step and k == 0
            tag = (s.method, stage, h["seed"], json.dumps(
                {p: v for p, v in s.params.items() if p != "lam"}, sort_keys=True)
                   if first_of_two else s.settings_text)
            if tag in seen or not epochs:
                continue
            seen.add(tag)
            val = [float(e["val_loss"]) for e in epochs if "val_loss" in e]
            label = "one setting" if s.value is None else f"{s.dial}={s.value:g}"
            if spec.two_step:
                title = f"{spec.title} step {k + 1} ({stage})"
                label = "(shared by every λ)" if first_of_two else label
            else:
                title = spec.title
            out.append({"method": s.method, "panel": title, "label": label,
                        "seed": h["seed"], "lr": _lr_of(s, config),
                        "loss": [float(e["loss"]) for e in epochs],
                        "val_loss": val if len(val) == len(epochs) else None})
    return out


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


def _lr_text(point: Mapping[str, Any], config: CompareConfig) -> str:
    return f"{json.loads(point['settings']).get('lr', _base_lr(config)):g}"


def _untrained_stats(untrained: Sequence[Row], config: CompareConfig
                     ) -> dict[str, dict[str, tuple[float, float, int]]]:
    """method -> metric (``own``, ``leak``, ``dmvae.<name>``) -> (mean, std, n) over seeds."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in untrained:
        code = _own_code(r["method"])
        values = out.setdefault(r["method"], {})
        if r["metric"] == "accuracy" and r["representation"] == code:
            if r["label"] == config.own_label:
                values.setdefault("own", []).append(r["value"])
            elif r["label"] == config.leak_label:
                values.setdefault("leak", []).append(r["value"])
        elif r["representation"] == "dmvae":
            values.setdefault(f"dmvae.{r['metric']}", []).append(r["value"])
    return {m: {k: seed_stats(v) for k, v in values.items()} for m, values in out.items()}


def _selection_lines(selection: Sequence[Mapping[str, Any]], chosen: Mapping[str, float],
                     config: CompareConfig) -> list[str]:
    own, leak = config.own_label, config.leak_label
    epochs = config.selection_epochs
    budget = ("the comparison's budget" if epochs is None
              else f"{epochs} epochs (every stage)")
    if config.selection_sweeps:
        budget += "; dial values trained: " + ", ".join(
            f"{m} {d} ∈ {{{', '.join(f'{v:g}' for v in vs)}}}"
            for m, (d, vs) in config.selection_sweeps.items())
    candidates = ", ".join(f"{v:g}" for v in _lr_grid(config))
    lines = ["", "## Learning rate, chosen on validation data", "",
             f"Per method, the learning rate among {{{candidates}}} with the highest mean, "
             f"over the method's dial values, of the validation linear-probe "
             f"accuracy on {own} of its modality-1 code (specific1; shared1 for "
             f"shared-only methods), a tie going to the lower final loss of the method's own "
             f"objective; seed {config.selection_seed}, {budget}, trained on the "
             f"training rows minus a validation split of {config.selection_fraction:g} of "
             f"them (the test rows are never used to choose). Fixed learning rates (`--set "
             f"METHOD:lr=`) are kept.", "",
             f"| method | lr | validation {own} (mean over dials) | validation {leak} | "
             "chosen |", "|---|---|---|---|---|"]
    groups: dict[tuple[str, float], dict[str, list[float]]] = {}
    for r in selection:
        if r["representation"] != _own_code(r["method"]):
            continue
        g = groups.setdefault((r["method"], float(r["lr"])), {})
        g.setdefault(r["label"], []).append(float(r["accuracy"]))
    for (method, lr), g in groups.items():
        cells = [f"{np.mean(g[lab]):.3f}" if lab in g else "–" for lab in (own, leak)]
        mark = "**yes**" if chosen.get(method) == lr else ""
        lines.append(f"| {method} | {lr:g} | {cells[0]} | {cells[1]} | {mark} |")
    return lines


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f} %"


def _convergence_lines(convergence: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per setting and stage (a two-step method's shared step 1 once), the per-seed relative
    change of the training loss over the last 10 % and the last half of the epochs."""
    groups: dict[tuple, dict[int, Mapping[str, Any]]] = {}
    for c in convergence:
        s: Setting = c["setting"]
        spec = get_method(s.method)
        step1 = spec.two_step and c["stage"] == spec.stage_names[0]
        dial = "every λ" if step1 else _dial_text({"dial": s.dial, "value": s.value})
        # a two-step method's step 1 is one run per seed, shared by its step-2 settings
        groups.setdefault((s.method, dial, c["stage"]), {}).setdefault(c["seed"], c)
    window = f"{100 * CONVERGENCE_WINDOW:g} %"
    lines = ["", "## Did each objective converge?", "",
             f"Change of the training loss (epoch mean) over the last {window} of the epochs "
             f"as a share of its whole range over the run, (L[E−k] − L[E]) / (max L − min L) "
             f"with k = max(1, round({CONVERGENCE_WINDOW:g}·E)) (positive: still falling), "
             f"per seed; *yes* when its magnitude is below {100 * CONVERGENCE_TOLERANCE:g} % "
             "for every seed. *noise*: one epoch mean's noise in the second half of the run "
             "(std of successive differences / √2), same scale; *within noise*: a larger "
             "change that is within 2·√2·noise, as a flat but noisy curve gives (a rise, a "
             "negative change, is noise or instability, not progress left). The learning rate "
             "follows a cosine schedule to 0, which leaves only 0.2 % of the schedule's "
             "learning-rate mass in the last 10 % of the epochs (18 % in the last half), so a "
             "small last-10 % change is partly the schedule's doing; the change over the last "
             "half says whether the loss was still moving in the second half of the budget.",
             "",
             f"| method | dial | stage | epochs | loss, first → last epoch | change, last "
             f"{window} | change, last half | noise | validation loss change, last {window} | "
             "converged |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (method, dial, stage), by_seed in groups.items():
        runs = [by_seed[seed] for seed in sorted(by_seed)]
        first = np.mean([c["first"] for c in runs])
        final = np.mean([c["final"] for c in runs])
        last = ", ".join(_percent(c["last_window"]) for c in runs)
        half = ", ".join(_percent(c["last_half"]) for c in runs)
        noise = ", ".join("n/a" if c["noise"] is None else f"{100 * c['noise']:.2f} %"
                          for c in runs)
        val = (", ".join(_percent(c["val_last_window"]) for c in runs)
               if all(c["val_last_window"] is not None for c in runs) else "–")
        ok = sum(bool(c["converged"]) for c in runs)
        noisy = sum(bool(c["within_noise"]) for c in runs)
        if ok == len(runs):
            verdict = "yes"
        elif ok + noisy == len(runs):
            verdict = f"within noise ({ok} yes, {noisy} within noise)"
        else:
            verdict = f"NO ({ok} yes, {noisy} within noise, of {len(runs)} seeds)"
        lines.append(f"| {method} | {dial} | {stage} | {runs[0]['epochs']} | "
                     f"{first:.4g} → {final:.4g} | {last} | {half} | {noise} | {val} | "
                     f"{verdict} |")
    return lines


def _dmvae_lines(rows: Sequence[Row], config: CompareConfig,
                 untrained: Mapping[str, Mapping[str, tuple[float, float, int]]]) -> list[str]:
    names = ("r2_x1", "r2_x2", "kl_private", "kl_shared")
    cfgs = [c for c in configs(rows, "specific") if c.dials.get("method") == "dmvae"
            and all(f"dmvae.{n}" in c.values for n in names)]
    if not cfgs:
        return []
    lines = ["", "## DMVAE: has it trained?", "",
             "On the test rows, from the posterior means: R² = fraction of the variance of "
             "x1, x2 that the decoder explains from [private mean, product-of-experts shared "
             "mean]; KL per row (nats) of the private posteriors (p1 + p2) and of the joint "
             "shared posterior (0 = the prior: the latent carries nothing).", "",
             "| dial | R² x1 | R² x2 | KL private / row | KL shared / row |",
             "|---|---|---|---|---|"]
    sweep = config.sweeps.get("dmvae", get_method("dmvae").sweep)
    dial = sweep[0] if sweep is not None else ""
    for c in cfgs:
        value = c.dials.get(dial)
        label = "–" if value in (None, "") else f"{dial}={float(value):g}"
        lines.append(f"| {label} | " + " | ".join(
            format_stat(*c.stat(f"dmvae.{n}")) for n in names) + " |")
    ref = untrained.get("dmvae", {})
    if all(f"dmvae.{n}" in ref for n in names):
        lines.append("| untrained | " + " | ".join(
            format_stat(*ref[f"dmvae.{n}"]) for n in names) + " |")
    return lines


def summary_table(rows: Sequence[Row], config: CompareConfig, *,
                  untrained: Sequence[Row] = (), selection: Sequence[Mapping[str, Any]] = (),
                  chosen: Mapping[str, float] | None = None,
                  convergence: Sequence[Mapping[str, Any]] = (),
                  train_seconds: tuple[float, float] | None = None) -> str:
    """Markdown: per method and dial value, the modality-1 code's accuracies (mean ± std over
    seeds; with ``untrained``, the untrained network's as a reference row), then the dominance
    check of the paper's claim and, when given, the learning-rate selection, the convergence
    of every objective, DMVAE's reconstruction and KL, and ``train_seconds`` (the training time
    of the compared runs and of the learning-rate selection, each summed over its trials)."""
    own, leak = config.own_label, config.leak_label
    points = curve_points(rows, config)
    seeds = sorted({int(r["seed"]) for r in rows})
    with_lr = bool(chosen)
    ref = _untrained_stats(untrained, config)
    lines = [
        f"# Method comparison ({len(seeds)} seed(s) {seeds}; one-stage methods "
        f"{config.epochs} epochs, DisentangledSSL {config.shared_epochs} + "
        f"{config.specific_epochs} epochs)", "",
        f"Modality-1 code (specific1; shared1 for shared-only methods): test linear-probe "
        f"accuracy on {own} (higher is better) and on {leak} (leakage, lower is better)."
        + (" *untrained*: the same network as initialised, before any training." if ref
           else ""), "",
        f"| method | dial |{' lr |' if with_lr else ''} code | {own} | {leak} (leakage) | "
        "settings |", "|---|---|---|---|---|---|" + ("---|" if with_lr else "")]
    for method, pts in points.items():
        for p in pts:
            lines.append(f"| {method} | {_dial_text(p)} |"
                         + (f" {_lr_text(p, config)} |" if with_lr else "")
                         + f" {p['representation']} | "
                         f"{format_stat(*p['own'])} | {format_stat(*p['leak'])} | "
                         f"`{p['settings']}` |")
        if method in ref and {"own", "leak"} <= set(ref[method]):
            lines.append(f"| {method} | untrained |" + (" – |" if with_lr else "")
                         + f" {_own_code(method)} | {format_stat(*ref[method]['own'])} | "
                         f"{format_stat(*ref[method]['leak'])} | – |")
    lines += _claim_check(points, own, leak)
    if selection:
        lines += _selection_lines(selection, chosen or {}, config)
    if convergence:
        lines += _convergence_lines(convergence)
    lines += _dmvae_lines(rows, config, ref)
    if train_seconds is not None:
        main_s, select_s = train_seconds
        lines += ["", f"Training time, summed over the trials: {main_s:.0f} s for the "
                  "comparison" + (f", {select_s:.0f} s for the learning-rate selection"
                                  if select_s else "") + "."]
    return "\n".join(lines) + "\n"
