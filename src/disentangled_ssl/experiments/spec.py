"""What a grid run is: estimator dials × seeds on one dataset, expanded into units and trials.

A **unit** is one step-1 configuration (every estimator parameter that step 1 reads, plus the
seed). It trains the shared encoders once, evaluates them (the *shared trial*), then reuses them
for every value of the step-2 dials (λ, …), each one a *specific trial*. This is the paper's own
protocol (Wang et al., ICLR 2025, Section 5.1: the λ grid runs on fixed step-1 models) and it
saves ``len(lambdas) - 1`` step-1 trainings per unit. A one-stage method (a baseline selected
with the estimator's ``method``) has no step 1 to share: its unit is one ``fit``.

:class:`SweepSpec` is one product grid; :class:`SweepUnion` runs several of them on the same
data as one sweep, merging the units they share (``dssl reproduce synthetic`` is the β grid
plus a λ grid on some β; ``dssl compare`` is one small grid per method setting).

Every trial is keyed by a stable hash of everything that determines its result: the data
fingerprint, the split, the full estimator parameters (defaults included, so a changed library
default gives new keys) and the seed. Two sweeps that share a trial share its key, so a re-run,
an extended grid or another engine never recomputes a finished trial.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.synthetic import PairedData
from disentangled_ssl.methods import DEFAULT_METHOD, get_method, method_names

#: Estimator parameters that only step 2 reads: ``fit_specific`` honours them on a copy made
#: by ``with_params``, so they vary *within* a unit without retraining step 1.
STEP2_PARAMS: frozenset[str] = frozenset({"lam", "specific_epochs", "specific_dim"})

#: Estimator parameters that do not change what is estimated; left out of trial keys.
UNKEYED_PARAMS: frozenset[str] = frozenset(
    {"verbose", "device", "random_state", "checkpoint_dir"})

#: Bump when the evaluation protocol (probes, label-free terms) changes: old trials re-run.
EVAL_VERSION = 1

#: Names of probed representations: the shared codes side by side, or one modality's code.
_REPRESENTATION = re.compile(r"shared|(shared|specific)[1-9][0-9]*")


def is_two_step(params: Mapping[str, Any]) -> bool:
    """Whether these estimator parameters select a two-step method (DisentangledSSL: shared
    encoders first, then specific ones on top), whose step 1 is reused across the step-2
    dials."""
    return get_method(params.get("method", DEFAULT_METHOD)).two_step


def ignored_dials(params: Mapping[str, Any]) -> set[str]:
    """Dials of other methods that the method selected by ``params`` does not read (from the
    method registry's ``dials``; e.g. ``clip`` reads neither ``beta`` nor ``lam``). A sweep
    sets them to their defaults, so their values do not multiply identical trials."""
    every = {d for m in method_names() for d in get_method(m).dials}
    return every - set(get_method(params.get("method", DEFAULT_METHOD)).dials)


def check_representations(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, each checked to be ``shared``, ``sharedK`` or ``specificK``.

    Raises:
        DSSLError: an unknown name.
    """
    names = tuple(names)
    for rep in names:
        if not _REPRESENTATION.fullmatch(rep):
            raise DSSLError(f"unknown representation {rep!r}; use shared, shared1, shared2, "
                            "specific1 or specific2")
    return names


def _canonical(value: Any) -> Any:
    """JSON-ready canonical form (sorted mappings, lists for tuples, finite floats)."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise DSSLError(f"sweep values must be finite numbers, got {value!r}")
    return value


def stable_hash(payload: Mapping[str, Any], length: int = 16) -> str:
    """Hex SHA-256 prefix of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def estimator_defaults() -> dict[str, Any]:
    """``DisentangledSSL().get_params()``: the parameters a sweep may set or sweep."""
    from disentangled_ssl.estimator import DisentangledSSL

    return DisentangledSSL().get_params()


def coerce_param(name: str, value: Any, defaults: Mapping[str, Any] | None = None) -> Any:
    """Cast ``value`` to the type of the estimator's default for ``name`` (so ``lam=1`` and
    ``lam=1.0`` are the same dial value); strings from the command line are parsed."""
    defaults = estimator_defaults() if defaults is None else defaults
    if name not in defaults:
        raise DSSLError(
            f"unknown estimator parameter {name!r}; sweepable parameters are "
            f"{sorted(set(defaults) - UNKEYED_PARAMS)}"
        )
    default = defaults[name]
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if isinstance(default, int):
            as_float = float(value)
            if not as_float.is_integer():
                raise ValueError(value)
            return int(as_float)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError) as exc:
        raise DSSLError(
            f"parameter {name!r} needs a {type(default).__name__} value, got {value!r}"
        ) from exc
    if isinstance(value, str):  # None/str defaults: numbers stay numbers, "none" is None
        if value.lower() == "none":
            return None
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
    return value


