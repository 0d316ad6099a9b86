"""The cluster engine: Optuna with an RDB storage; any number of workers join one study.

Optuna (Akiba et al., KDD 2019) is the scheduler: a :class:`optuna.samplers.GridSampler` over
the sweep's step-1 grid (β, the other step-1 dials, seed) hands each unit to one worker; the
RDB (SQLite on one machine; PostgreSQL/MySQL on a cluster) holds the study and also the trial
records (study user attributes ``trial:<key>``), so workers need no shared filesystem.

Resumability: each Optuna trial is one unit; it records every finished sweep trial in the
RDB as soon as it is done and skips those already there, so a retried unit recomputes only
what was lost. Workers send heartbeats; a worker killed mid-unit leaves a trial whose heartbeat
goes stale, another (or a restarted) worker marks it failed after ``grace_period`` seconds and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` enqueues it again. Install with
``pip install 'disentangled-ssl[optuna]'``.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disentangled_ssl._errors import DSSLError, TrainingDivergedError
from disentangled_ssl.experiments.spec import DataSpec, Unit
from disentangled_ssl.experiments.store import EventLog
from disentangled_ssl.experiments.trial import run_unit
from disentangled_ssl.experiments.workers import loaded, process_pool, thread_limits

if TYPE_CHECKING:
    from disentangled_ssl.experiments.engine import Grid

RECORD_PREFIX = "trial:"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 40


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise DSSLError(
            "the optuna engine needs Optuna: pip install 'disentangled-ssl[optuna]' "
            "(or use --engine local)") from exc
    return optuna


def default_storage(root: Path) -> str:
    """``sqlite:///<root>/optuna.db`` (absolute path)."""
    return f"sqlite:///{(Path(root) / 'optuna.db').resolve()}"


def make_storage(url: str, *, heartbeat: bool = True, heartbeat_interval: int = HEARTBEAT_INTERVAL,
                 grace_period: int = GRACE_PERIOD) -> Any:
    """An :class:`optuna.storages.RDBStorage` for ``url`` with heartbeats and automatic retry
    of trials whose worker died. SQLite gets a long lock timeout (several local workers)."""
    optuna = _optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 4-5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat:
                kwargs.update(heartbeat_interval=heartbeat_interval, grace_period=grace_period)
                # Optuna >= 4.9 renamed the retry callback and its storage argument.
                names = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
                new_api = "heartbeat_stale_trial_callback" in names
                retry = (optuna.storages.RetryHeartbeatStaleTrialCallback if new_api
                         else optuna.storages.RetryFailedTrialCallback)
                kwargs["heartbeat_stale_trial_callback" if new_api
                       else "failed_trial_callback"] = retry(max_retry=3)
            return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as exc:  # SQLAlchemy raises many types for bad URLs / unreachable servers
        raise DSSLError(f"cannot open the Optuna storage {url!r}: {exc}") from exc


