"""Methods: one module per method (its objective, model and stages), one registry.

DisentangledSSL (:mod:`~disentangled_ssl.methods.dssl`) and the baselines CLIP, SimCLR,
JointOpt, FOCAL, DMVAE and FactorCL are all :class:`MethodSpec` entries of
:data:`METHODS`; the estimator builds every one of them through :func:`get_method`.
"""

from disentangled_ssl.methods.base import (
    MethodSettings,
    MethodSpec,
    ModelShape,
    Objective,
    Stage,
    augment_each,
    pair_average,
    posterior_samples,
    two_views,
)
from disentangled_ssl.methods.registry import DEFAULT_METHOD, METHODS, get_method, method_names

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "MethodSettings",
    "MethodSpec",
    "ModelShape",
    "Objective",
    "Stage",
    "augment_each",
    "get_method",
    "method_names",
    "pair_average",
    "posterior_samples",
    "two_views",
]