@dataclass(frozen=True)
class DataSpec:
    """Where a grid's data comes from and how it is split.

    Attributes:
        path: a paired ``.npz`` read with :func:`~disentangled_ssl.data.io.read_paired`
            (arrays ``x1``, ``x2``, optional 1-D labels); ``None`` (and no ``arrays``) uses
            the paper's synthetic generator :func:`~disentangled_ssl.data.synthetic.make_synthetic`.
        n_samples, data_seed: synthetic size and seed.
        synthetic: extra keyword arguments of ``make_synthetic`` (e.g. smaller dims in tests).
        test_fraction, split_seed: the held-out split. Both steps train on the rest; probes
            are fitted on the training rows and scored on the held-out rows, and the
            label-free terms are computed on the held-out rows.
        arrays: paired data already in memory (identified in trial keys by a SHA-256 of its
            arrays); exclusive with ``path``.
    """

    path: str | None = None
    n_samples: int = 20000
    data_seed: int = 0
    synthetic: Mapping[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.2
    split_seed: int = 0
    arrays: PairedData | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.path is not None:
            if self.arrays is not None:
                raise DSSLError("give the data as a file path or as arrays, not both")
            object.__setattr__(self, "path", str(Path(self.path).resolve()))
            if not Path(self.path).is_file():
                raise DSSLError(f"data file not found: {self.path}")
        if not 0.0 < self.test_fraction < 1.0:
            raise DSSLError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")

    @property
    def is_synthetic(self) -> bool:
        return self.path is None and self.arrays is None

    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data in trial keys (a file or arrays by their SHA-256)."""
        split = {"test_fraction": self.test_fraction, "split_seed": self.split_seed}
        if self.arrays is not None:
            return {"arrays_sha256": _arrays_digest(self.arrays), **split}
        if self.path is None:
            return {"synthetic": self._synthetic_settings(), **split}
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return {"file_sha256": digest.hexdigest(), **split}

    def _synthetic_settings(self) -> dict[str, Any]:
        return {"n_samples": self.n_samples, "seed": self.data_seed, **dict(self.synthetic)}

    def load(self) -> tuple[PairedData, PairedData]:
        """(train, held-out) splits."""
        if self.arrays is not None:
            data = self.arrays
        elif self.path is None:
            from disentangled_ssl.data.synthetic import make_synthetic

            data = make_synthetic(n_samples=self.n_samples, seed=self.data_seed,
                                  **dict(self.synthetic))
        else:
            from disentangled_ssl.data.io import read_paired

            data = read_paired(self.path)
        return data.split(self.test_fraction, seed=self.split_seed)

    def describe(self) -> dict[str, Any]:
        if self.arrays is not None:
            out: dict[str, Any] = {"arrays": {"rows": len(self.arrays),
                                              "sha256": self.fingerprint["arrays_sha256"]}}
        elif self.path:
            out = {"path": self.path}
        else:
            out = {"synthetic": self._synthetic_settings()}
        out.update(test_fraction=self.test_fraction, split_seed=self.split_seed)
        return out


def _arrays_digest(data: PairedData) -> str:
    """SHA-256 of the features and labels (names, shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for name, array in [("x1", data.x1), ("x2", data.x2), *sorted(data.labels.items())]:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class SpecificTrial:
    """One step-2 configuration of a unit: ``key``, the step-2 ``dials`` swept (e.g.
    ``{"lam": 0.1}``) and the full step-2 ``params`` passed to ``with_params``."""

    key: str
    dials: Mapping[str, Any]
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Unit:
    """One step-1 configuration and seed, with the step-2 trials that reuse its shared encoders.

    Attributes:
        key: hash of the step-1 configuration (also the saved step-1 model's folder name).
        seed: the estimator's ``random_state``.
        dials: the swept step-1 dial values (e.g. ``{"beta": 1.0}``).
        params: every estimator parameter of step 1 (``random_state`` included).
        shared_key: key of the shared trial (step-1 evaluation).
        specific: the step-2 trials (empty for a step-1-only sweep).
        two_step: DisentangledSSL's two steps (``fit_shared`` + ``fit_specific``); False for a
            one-stage method, whose single trial is one ``fit`` evaluating every code.
        probes: the representations probed (None: the shared codes side by side and every
            specific code); see :func:`~disentangled_ssl.experiments.trial.evaluate`.
    """

    key: str
    seed: int
    dials: Mapping[str, Any]
    params: Mapping[str, Any]
    shared_key: str
    specific: tuple[SpecificTrial, ...]
    two_step: bool = True
    probes: tuple[str, ...] | None = None

    @property
    def trial_keys(self) -> list[str]:
        return [self.shared_key, *(t.key for t in self.specific)]


class _Grid:
    """What every grid offers on top of its ``units()``: trial keys and the sweep's id."""

    def units(self) -> list[Unit]:
        raise NotImplementedError

    def trial_keys(self) -> list[str]:
        return [k for u in self.units() for k in u.trial_keys]

    def sweep_id(self) -> str:
        """Hash of the whole sweep (its trial keys): the default Optuna study name."""
        return stable_hash({"trials": sorted(self.trial_keys())}, length=12)


def _checked_seeds(seeds: Sequence[Any]) -> tuple[int, ...]:
    if not list(seeds):
        raise DSSLError("seeds is empty; give at least one seed (e.g. seeds=[0])")
    out = tuple(coerce_param("random_state", s, {"random_state": 0}) for s in seeds)
    if any(s < 0 for s in out):
        raise DSSLError(f"seeds must be >= 0, got {list(seeds)}")
    return out


def _checked_grid(betas: Sequence[Any], lambdas: Sequence[Any],
                  dials: Mapping[str, Sequence[Any]], defaults: Mapping[str, Any]
                  ) -> dict[str, tuple[Any, ...]]:
    """Dial name -> typed values: β first, then λ (if any), then the other dials."""
    if not list(betas):
        raise DSSLError("betas is empty; give at least one β value (e.g. betas=[1.0])")
    grid = {"beta": tuple(coerce_param("beta", b, defaults) for b in betas)}
    if list(lambdas):
        grid["lam"] = tuple(coerce_param("lam", v, defaults) for v in lambdas)
    for name, values in dict(dials).items():
        if name in ("beta", "lam"):
            raise DSSLError(f"give {name} values as {name}s=[...], not in dials")
        if name in UNKEYED_PARAMS:
            raise DSSLError(f"{name!r} cannot be swept (it does not change the result)")
        values = tuple(coerce_param(name, v, defaults) for v in values)
        if not values:
            raise DSSLError(f"dial {name!r} has no values")
        grid[name] = values
    for name, values in grid.items():
        if len(set(map(repr, values))) != len(values):
            raise DSSLError(f"{name!r} has repeated values {list(values)}")
    return grid


def _checked_fixed(params: Mapping[str, Any], grid: Mapping[str, Any],
                   defaults: Mapping[str, Any]) -> dict[str, Any]:
    fixed = {}
    for name, value in dict(params).items():
        if name in grid:
            raise DSSLError(f"{name!r} is both swept and fixed; remove it from params")
        fixed[name] = coerce_param(name, value, defaults)
    if "random_state" in fixed:
        raise DSSLError("set seeds=[...] instead of params['random_state']")
    if fixed.get("checkpoint_dir") is not None:
        raise DSSLError("checkpoint_dir cannot be set in a sweep: every trial is recorded "
                        "as it finishes and a re-run resumes the sweep")
    specific_epochs = fixed.get("specific_epochs", defaults.get("specific_epochs", 1))
    if "lam" in grid and len(grid["lam"]) > 1 and specific_epochs == 0 and all(
            is_two_step({**defaults, **fixed, "method": m})
            for m in grid.get("method", (fixed.get("method", DEFAULT_METHOD),))):
        raise DSSLError("lambdas are given but specific_epochs=0 skips step 2; set "
                        "specific_epochs > 0 or drop the lambdas")
    return fixed


@dataclass
class SweepSpec(_Grid):
    """A grid over β, λ, any other estimator dials and seeds, on one dataset.

    Args:
        betas: step-1 dial values (``beta``).
        lambdas: step-2 dial values (``lam``); empty runs step 1 only.
        seeds: estimator seeds (``random_state``); seed bands in the figures are over these.
        dials: further swept estimator parameters, name -> values (e.g. ``{"kappa": [100.0,
            1000.0]}``, ``{"method": ["disentangled_ssl", "joint"]}`` or a method's dials such
            as ``alpha``). Names in :data:`STEP2_PARAMS` vary within a unit; all others make
            separate units.
        params: fixed estimator parameters (e.g. ``shared_epochs=3``).
        data: the dataset and its split.
        probes: representations to probe (``shared``, ``sharedK``, ``specificK``; a method
            without specific codes probes ``sharedK`` for ``specificK``); None probes the
            shared codes side by side and every specific code.

    Example:
        >>> spec = SweepSpec(betas=[0.1, 1.0], lambdas=[0.1, 1.0], seeds=[0, 1],
        ...                  params={"shared_epochs": 3, "specific_epochs": 3})
        >>> len(spec.units()), len(spec.trial_keys())
        (4, 12)
    """

    betas: Sequence[float]
    lambdas: Sequence[float] = ()
    seeds: Sequence[int] = (0,)
    dials: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    data: DataSpec = field(default_factory=DataSpec)
    probes: Sequence[str] | None = None

    def __post_init__(self) -> None:
        defaults = estimator_defaults()
        self._grid = _checked_grid(self.betas, self.lambdas, self.dials, defaults)
        self.seeds = _checked_seeds(self.seeds)
        if len(set(self.seeds)) != len(self.seeds):
            raise DSSLError(f"'seeds' has repeated values {list(self.seeds)}")
        self._fixed = _checked_fixed(self.params, self._grid, defaults)
        if self.probes is not None:
            self.probes = check_representations(self.probes)
        self._defaults = defaults

    # ------------------------------------------------------------------ the grid
    @property
    def dial_names(self) -> list[str]:
        return list(self._grid)

    @property
    def fixed(self) -> dict[str, Any]:
        return dict(self._fixed)

    def _settings(self) -> dict[tuple, dict[str, Any]]:
        """(step-1 dials, seed) -> the unit's step-1 dials, parameters and step-2 dials."""
        base = {**self._defaults, **self._fixed}
        grouped: dict[tuple, dict[str, Any]] = {}
        for combo in itertools.product(*self._grid.values()):
            dials = dict(zip(self._grid, combo))
            params = {**base, **dials, "verbose": False}
            for name in ignored_dials(params):
                dials.pop(name, None)
                params[name] = self._defaults[name]
            two_step = is_two_step(params)
            step1 = {k: v for k, v in dials.items() if not (two_step and k in STEP2_PARAMS)}
            step2 = {k: v for k, v in dials.items() if two_step and k in STEP2_PARAMS}
            for seed in self.seeds:
                group = grouped.setdefault((tuple(step1.items()), seed), {
                    "step1": step1, "params": {**params, "random_state": seed},
                    "two_step": two_step, "step2": []})
                if two_step and params.get("specific_epochs", 0) > 0 and step2:
                    group["step2"].append((step2, params))
        return grouped

    def units(self) -> list[Unit]:
        """Every (step-1 dials × seed) unit with its step-2 trials, in grid order.

        For a two-step method (DisentangledSSL, the default ``method``) the dials in
        :data:`STEP2_PARAMS` become the unit's step-2 trials. For a one-stage method every
        dial is part of the unit, which is one ``fit``.
        """
        fingerprint = self.data.fingerprint
        units = []
        for (_, seed), group in self._settings().items():
            params, two_step = group["params"], group["two_step"]
            step1_params = {k: v for k, v in params.items() if k not in UNKEYED_PARAMS
                            and not (two_step and k in STEP2_PARAMS)}
            payload = {"data": fingerprint, "step1": step1_params, "seed": seed,
                       "eval": EVAL_VERSION}
            if self.probes is not None:  # absent by default: the keys of older sweeps hold
                payload["probes"] = list(self.probes)
            specific = []
            for step2, full in group["step2"]:
                step2_params = {k: full[k] for k in sorted(STEP2_PARAMS) if k in full}
                specific.append(SpecificTrial(
                    key=stable_hash({**payload, "stage": "specific", "step2": step2_params}),
                    dials=step2, params=step2_params))
            units.append(Unit(
                key=stable_hash(payload), seed=seed, dials=group["step1"], params=params,
                shared_key=stable_hash({**payload, "stage": "shared"}),
                specific=tuple(specific), two_step=two_step, probes=self.probes))
        return units

    def to_dict(self) -> dict[str, Any]:
        out = {"grid": {k: list(v) for k, v in self._grid.items()},
               "seeds": list(self.seeds), "params": dict(self._fixed),
               "data": self.data.describe()}
        if self.probes is not None:
            out["probes"] = list(self.probes)
        return out


@dataclass
class SweepUnion(_Grid):
    """Several grids on one dataset run as one sweep.

    Units that two grids share (same key) are trained once, with the union of their step-2
    trials; so the paper's Figure 3 is ``SweepUnion([β grid, λ grid on two β])`` and a method
    comparison is one small grid per method setting.

    Args:
        specs: the grids (same data).

    Raises:
        DSSLError: no grids, or grids on different data.
    """

    specs: Sequence[SweepSpec]

    def __post_init__(self) -> None:
        self.specs = tuple(self.specs)
        if not self.specs:
            raise DSSLError("a sweep union needs at least one grid")
        first = self.specs[0].data.fingerprint
        if any(s.data.fingerprint != first for s in self.specs[1:]):
            raise DSSLError("every grid of a sweep union must use the same data and split")

    @property
    def data(self) -> DataSpec:
        return self.specs[0].data

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(s for spec in self.specs for s in spec.seeds))

    @property
    def dial_names(self) -> list[str]:
        return list(dict.fromkeys(d for spec in self.specs for d in spec.dial_names))

    def units(self) -> list[Unit]:
        """Every grid's units in order, a shared unit once with every grid's step-2 trials."""
        merged: dict[str, Unit] = {}
        for spec in self.specs:
            for unit in spec.units():
                if unit.key not in merged:
                    merged[unit.key] = unit
                    continue
                have = merged[unit.key].specific
                known = {t.key for t in have}
                extra = tuple(t for t in unit.specific if t.key not in known)
                merged[unit.key] = replace(merged[unit.key], specific=have + extra)
        return list(merged.values())

    def to_dict(self) -> dict[str, Any]:
        return {"grids": [spec.to_dict() for spec in self.specs],
                "data": self.data.describe()}