class OptunaStore:
    """Trial records as user attributes ``trial:<key>`` of an Optuna study (in the RDB)."""

    def __init__(self, storage: str | Any, study_name: str) -> None:
        optuna = _optuna()
        self._storage = make_storage(storage, heartbeat=False) if isinstance(storage, str) \
            else storage
        study = optuna.create_study(storage=self._storage, study_name=study_name,
                                    load_if_exists=True, direction="minimize")
        self._study_id = study._study_id

    def _attrs(self) -> dict[str, Any]:
        return self._storage.get_study_user_attrs(self._study_id)

    def done(self) -> set[str]:
        return {k[len(RECORD_PREFIX):] for k in self._attrs() if k.startswith(RECORD_PREFIX)}

    def put(self, key: str, record: dict[str, Any]) -> None:
        self._storage.set_study_user_attr(self._study_id, RECORD_PREFIX + key, record)

    def records(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        attrs = self._attrs()
        if keys is None:
            return [v for k, v in sorted(attrs.items()) if k.startswith(RECORD_PREFIX)]
        return [attrs[RECORD_PREFIX + k] for k in keys if RECORD_PREFIX + k in attrs]


def _grid_point(unit: Unit, names: list[str]) -> tuple[Any, ...]:
    """The unit's value of each step-1 dial ("" for one its method does not read)."""
    return tuple(unit.dials.get(n, "") for n in names)


def search_space(units: list[Unit]) -> dict[str, list[Any]]:
    """GridSampler search space: every step-1 dial and ``seed``, in grid order. A unit that
    lacks a dial (a one-stage method that does not read it) has the value "" there; grid
    points that are no unit are skipped by the workers."""
    names = list(dict.fromkeys(n for u in units for n in u.dials))
    space: dict[str, list[Any]] = {}
    for unit in units:
        for name, value in [*zip(names, _grid_point(unit, names)), ("seed", unit.seed)]:
            values = space.setdefault(name, [])
            if value not in values:
                values.append(value)
    for name, values in space.items():
        for v in values:
            if not (v is None or isinstance(v, (str, int, float, bool))):
                raise DSSLError(f"dial {name!r} value {v!r} cannot be an Optuna grid value")
    return space


def _objective(study: Any, units: list[Unit], space: dict[str, list[Any]], split: Any,
               store: OptunaStore, root: Path, device: str, keep_models: bool,
               computed: list[int]) -> Any:
    """The Optuna objective: run the unit of the suggested grid point (``computed[0]``
    counts the sweep trials recorded)."""
    running = _optuna().trial.TrialState.RUNNING
    names = [n for n in space if n != "seed"]
    by_values = {(_grid_point(u, names), u.seed): u for u in units}
    events = EventLog(root / "events.jsonl")

    def objective(trial: Any) -> float:
        values = {n: trial.suggest_categorical(n, space[n]) for n in space}
        unit = by_values.get((tuple(values[n] for n in names), values["seed"]))
        if unit is None:  # e.g. β × method=clip: clip reads no β, so there is no such unit
            trial.set_user_attr("skipped", "not a unit of the sweep")
            return 0.0
        trial.set_user_attr("unit", unit.key)
        # GridSampler re-hands a still-running point when the grid is exhausted: leave it to
        # the worker that has it (if that worker died, its heartbeat expires and it is retried).
        for other in study.get_trials(deepcopy=False, states=(running,)):
            if other.number != trial.number and other.params == trial.params:
                trial.set_user_attr("skipped", f"running in trial {other.number}")
                return 0.0
        try:
            outcome = run_unit(unit, split, store, model_dir=root / "models",
                               keep_models=keep_models, events=events, device=device)
        except TrainingDivergedError as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            raise  # the trial is marked failed; optimize() goes on with the next unit
        computed[0] += len(outcome.recorded)
        trial.set_user_attr("recorded", len(outcome.recorded))
        return outcome.seconds

    return objective


def _work(study: Any, objective: Any, store: OptunaStore, keys: set[str],
          poll_seconds: float) -> None:
    """Optimise until every trial in ``keys`` is recorded or only failed units are left."""
    optuna = _optuna()
    running, waiting = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING
    optimize = True
    while True:
        if optimize:
            study.optimize(objective, catch=(TrainingDivergedError,))
        if keys <= store.done():
            return
        with warnings.catch_warnings():  # a dead worker's unit -> FAIL -> re-enqueued
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        states = {t.state for t in study.get_trials(deepcopy=False)}
        optimize = waiting in states
        if optimize:
            continue
        if running in states:
            time.sleep(poll_seconds)  # another worker is on it (or its heartbeat is not stale)
            continue
        return  # what is left failed (e.g. diverged): reported by run_optuna


def optuna_worker(
    units: list[Unit],
    data: DataSpec,
    root: str,
    storage_url: str,
    study_name: str,
    threads: int,
    device: str,
    keep_models: bool,
    poll_seconds: float = 5.0,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
) -> int:
    """One worker: join the study and run units until every trial of the sweep is recorded
    (or only failed units are left), with ``threads`` torch/BLAS threads. Returns the number
    of sweep trials it computed.

    Start as many as you like, on any machines that reach the storage; each runs this loop.
    """
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    storage = make_storage(storage_url, heartbeat_interval=heartbeat_interval,
                           grace_period=grace_period)
    space = search_space(units)
    study = optuna.create_study(
        storage=storage, study_name=study_name, load_if_exists=True, direction="minimize",
        sampler=optuna.samplers.GridSampler(space, seed=0))
    store = OptunaStore(storage, study_name)
    computed = [0]
    objective = _objective(study, units, space, loaded(data), store, Path(root), device,
                           keep_models, computed)
    with thread_limits(threads):
        _work(study, objective, store, {k for u in units for k in u.trial_keys}, poll_seconds)
    return computed[0]


def _failures(study: Any, units: list[Unit], done: set[str]) -> dict[str, str]:
    optuna = _optuna()
    failed: dict[str, str] = {}
    by_key = {u.key: u for u in units}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        key = t.user_attrs.get("unit")
        if key in by_key and any(k not in done for k in by_key[key].trial_keys):
            failed[key] = str(t.user_attrs.get("error", "failed"))
    return failed


def run_optuna(
    units: list[Unit],
    spec: Grid,
    root: Path,
    *,
    storage: str,
    study_name: str,
    workers: int = 1,
    threads_per_worker: int = 1,
    device: str = "cpu",
    keep_models: bool = True,
    heartbeat: tuple[int, int] | None = None,
) -> tuple[int, dict[str, str]]:
    """Start ``workers`` Optuna worker processes on this machine (or run one in this process)
    and wait for them. Returns (trials computed here, failed unit key -> message)."""
    optuna = _optuna()
    interval, grace = heartbeat or (HEARTBEAT_INTERVAL, GRACE_PERIOD)
    args = (units, spec.data, str(root), storage, study_name, threads_per_worker, device,
            keep_models, min(5.0, float(interval)), interval, grace)
    if workers <= 1:
        computed = optuna_worker(*args)
    else:
        with process_pool(workers, spec.data, threads_per_worker) as pool:
            futures = [pool.submit(optuna_worker, *args) for _ in range(workers)]
            try:
                computed = sum(f.result() for f in futures)
            except BrokenProcessPool as exc:
                raise DSSLError(
                    f"an Optuna worker process died ({exc}); finished trials are kept in "
                    f"{storage}: run the same command again to resume") from exc
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage, heartbeat=False))
    done = OptunaStore(study._storage, study_name).done()
    return computed, _failures(study, units, done)
