"""The one grid engine: plan a grid's units into tasks, run them (resumably) on the local or the
Optuna engine, and collect the tidy results.

The local engine runs tasks in this process (``workers=1``) or in the worker pool of
:mod:`~disentangled_ssl.experiments.workers` — no server, no scheduler of our own. Finished
trials go to a :class:`~disentangled_ssl.experiments.store.DirectoryStore`; a re-run computes
only the trials whose records are missing. The Optuna engine (cluster) lives in
:mod:`disentangled_ssl.experiments.optuna_engine` and runs the same units. ``dssl sweep``,
``dssl reproduce synthetic`` and ``dssl compare`` are all this engine (their presets:
:mod:`~disentangled_ssl.experiments.synthetic`, :mod:`~disentangled_ssl.experiments.compare`).
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from disentangled_ssl._errors import DSSLError, TrainingDivergedError
from disentangled_ssl._io import write_json_atomic
from disentangled_ssl.experiments.results import Row, tidy_rows
from disentangled_ssl.experiments.spec import (
    STEP2_PARAMS,
    DataSpec,
    SweepSpec,
    SweepUnion,
    Unit,
    stable_hash,
)
from disentangled_ssl.experiments.store import DirectoryStore, EventLog, TrialStore
from disentangled_ssl.experiments.trial import Split, UnitOutcome, run_units
from disentangled_ssl.experiments.workers import (
    loaded,
    process_pool,
    thread_limits,
    worker_threads,
)

ENGINES = ("local", "optuna")
SPEC_NAME = "sweep.json"
EVENTS_NAME = "events.jsonl"

Grid = SweepSpec | SweepUnion
Task = list[Unit]


@dataclass
class SweepResult:
    """What a sweep run left behind.

    Attributes:
        rows: tidy rows of every finished trial of the sweep (see
            :mod:`disentangled_ssl.experiments.results`).
        n_trials: trials in the sweep.
        n_done: trials with a record (before + during this run).
        n_computed: trials computed by this run (this process and its workers).
        failed: unit key -> error message, for units that failed (e.g. diverged).
        seconds: wall time of this run.
        files: report files written (results.csv, summary.md, figures).
        records: the record of every finished trial (its settings, scores and ``history``),
            as the store holds it.
    """

    rows: list[Row]
    n_trials: int
    n_done: int
    n_computed: int
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def complete(self) -> bool:
        return self.n_done == self.n_trials

    def raise_failures(self, folder: str | os.PathLike[str]) -> None:
        """Raise a :class:`DSSLError` naming the first failed unit, if any unit failed."""
        if self.failed:
            first = next(iter(self.failed.values()))
            raise DSSLError(f"{len(self.failed)} unit(s) failed (first: {first}); the others "
                            f"are recorded — see {Path(folder) / 'failed'}")


#: What a run of the engine keeps in its folder between runs (``dssl sweep`` resumes from it).
ENGINE_STATE = ("trials", "models", EVENTS_NAME, SPEC_NAME, "optuna.db")


def output_folder(out_dir: str | os.PathLike[str], overwrite: bool) -> Path:
    """``out_dir`` as a path for a preset that starts afresh (``reproduce``, ``compare``):
    refused when it holds files and ``overwrite`` is off; with ``overwrite`` the engine state
    of an earlier run (:data:`ENGINE_STATE`) is removed, so nothing of it is reused (other
    files are left alone and overwritten as the run writes them)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DSSLError(f"output folder {out} exists and is not empty; pass --overwrite")
        for name in ENGINE_STATE:
            stale = out / name
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    return out


def machine_info(threads_per_worker: int | None = None) -> dict[str, Any]:
    """The machine a run used (for ``sweep.json`` and ``run.json``)."""
    threads = torch.get_num_threads()
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": threads,
            "threads_per_worker": threads_per_worker or threads}


# ---------------------------------------------------------------------- planning
def _cost(unit: Unit) -> float:
    """Estimated work of a unit in step-1 model-epochs (a step-2 model costs ~2.6 step-1
    model-epochs per epoch, measured on the paper's generator)."""
    params = unit.params
    if not unit.two_step:
        return float(params.get("epochs") or params["shared_epochs"])
    return params["shared_epochs"] + 2.6 * params["specific_epochs"] * len(unit.specific)


