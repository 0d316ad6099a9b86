"""Running a sweep: the embedded local engine (default) and the entry point for every engine.

The local engine runs units in a :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``
start method, ``torch.set_num_threads(threads_per_worker)`` in each worker, the dataset loaded
once per worker) — no server, no scheduler of our own. ``workers=1`` runs in this process.
Finished trials go to a :class:`~disentangled_ssl.sweeps.store.DirectoryStore`; a re-run
computes only the trials whose records are missing. The Optuna engine (cluster) lives in
:mod:`disentangled_ssl.sweeps.optuna_engine` and shares :func:`run_unit`.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from disentangled_ssl._errors import DSSLError, TrainingDivergedError
from disentangled_ssl.data.synthetic import PairedData
from disentangled_ssl.sweeps.results import Row, tidy_rows
from disentangled_ssl.sweeps.spec import DataSpec, SweepSpec, Unit, write_json_atomic
from disentangled_ssl.sweeps.store import DirectoryStore, EventLog, TrialStore
from disentangled_ssl.sweeps.trial import UnitOutcome, run_unit

ENGINES = ("local", "optuna")
SPEC_NAME = "sweep.json"
EVENTS_NAME = "events.jsonl"


@dataclass
class SweepResult:
    """What a sweep run left behind.

    Attributes:
        rows: tidy rows of every finished trial of the sweep (see
            :mod:`disentangled_ssl.sweeps.results`).
        n_trials: trials in the sweep.
        n_done: trials with a record (before + during this run).
        n_computed: trials computed by this run (this process and its workers).
        failed: unit key -> error message, for units that failed (e.g. diverged).
        seconds: wall time of this run.
        files: report files written (results.csv, summary.md, figures).
    """

    rows: list[Row]
    n_trials: int
    n_done: int
    n_computed: int
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.n_done == self.n_trials


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set ``torch.set_num_threads(n)``."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def init_worker(data: DataSpec, threads: int) -> None:
    """Process-pool initializer: fix the thread count and load the dataset once."""
    torch.set_num_threads(threads)
    _WORKER["data"] = data.load()


def _worker_run_unit(unit: Unit, folder: str, keep_models: bool, device: str) -> UnitOutcome:
    root = Path(folder)
    return run_unit(unit, _WORKER["data"], DirectoryStore(root), model_dir=root / "models",
                    keep_models=keep_models, events=EventLog(root / EVENTS_NAME), device=device)


def _record_failure(root: Path, unit: Unit, exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    write_json_atomic(root / "failed" / f"{unit.key}.json",
                      {"unit": unit.key, "dials": dict(unit.dials), "seed": unit.seed,
                       "error": f"{type(exc).__name__}: {message}"})
    return message


# ---------------------------------------------------------------------- local engine
def run_local(
    units: list[Unit],
    spec: SweepSpec,
    root: Path,
    *,
    workers: int = 1,
    threads_per_worker: int = 1,
    device: str = "cpu",
    keep_models: bool = True,
    progress: bool = True,
    data: tuple[PairedData, PairedData] | None = None,
) -> tuple[int, dict[str, str]]:
    """Compute the missing trials of ``units`` into ``root/trials``.

    Returns (trials computed, failed unit key -> message). Raises :class:`DSSLError` when a
    worker process dies (the finished trials are kept: run again to resume).
    """
    store = DirectoryStore(root)
    done = store.done()
    pending = [u for u in units if any(k not in done for k in u.trial_keys)]
    n_pending = sum(k not in done for u in pending for k in u.trial_keys)
    failed: dict[str, str] = {}
    computed = 0
    bar = tqdm(total=n_pending, desc="sweep", unit="trial", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1 or len(pending) <= 1:
            loaded = data if data is not None else spec.data.load()
            events = EventLog(root / EVENTS_NAME)
            with torch_threads(threads_per_worker):
                for unit in pending:
                    try:
                        out = run_unit(unit, loaded, store, model_dir=root / "models",
                                       keep_models=keep_models, events=events, device=device,
                                       on_trial=lambda _k: bar.update())
                        computed += len(out.recorded)
                        (root / "failed" / f"{unit.key}.json").unlink(missing_ok=True)
                    except TrainingDivergedError as exc:
                        failed[unit.key] = _record_failure(root, unit, exc)
            return computed, failed
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context,
                                 initializer=init_worker,
                                 initargs=(spec.data, threads_per_worker)) as pool:
            futures: dict[Future, Unit] = {
                pool.submit(_worker_run_unit, u, str(root), keep_models, device): u
                for u in pending}
            remaining = set(futures)
            try:
                while remaining:
                    finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        unit = futures[fut]
                        exc = fut.exception()
                        if exc is None:
                            computed += len(fut.result().recorded)
                            bar.update(len(fut.result().recorded))
                            (root / "failed" / f"{unit.key}.json").unlink(missing_ok=True)
                        elif isinstance(exc, TrainingDivergedError):
                            failed[unit.key] = _record_failure(root, unit, exc)
                        elif isinstance(exc, BrokenProcessPool):
                            raise DSSLError(
                                f"a sweep worker process died ({exc}); finished trials are "
                                f"kept in {root / 'trials'}: run the same command again to "
                                "resume")
                        else:
                            raise exc
            except BaseException:
                for fut in remaining:
                    fut.cancel()
                raise
        return computed, failed
    finally:
        bar.close()


# ---------------------------------------------------------------------- entry point
def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__}


def run_sweep(
    spec: SweepSpec,
    out: str | os.PathLike[str],
    *,
    engine: str = "local",
    workers: int = 1,
    threads_per_worker: int = 1,
    device: str = "cpu",
    keep_models: bool = True,
    storage: str | None = None,
    study_name: str | None = None,
    heartbeat: tuple[int, int] | None = None,
    progress: bool = True,
    run: bool = True,
    report: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep and write its report.

    Args:
        spec: the grid, seeds and data.
        out: the sweep folder: ``sweep.json``, ``trials/`` (local store), ``models/`` (saved
            step-1 models), ``events.jsonl``, then ``results.csv``, ``summary.md`` and PNGs.
            Re-running with the same folder skips every finished trial (trial keys are hashes
            of their parameters, so an extended grid reuses the overlapping trials).
        engine: "local" (processes on this machine) or "optuna" (workers join an Optuna study
            in an RDB storage; see ``docs/sweeps.md``).
        workers: worker processes on this machine (local: pool size; optuna: processes that
            join the study from here — start more on other machines).
        threads_per_worker: ``torch.set_num_threads`` in each worker; results are identical
            across engines and worker counts only for the same value.
        device: training device ("cpu", "cuda", "cuda:N", "auto").
        keep_models: keep saved step-1 models after their unit completes.
        storage, study_name: Optuna RDB URL (default ``sqlite:///<out>/optuna.db``) and study
            name (default ``dssl-<sweep id>``).
        heartbeat: Optuna (heartbeat interval, grace period) in seconds: a worker silent for
            the grace period is taken as dead and its unit is retried (default (10, 40)).
        progress: progress bar.
        run: compute missing trials (False only collects and reports what is stored).
        report: write results.csv, summary.md and figures.
        on_progress: called with one-line status messages.

    Returns:
        :class:`SweepResult`.
    """
    if engine not in ENGINES:
        raise DSSLError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
    if workers < 1 or threads_per_worker < 1:
        raise DSSLError("workers and threads_per_worker must be >= 1")
    say = on_progress or (lambda _m: None)
    tic = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    units = spec.units()
    keys = [k for u in units for k in u.trial_keys]
    if len(set(keys)) != len(keys):
        raise DSSLError("the sweep has duplicate trials; check for repeated dial values")
    meta = {**spec.to_dict(), "sweep_id": spec.sweep_id(), "engine": engine,
            "n_units": len(units), "n_trials": len(keys), "machine": _machine()}
    store: TrialStore
    if engine == "local":
        store = DirectoryStore(root)
    else:
        from disentangled_ssl.sweeps.optuna_engine import OptunaStore, default_storage

        storage = storage or default_storage(root)
        study_name = study_name or f"dssl-{spec.sweep_id()}"
        meta.update(storage=storage, study=study_name)
        store = OptunaStore(storage, study_name)
    write_json_atomic(root / SPEC_NAME, meta)
    n_before = len(set(keys) & store.done())
    say(f"{len(keys)} trials in {len(units)} units; {n_before} already done")
    computed, failed = 0, {}
    if run and n_before < len(keys):
        if engine == "local":
            computed, failed = run_local(units, spec, root, workers=workers,
                                         threads_per_worker=threads_per_worker, device=device,
                                         keep_models=keep_models, progress=progress)
        else:
            from disentangled_ssl.sweeps.optuna_engine import run_optuna

            computed, failed = run_optuna(units, spec, root, storage=storage,
                                          study_name=study_name, workers=workers,
                                          threads_per_worker=threads_per_worker, device=device,
                                          keep_models=keep_models, heartbeat=heartbeat)
    records = store.records(keys)
    rows = tidy_rows(records, spec.dial_names)
    result = SweepResult(rows=rows, n_trials=len(keys), n_done=len(records),
                         n_computed=computed, failed=failed,
                         seconds=time.perf_counter() - tic)
    if report and rows:
        from disentangled_ssl.sweeps.report import write_report

        result.files = write_report(spec, rows, root, result)
    (root / "run.json").write_text(json.dumps(
        {"engine": engine, "workers": workers, "threads_per_worker": threads_per_worker,
         "n_trials": len(keys), "n_done": len(records), "n_computed": computed,
         "failed": failed, "seconds": round(result.seconds, 1)}, indent=1))
    return result
