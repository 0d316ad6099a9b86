"""Dial grids trained as one batched ensemble (:mod:`disentangled_ssl.training.ensemble`).

Each member's stage is prepared through :meth:`DisentangledSSL.prepare_stage`, exactly as its
one-by-one ``fit_shared``/``fit_specific`` would prepare it (validation, seeding,
initialisation); the stages are then trained together, and each member equals its one-by-one
run to float tolerance (see the ensemble module for why).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.base import clone

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.estimator.estimator import DisentangledSSL, as_views
from disentangled_ssl.training.ensemble import train_ensemble

__all__ = ["fit_shared_grid", "fit_specific_grid"]


def _check_grid(members: list[DisentangledSSL], dial: str) -> None:
    first = {k: v for k, v in members[0].get_params().items() if k != dial}
    for k, est in enumerate(members[1:], start=1):
        params = {k2: v for k2, v in est.get_params().items() if k2 != dial}
        differ = sorted(p for p in first if repr(first[p]) != repr(params.get(p)))
        if differ:
            raise DSSLError(f"grid member {k} differs from member 0 in {differ}; only "
                            f"{dial} may vary")
    if members[0].checkpoint_dir is not None:
        raise DSSLError("batched grids do not write checkpoints; set checkpoint_dir=None")
    if not members[0]._spec().two_step:
        raise DSSLError(f"batched grids train DisentangledSSL's two steps, not method="
                        f"{members[0].method!r}; fit such members one by one")


def _run_grid(members: list[DisentangledSSL], stage_name: str, views: tuple
              ) -> list[DisentangledSSL]:
    prepared = [est.prepare_stage(stage_name, views) for est in members]
    data, config = prepared[0].data, prepared[0].config
    if not isinstance(data, list):
        raise DSSLError("batched grids train on arrays held in memory; with a data loader, fit "
                        "the members one by one")
    if any(p.validation is not None for p in prepared):
        raise DSSLError("batched grids do not hold out validation rows; set "
                        "validation_fraction=0")
    for k, p in enumerate(prepared[1:], start=1):
        if p.config != config or len(p.data) != len(data) or not all(
                torch.equal(a, b) for a, b in zip(p.data, data)):
            raise DSSLError(
                f"grid member {k} would train on other data or loop settings than member 0 "
                "(seed, batch size, learning rate); fix random_state so all members share it"
            )
    histories = train_ensemble([p.stage for p in prepared], data, config)
    for est, history in zip(members, histories):
        est.history_[stage_name] = history
    return members


def fit_shared_grid(estimator: DisentangledSSL, betas: Sequence[float], X1: object,
                    X2: object = None, *more: object) -> list[DisentangledSSL]:
    """Step 1 for every β of a grid in one batched ensemble.

    Member k equals ``sklearn.clone(estimator).set_params(beta=betas[k]).fit_shared(X1, X2)``
    (to float tolerance).

    Args:
        estimator: the settings of every member (unfitted is fine; it is not modified).
            ``random_state`` None draws one seed shared by all members.
        betas: the grid.
        X1, X2 (, X3, …): the paired training arrays, or one list of them.

    Returns:
        One fitted estimator per β (step 1 only), in the order of ``betas``.

    Raises:
        DSSLError: an empty grid, custom encoders, a β warm-up, checkpoints, or a method
            other than DisentangledSSL.
    """
    if len(betas) == 0:
        raise DSSLError("betas is empty; pass at least one value")
    seed = estimator.random_state
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    members = [clone(estimator).set_params(beta=float(b), random_state=seed) for b in betas]
    _check_grid(members, "beta")
    stage = members[0]._spec().stage_names[0]
    return _run_grid(members, stage, as_views(X1, X2, more, "fit_shared_grid"))


def fit_specific_grid(fitted: DisentangledSSL, lams: Sequence[float], X1: object,
                      X2: object = None, *more: object) -> list[DisentangledSSL]:
    """Step 2 for every λ of a grid, on one fitted step 1, in one batched ensemble.

    Member k equals ``fitted.with_params(lam=lams[k]).fit_specific(X1, X2)`` (to float
    tolerance); the frozen step-1 encoders run once per step for all members.

    Args:
        fitted: an estimator whose step 1 is fitted (it is not modified).
        lams: the grid.
        X1, X2 (, X3, …): the paired training arrays, or one list of them.

    Returns:
        One fitted estimator per λ (steps 1 and 2), in the order of ``lams``.
    """
    if len(lams) == 0:
        raise DSSLError("lams is empty; pass at least one value")
    members = [fitted.with_params(lam=float(lam)) for lam in lams]
    _check_grid(members, "lam")
    stage = members[0]._spec().stage_names[1]
    return _run_grid(members, stage, as_views(X1, X2, more, "fit_specific_grid"))