def _balanced(group: Task, parts: int) -> list[Task]:
    """``group`` cut into ``parts`` chunks of similar cost (greedy, largest first), each in
    grid order."""
    chunks: list[Task] = [[] for _ in range(min(parts, len(group)))]
    loads = [0.0] * len(chunks)
    for unit in sorted(group, key=_cost, reverse=True):
        k = loads.index(min(loads))
        chunks[k].append(unit)
        loads[k] += _cost(unit)
    order = {u.key: i for i, u in enumerate(group)}
    return [sorted(chunk, key=lambda u: order[u.key]) for chunk in chunks if chunk]


def plan_tasks(units: Sequence[Unit], *, batched: bool = False, workers: int = 1
               ) -> list[Task]:
    """The tasks a local run hands out: one per unit, or with ``batched`` one per seed and
    step-1 setting other than β (its β values train as one ensemble); with several workers,
    heaviest first.

    When the batched groups do not divide evenly among ``workers``, each group is cut into
    ``workers`` chunks of similar cost, so that the workers finish together.
    """
    if not batched:
        tasks = [[u] for u in units]
    else:
        groups: dict[tuple[int, str], Task] = {}
        single = []
        for unit in units:
            if not unit.two_step:
                single.append([unit])
                continue
            rest = {k: v for k, v in unit.params.items() if k not in STEP2_PARAMS | {"beta"}}
            groups.setdefault((unit.seed, stable_hash(rest)), []).append(unit)
        tasks = list(groups.values())
        if workers > 1 and len(tasks) % workers:
            tasks = [chunk for group in tasks for chunk in _balanced(group, workers)]
        tasks += single
    if workers > 1:
        tasks.sort(key=lambda task: sum(map(_cost, task)), reverse=True)
    return tasks


# ---------------------------------------------------------------------- local engine
def _record_failure(root: Path, task: Task, exc: BaseException) -> dict[str, str]:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for unit in task:
        write_json_atomic(root / "failed" / f"{unit.key}.json",
                          {"unit": unit.key, "dials": dict(unit.dials), "seed": unit.seed,
                           "error": f"{type(exc).__name__}: {message}"})
    return {unit.key: message for unit in task}


def _clear_failure(root: Path, task: Task) -> None:
    for unit in task:
        (root / "failed" / f"{unit.key}.json").unlink(missing_ok=True)


@dataclass(frozen=True)
class _TaskSettings:
    """How every task of a local run trains (sent to the worker processes)."""

    root: str
    keep_models: bool
    device: str
    batched: bool

    def run(self, task: Task, data: Split, on_trial: Callable[[str], None] | None = None
            ) -> UnitOutcome:
        root = Path(self.root)
        return run_units(task, data, DirectoryStore(root), model_dir=root / "models",
                         keep_models=self.keep_models, events=EventLog(root / EVENTS_NAME),
                         device=self.device, batched=self.batched, on_trial=on_trial)


def _pool_task(settings: _TaskSettings, task: Task, data: DataSpec) -> UnitOutcome:
    return settings.run(task, loaded(data))


def _run_here(tasks: list[Task], settings: _TaskSettings, data: Split, threads: int | None,
              bar: tqdm) -> tuple[int, dict[str, str]]:
    computed, failed = 0, {}
    with thread_limits(threads):
        for task in tasks:
            try:
                computed += len(settings.run(task, data, lambda _k: bar.update()).recorded)
                _clear_failure(Path(settings.root), task)
            except TrainingDivergedError as exc:
                failed.update(_record_failure(Path(settings.root), task, exc))
    return computed, failed


def _run_pool(tasks: list[Task], settings: _TaskSettings, grid: Grid, workers: int,
              threads: int, bar: tqdm) -> tuple[int, dict[str, str]]:
    root, computed, failed = Path(settings.root), 0, {}
    with process_pool(min(workers, len(tasks)), grid.data, threads) as pool:
        futures: dict[Future, Task] = {
            pool.submit(_pool_task, settings, task, grid.data): task for task in tasks}
        remaining = set(futures)
        try:
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task, exc = futures[fut], fut.exception()
                    if exc is None:
                        computed += len(fut.result().recorded)
                        bar.update(len(fut.result().recorded))
                        _clear_failure(root, task)
                    elif isinstance(exc, TrainingDivergedError):
                        failed.update(_record_failure(root, task, exc))
                    elif isinstance(exc, BrokenProcessPool):
                        raise DSSLError(
                            f"a sweep worker process died ({exc}); finished trials are kept "
                            f"in {root / 'trials'}: run the same command again to resume")
                    else:
                        raise exc
        except BaseException:
            for fut in remaining:
                fut.cancel()
            raise
    return computed, failed


