"""``dssl``: the command line over the Python API.

One module per group of subcommands (:mod:`~disentangled_ssl.cli.fit`, ``reproduce``,
``compare``, ``sweep``, ``benchmark``), each adding its parsers through ``register``; the top
parser, dispatch and error handling are in :mod:`~disentangled_ssl.cli.main`, shared argument
types in :mod:`~disentangled_ssl.cli._args`. Every error on bad input ends with a one-line
``dssl: error: ...`` message and exit code 2.
"""

from disentangled_ssl.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
