"""Per-epoch logs of a fit: a CSV file always, TensorBoard event files when tensorboard is
installed (the ``tensorboard`` extra).

``<log_dir>/history.csv`` holds one row per epoch of every stage (``stage``, ``epoch`` and
every recorded term: the loss terms, ``val_<term>``, ``lr``, dial values, ``seconds``). It is
rewritten atomically after every epoch, so it is complete at any moment, and a resumed fit
rewrites it from the checkpointed history.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

from disentangled_ssl._io import write_text_atomic
from disentangled_ssl.training.loop import LoopState

__all__ = ["CSV_NAME", "EpochLogger"]

CSV_NAME = "history.csv"


class EpochLogger:
    """``on_epoch_end`` callback writing ``history.csv`` (and TensorBoard scalars).

    Args:
        log_dir: the folder (created when the first epoch ends, so that a run refused
            before it leaves nothing behind).
        stage: the stage being trained.
        finished: histories of the stages trained before it (kept at the top of the CSV).
        tensorboard: write event files when ``torch.utils.tensorboard`` can be imported
            (tensorboard installed); False never does.
    """

    def __init__(self, log_dir: str | os.PathLike[str], stage: str,
                 finished: Mapping[str, list[dict[str, float]]] | None = None,
                 tensorboard: bool = True) -> None:
        self.folder = Path(log_dir)
        self.stage = stage
        self.finished = {k: list(v) for k, v in (finished or {}).items() if k != stage}
        self._tensorboard = tensorboard
        self._writer = None  # created with the folder at the first epoch's end
        self._logged = 0

    def _open_tensorboard(self) -> None:
        self._tensorboard = False
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: the CSV only
            return
        self._writer = SummaryWriter(log_dir=str(self.folder))

    @property
    def path(self) -> Path:
        return self.folder / CSV_NAME

    def __call__(self, state: LoopState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._tensorboard:
            self._open_tensorboard()
        rows = [{"stage": name, "epoch": k + 1, **record}
                for name, history in {**self.finished, self.stage: state.history}.items()
                for k, record in enumerate(history)]
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.path, buffer.getvalue())
        if self._writer is not None:
            for k in range(self._logged, len(state.history)):
                for key, value in state.history[k].items():
                    if isinstance(value, (int, float)):
                        self._writer.add_scalar(f"{self.stage}/{key}", value, k + 1)
            self._writer.flush()
        self._logged = len(state.history)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
