"""Errors raised by disentangled-ssl.

Every error the library raises on bad input is a :class:`DSSLError` (a ``ValueError``), whose
message names the offending input and says how to fix it. The CLI turns these into a one-line
message and exit code 2.
"""

from __future__ import annotations


class DSSLError(ValueError):
    """Bad input or configuration; the message says what is wrong and how to fix it."""


class TrainingDivergedError(RuntimeError):
    """A loss term became NaN or infinite during training."""


class PerformanceWarning(UserWarning):
    """A setting that works but makes training much slower on this hardware."""
