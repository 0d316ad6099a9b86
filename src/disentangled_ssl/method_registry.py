"""Temporary shim during the redesign: use :mod:`disentangled_ssl.methods`."""
from disentangled_ssl.methods import *  # noqa: F401,F403
from disentangled_ssl.methods.registry import DEFAULT_METHOD, METHODS, get_method, method_names  # noqa: F401
