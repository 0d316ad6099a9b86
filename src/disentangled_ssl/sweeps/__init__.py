"""Sweeps over DisentangledSSL's dials: grids of β, λ, other estimator dials and seeds,
run locally in parallel (default) or on a cluster through Optuna, resumable trial by trial,
with tidy results, Figure 3-style plots and dial selection. See ``docs/sweeps.md``.

Example:
    >>> from disentangled_ssl.sweeps import DataSpec, SweepSpec, run_sweep, select
    >>> from disentangled_ssl.sweeps import leakage_target
    >>> spec = SweepSpec(betas=[0.1, 1, 10], lambdas=[0.1, 1], seeds=[0, 1],
    ...                  params={"shared_epochs": 3, "specific_epochs": 3},
    ...                  data=DataSpec(n_samples=20000))              # doctest: +SKIP
    >>> result = run_sweep(spec, "sweeps/demo", workers=2)            # doctest: +SKIP
    >>> select(result.rows, leakage_target(0.55, "specific1")).chosen  # doctest: +SKIP
"""

from disentangled_ssl.sweeps.engine import SweepResult, run_sweep
from disentangled_ssl.sweeps.results import configs, read_csv
from disentangled_ssl.sweeps.select import (
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
from disentangled_ssl.sweeps.spec import DataSpec, SweepSpec

__all__ = [
    "Constraint",
    "DataSpec",
    "Objective",
    "Selection",
    "SweepResult",
    "SweepSpec",
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
