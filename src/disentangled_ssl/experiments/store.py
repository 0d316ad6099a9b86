"""Where finished trials live: one small JSON record per trial, keyed by the trial's hash.

:class:`DirectoryStore` (the local default) writes ``<folder>/trials/<key>.json`` through a
temporary file and ``os.replace``, so a record is either complete or absent: a killed worker
loses only the trial it was computing. The Optuna engine keeps the same records in the study's
RDB storage (:class:`disentangled_ssl.experiments.optuna_engine.OptunaStore`).

A record is a dict::

    {"key", "unit", "stage": "shared"|"specific", "dials": {"beta": .., "lam": ..},
     "seed", "rows": [{"representation", "label", "metric", "value"}, ...],
     "train_seconds", "eval_seconds", "worker", "finished", "library_version"}
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Protocol

from disentangled_ssl._io import write_json_atomic


class TrialStore(Protocol):
    """The two operations the engines need: which keys are done, and recording one."""

    def done(self) -> set[str]:
        """Keys of every finished trial."""
        ...

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Record a finished trial (atomically; an existing record is replaced)."""
        ...

    def records(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """The records of ``keys`` that exist (all records if ``None``)."""
        ...


class DirectoryStore:
    """Trial records as JSON files in ``<folder>/trials``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder) / "trials"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def done(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {p.stem for p in self.folder.glob("*.json")}

    def put(self, key: str, record: dict[str, Any]) -> None:
        write_json_atomic(self.path(key), record)

    def records(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        wanted = sorted(self.done()) if keys is None else [k for k in keys
                                                           if self.path(k).is_file()]
        out = []
        for key in wanted:
            try:
                out.append(json.loads(self.path(key).read_text()))
            except json.JSONDecodeError:  # cannot happen with atomic writes; skip if edited
                continue
        return out


class EventLog:
    """Append-only JSON-lines audit log of what a sweep computed (``events.jsonl``).

    One line per training started (``fit``, ``fit_shared``, ``fit_specific``), per step-1
    model reused (``load_shared``) or found unusable and retrained (``discard_shared``, with
    the folder and the reason) and per trial recorded (``trial_done``), with the worker and
    time.
    Tests count trainings from it; users see what a resumed sweep skipped.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None

    def __call__(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        line = json.dumps({"event": event, "time": round(time.time(), 3),
                           "worker": worker_name(), **fields}, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write() of one short line in append mode: lines from parallel workers never mix.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def worker_name() -> str:
    """``host:pid`` of the current process."""
    return f"{socket.gethostname()}:{os.getpid()}"
