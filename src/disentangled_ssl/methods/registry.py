"""Every method by name, DisentangledSSL included: ``get_method(name)`` gives its
:class:`~disentangled_ssl.methods.base.MethodSpec` (model builder, stages, dials).

Adding a method = one module in ``methods/`` defining a ``SPEC`` (plus its loss in
``losses/``), and one line here.

    >>> from disentangled_ssl.methods import get_method, method_names
    >>> method_names()
    ('clip', 'simclr', 'joint', 'focal', 'dmvae', 'factorcl', 'disentangled_ssl')
    >>> get_method("joint").dials
    ('alpha', 'lam')
    >>> get_method("disentangled_ssl").stage_names
    ('shared', 'specific')
"""

from __future__ import annotations

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.methods import clip, dmvae, dssl, factorcl, focal, joint, simclr
from disentangled_ssl.methods.base import MethodSpec

#: The method ``DisentangledSSL(method=...)`` trains by default: ``"disentangled_ssl"``.
DEFAULT_METHOD = dssl.SPEC.name

#: name -> spec, baselines first (the order of ``dssl compare``'s rows).
METHODS: dict[str, MethodSpec] = {
    module.SPEC.name: module.SPEC
    for module in (clip, simclr, joint, focal, dmvae, factorcl, dssl)
}


def method_names() -> tuple[str, ...]:
    """The registered method names, baselines first."""
    return tuple(METHODS)


def get_method(name: object) -> MethodSpec:
    """The :class:`MethodSpec` called ``name``.

    Raises:
        DSSLError: unknown name; the message lists the valid names.
    """
    spec = METHODS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise DSSLError(
            f"unknown method {name!r}; choose one of: {', '.join(method_names())}"
        )
    return spec
