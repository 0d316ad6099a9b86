"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

The bytes go to a temporary file in the target's folder, are flushed to disk (``fsync``) and
then renamed over the target with :func:`os.replace` (the folder is fsynced too), which is
atomic on POSIX and Windows when both paths are on one file system (the same folder
guarantees it). A writer killed
midway leaves at most a hidden ``.<name>.*.tmp`` file behind, never a truncated target.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["fsync_dir", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating missing parent folders.

    Args:
        path: the target file (replaced if it exists).
        data: the complete new content.

    Returns:
        The target as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(target.parent)
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], payload: Any, *, indent: int = 1) -> Path:
    """Write ``payload`` as JSON (sorted keys) to ``path`` atomically; values JSON cannot
    encode are written with :func:`str`."""
    return write_text_atomic(path, json.dumps(payload, indent=indent, sort_keys=True,
                                              default=str))
