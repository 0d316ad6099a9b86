"""Experiments: one resumable grid engine (local processes or an Optuna study), its tidy
results, dial selection, reports and figures, and the presets built on it — ``dssl sweep``,
``dssl reproduce synthetic`` (:mod:`~disentangled_ssl.experiments.synthetic`) and ``dssl
compare`` (:mod:`~disentangled_ssl.experiments.compare`) — plus the real-data benchmarks
(:mod:`~disentangled_ssl.experiments.real`). See ``docs/sweeps.md``.

Example:
    >>> from disentangled_ssl.experiments import DataSpec, SweepSpec, run_sweep, select
    >>> from disentangled_ssl.experiments import leakage_target
    >>> spec = SweepSpec(betas=[0.1, 1, 10], lambdas=[0.1, 1], seeds=[0, 1],
    ...                  params={"shared_epochs": 3, "specific_epochs": 3},
    ...                  data=DataSpec(n_samples=20000))              # doctest: +SKIP
    >>> result = run_sweep(spec, "sweeps/demo", workers=2)            # doctest: +SKIP
    >>> select(result.rows, leakage_target(0.55, "specific1")).chosen  # doctest: +SKIP
"""

from disentangled_ssl.experiments.engine import SweepResult, run_sweep
from disentangled_ssl.experiments.results import configs, read_csv
from disentangled_ssl.experiments.select import (
    Constraint,
    Objective,
    Selection,
    Target,
    agreement,
    keep_target,
    label_free_keep_target,
    leakage_target,
    select,
)
from disentangled_ssl.experiments.spec import DataSpec, SweepSpec, SweepUnion

__all__ = [
    "Constraint",
    "DataSpec",
    "Objective",
    "Selection",
    "SweepResult",
    "SweepSpec",
    "SweepUnion",
    "Target",
    "agreement",
    "configs",
    "keep_target",
    "label_free_keep_target",
    "leakage_target",
    "read_csv",
    "run_sweep",
    "select",
]
