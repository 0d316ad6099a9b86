"""Data-parallel fitting of an estimator over the processes torchrun starts.

The stages are prepared through :meth:`DisentangledSSL.prepare_stage` with ``gather=True``
(losses built in their global-batch form) and wrapped by
:func:`disentangled_ssl.training.distributed.distributed_stage`.
"""

from __future__ import annotations

import dataclasses

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.estimator.counterfactual import check_decoder_kinds, fit_decoders
from disentangled_ssl.estimator.estimator import DisentangledSSL, as_views
from disentangled_ssl.training.distributed import (
    DistributedContext,
    distributed_stage,
    init_distributed,
)
from disentangled_ssl.training.loop import train_stage

__all__ = ["fit_distributed"]


def fit_distributed(estimator: DisentangledSSL, X1: object, X2: object = None, *more: object,
                    context: DistributedContext | None = None, bf16: bool | None = None
                    ) -> DisentangledSSL:
    """``estimator.fit([X1, X2])`` data-parallel over the processes of ``context``.

    Every process calls it with the same arrays and settings; ``estimator.batch_size`` is the
    global batch (split evenly over the processes). The estimator's ``device`` is set to the
    process's device. Afterwards every process holds the same fitted model. With
    ``decoder_epochs > 0`` every process then trains the decoders on all rows by itself (not
    data-parallel).

    Args:
        estimator: a DisentangledSSL estimator (a method whose losses can gather).
        X1, X2 (, X3, …): the paired training arrays (identical on every process), or one
            list of them.
        context: from :func:`~disentangled_ssl.training.distributed.init_distributed`
            (default: call it).
        bf16: None keeps the estimator's ``bf16``; True/False sets it (``set_params``).

    Returns:
        ``estimator``, fitted.

    Raises:
        DSSLError: no ``random_state``, a batch that does not split over the processes,
            ``checkpoint_dir`` set (data-parallel runs write no checkpoints), or a method
            that cannot gather.
    """
    ctx = context if context is not None else init_distributed()
    if estimator.random_state is None:
        raise DSSLError("fit_distributed needs random_state set: every process must use the "
                        "same seed to walk through the same global batches")
    if estimator.batch_size % ctx.world_size:
        raise DSSLError(f"batch_size={estimator.batch_size} (the global batch) is not divisible "
                        f"by the {ctx.world_size} processes")
    if estimator.checkpoint_dir is not None:
        raise DSSLError("fit_distributed writes no checkpoints; set checkpoint_dir=None")
    if bf16 is not None:
        estimator.set_params(bf16=bool(bf16))
    estimator.set_params(device=str(ctx.device))
    views = as_views(X1, X2, more, "fit_distributed")
    for name, epochs in estimator._planned_stages():
        stage, data, config, _ = estimator.prepare_stage(name, views,
                                                         gather=ctx.world_size > 1)
        if not isinstance(data, list):
            raise DSSLError("fit_distributed trains on arrays held by every process; data "
                            "loaders are not supported there yet: pass the arrays")
        if estimator.decoder_epochs > 0:  # refuse undecodable kinds before any training
            check_decoder_kinds(estimator, "decoder_epochs > 0")
        if epochs == 0:
            continue
        config = dataclasses.replace(config, progress=config.progress and ctx.is_main)
        estimator.history_[name] = train_stage(distributed_stage(stage, ctx), data, config)
    if estimator.decoder_epochs > 0:  # cheap next to the encoders: every process, all rows
        fit_decoders(estimator, views)
    return estimator