def run_local(
    tasks: list[Task],
    grid: Grid,
    root: Path,
    *,
    workers: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    keep_models: bool = True,
    batched: bool = False,
    progress: bool = True,
    desc: str = "sweep",
    data: Split | None = None,
) -> tuple[int, dict[str, str]]:
    """Compute the missing trials of ``tasks`` into ``root/trials``, in this process
    (``workers=1``, or a single task) or in ``workers`` processes.

    Returns (trials computed, failed unit key -> message). Raises :class:`DSSLError` when a
    worker process dies (the finished trials are kept: run again to resume).
    """
    done = DirectoryStore(root).done()
    pending = [t for t in tasks if any(k not in done for u in t for k in u.trial_keys)]
    n_pending = sum(k not in done for t in pending for u in t for k in u.trial_keys)
    settings = _TaskSettings(str(root), keep_models, device, batched)
    bar = tqdm(total=n_pending, desc=desc, unit="trial", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1 or len(pending) <= 1:
            return _run_here(pending, settings, data if data is not None else grid.data.load(),
                             threads, bar)
        return _run_pool(pending, settings, grid, workers, threads or 1, bar)
    finally:
        bar.close()


# ---------------------------------------------------------------------- entry point
def _open_store(engine: str, grid: Grid, root: Path, storage: str | None,
                study_name: str | None) -> tuple[TrialStore, dict[str, Any]]:
    """The engine's trial store, and what ``sweep.json`` records about it."""
    if engine not in ENGINES:
        raise DSSLError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
    if engine == "local":
        return DirectoryStore(root), {}
    from disentangled_ssl.experiments.optuna_engine import OptunaStore, default_storage

    storage = storage or default_storage(root)
    study_name = study_name or f"dssl-{grid.sweep_id()}"
    return OptunaStore(storage, study_name), {"storage": storage, "study": study_name}


def _checked_units(grid: Grid) -> tuple[list[Unit], list[str]]:
    units = grid.units()
    keys = [k for u in units for k in u.trial_keys]
    if len(set(keys)) != len(keys):
        raise DSSLError("the sweep has duplicate trials; check for repeated dial values")
    return units, keys


def _compute(engine: str, units: list[Unit], grid: Grid, root: Path, where: dict[str, Any],
             options: dict[str, Any]) -> tuple[int, dict[str, str]]:
    """Run the missing trials on ``engine``; returns (computed, failed)."""
    if engine == "local":
        tasks = plan_tasks(units, batched=options["batched"], workers=options["workers"])
        return run_local(tasks, grid, root, **{k: v for k, v in options.items()
                                               if k != "heartbeat"})
    from disentangled_ssl.experiments.optuna_engine import run_optuna

    return run_optuna(units, grid, root, storage=where["storage"], study_name=where["study"],
                      workers=options["workers"], threads_per_worker=options["threads"] or 1,
                      device=options["device"], keep_models=options["keep_models"],
                      heartbeat=options.get("heartbeat"))


def run_sweep(
    spec: Grid,
    out: str | os.PathLike[str],
    *,
    engine: str = "local",
    workers: int = 1,
    threads_per_worker: int | None = 1,
    device: str = "cpu",
    keep_models: bool = True,
    batched: bool = False,
    storage: str | None = None,
    study_name: str | None = None,
    heartbeat: tuple[int, int] | None = None,
    progress: bool = True,
    run: bool = True,
    report: bool = True,
    on_progress: Callable[[str], None] | None = None,
    data: Split | None = None,
    run_info: dict[str, Any] | None = None,
    desc: str = "sweep",
) -> SweepResult:
    """Run (or resume) a grid and collect its results.

    Args:
        spec: the grid, seeds and data (a :class:`SweepSpec` or :class:`SweepUnion`).
        out: the sweep folder: ``sweep.json``, ``trials/`` (local store), ``models/`` (saved
            step-1 models), ``events.jsonl``, ``run.json``, then (``report``) ``results.csv``,
            ``summary.md`` and PNGs. Re-running with the same folder skips every finished
            trial (trial keys are hashes of their parameters, so an extended grid reuses the
            overlapping trials).
        engine: "local" (processes on this machine) or "optuna" (workers join an Optuna study
            in an RDB storage; see ``docs/sweeps.md``).
        workers: worker processes on this machine (local: pool size; optuna: processes that
            join the study from here — start more on other machines).
        threads_per_worker: torch (and BLAS) threads in each worker; ``None``: leave them
            alone in one process, ``cpu_count // workers`` in several. Results are identical
            across engines and worker counts only for the same value.
        device: training device ("cpu", "cuda", "cuda:N", "auto").
        keep_models: keep saved step-1 models after their unit completes.
        batched: (local engine) train each seed's β values, and each unit's λ values, as
            one batched ensemble (each model equal to its one-by-one run to float tolerance).
        storage, study_name: Optuna RDB URL (default ``sqlite:///<out>/optuna.db``) and study
            name (default ``dssl-<sweep id>``).
        heartbeat: Optuna (heartbeat interval, grace period) in seconds: a worker silent for
            the grace period is taken as dead and its unit is retried (default (10, 40)).
        progress: progress bar (``desc`` labels it).
        run: compute missing trials (False only collects and reports what is stored).
        report: write the sweep report (results.csv, summary.md, figures; a SweepSpec only).
        on_progress: called with one-line status messages.
        data: the (train, held-out) splits of ``spec.data`` if already loaded (this
            process's tasks use them instead of loading again).
        run_info: more entries for ``run.json`` (e.g. a preset's settings). A run that
            computes no trial and has no failure leaves an existing ``run.json`` (the record
            of the run that trained them) as it is.

    Returns:
        :class:`SweepResult`.
    """
    if workers < 1 or (threads_per_worker is not None and threads_per_worker < 1):
        raise DSSLError("workers and threads_per_worker must be >= 1")
    if batched and engine != "local":
        raise DSSLError("batched grids run on the local engine; drop batched or use "
                        "engine='local'")
    tic, root = time.perf_counter(), Path(out)
    units, keys = _checked_units(spec)
    root.mkdir(parents=True, exist_ok=True)
    threads = worker_threads(workers, threads_per_worker)
    store, where = _open_store(engine, spec, root, storage, study_name)
    write_json_atomic(root / SPEC_NAME, {
        **spec.to_dict(), **where, "sweep_id": spec.sweep_id(), "engine": engine,
        "n_units": len(units), "n_trials": len(keys), "machine": machine_info(threads)})
    n_before = len(set(keys) & store.done())
    if on_progress is not None:
        on_progress(f"{len(keys)} trials in {len(units)} units; {n_before} already done")
    computed, failed = 0, {}
    if run and n_before < len(keys):
        options = {"workers": workers, "threads": threads, "device": device,
                   "keep_models": keep_models, "batched": batched, "progress": progress,
                   "desc": desc, "data": data, "heartbeat": heartbeat}
        computed, failed = _compute(engine, units, spec, root, where, options)
    records = store.records(keys)
    result = SweepResult(rows=tidy_rows(records, spec.dial_names), n_trials=len(keys),
                         n_done=len(records), n_computed=computed, failed=failed,
                         seconds=time.perf_counter() - tic, records=records)
    if report and result.rows and isinstance(spec, SweepSpec):
        from disentangled_ssl.experiments.report import write_report

        result.files = write_report(spec, result.rows, root, result)
    if computed == 0 and not failed and (root / "run.json").is_file():
        return result  # nothing trained: keep the record of the run that trained the trials
    write_json_atomic(root / "run.json", {
        **(run_info or {}), "engine": engine, "workers": workers, "threads_per_worker": threads,
        "n_trials": len(keys), "n_done": len(records), "n_computed": computed,
        "failed": failed, "seconds": round(result.seconds, 1), "machine": machine_info(threads)})
    return result
