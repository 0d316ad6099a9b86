"""Sweeps: trial keys, resumable local engine (serial and parallel), the Optuna engine,
report files, selection and the ``dssl sweep`` / ``dssl select`` commands."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from disentangled_ssl import DSSLError, TrainingDivergedError, make_synthetic
from disentangled_ssl.cli import main
from disentangled_ssl.data.io import save_paired
from disentangled_ssl.estimator import DisentangledSSL
from disentangled_ssl.experiments import (
    Constraint,
    DataSpec,
    Objective,
    SweepSpec,
    SweepUnion,
    Target,
    agreement,
    configs,
    keep_target,
    leakage_target,
    read_csv,
    run_sweep,
    select,
)
from disentangled_ssl.experiments.results import dial_columns
from disentangled_ssl.experiments.store import DirectoryStore, EventLog
from disentangled_ssl.experiments.trial import run_unit

TINY = {"shared_epochs": 1, "specific_epochs": 1, "batch_size": 64, "hidden_dim": 32,
        "shared_dim": 8, "specific_dim": 8}
BETAS, LAMBDAS, SEEDS = [0.1, 10.0], [0.1, 10.0], [0, 1]
N_UNITS, N_TRIALS = 4, 12  # 2 β × 2 seeds units; each: 1 shared + 2 specific trials
CONTENT = ("key", "stage", "beta", "lam", "seed", "representation", "label", "metric",
           "value")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep-data") / "tiny.npz"
    data = make_synthetic(n_samples=600, shared_dim=8, private_dim1=8, private_dim2=8,
                          x_dim1=16, x_dim2=16, seed=0)
    save_paired(path, data)
    return path


def tiny_spec(data_file: Path, **overrides) -> SweepSpec:
    kwargs = {"betas": BETAS, "lambdas": LAMBDAS, "seeds": SEEDS, "params": TINY,
              "data": DataSpec(path=str(data_file))}
    kwargs.update(overrides)
    return SweepSpec(**kwargs)


def content(rows: list[dict]) -> list[tuple]:
    """Everything but timings and worker names."""
    return sorted(tuple(r[c] for c in CONTENT) for r in rows)


def trial_mtimes(folder: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_mtime_ns for p in (folder / "trials").glob("*.json")}


# ---------------------------------------------------------------------- spec and keys
def test_keys_are_stable_and_step1_is_shared_across_lambda(data_file):
    spec = tiny_spec(data_file)
    units = spec.units()
    assert len(units) == N_UNITS and len(spec.trial_keys()) == N_TRIALS
    assert [(u.dials["beta"], u.seed) for u in units] == [(0.1, 0), (0.1, 1), (10.0, 0),
                                                          (10.0, 1)]
    assert all([t.dials["lam"] for t in u.specific] == LAMBDAS for u in units)
    # Integer-typed dial values hash like floats; the hash ignores device/verbosity.
    same = tiny_spec(data_file, betas=[0.1, 10], lambdas=[0.1, 10])
    assert same.trial_keys() == spec.trial_keys()
    # A step-2 setting changes only the specific keys; a step-1 setting changes all keys.
    more_step2 = tiny_spec(data_file, params={**TINY, "specific_epochs": 2})
    assert [u.shared_key for u in more_step2.units()] == [u.shared_key for u in units]
    assert not set(more_step2.trial_keys()) & {t.key for u in units for t in u.specific}
    more_step1 = tiny_spec(data_file, params={**TINY, "shared_epochs": 2})
    assert not set(more_step1.trial_keys()) & set(spec.trial_keys())
    # An extended grid reuses every trial of the smaller one.
    bigger = tiny_spec(data_file, betas=[0.1, 1.0, 10.0])
    assert set(spec.trial_keys()) < set(bigger.trial_keys())


def test_a_union_of_grids_trains_each_shared_unit_once(data_file):
    step1 = tiny_spec(data_file, betas=[0.0, 0.1, 10.0], lambdas=[])
    step2 = tiny_spec(data_file, betas=[0.1])
    union = SweepUnion([step1, step2])
    units = union.units()
    assert [(u.dials["beta"], u.seed) for u in units] == [
        (b, s) for b in (0.0, 0.1, 10.0) for s in SEEDS]  # step 1 of β = 0.1 not repeated
    assert [len(u.specific) for u in units] == [0, 0, 2, 2, 0, 0]
    # Same keys as the grids on their own: the union shares trials with them.
    assert set(union.trial_keys()) == set(step1.trial_keys()) | set(step2.trial_keys())
    assert union.dial_names == ["beta", "lam"]
    with pytest.raises(DSSLError, match="same data"):
        SweepUnion([step1, tiny_spec(data_file, data=DataSpec(n_samples=500))])


def test_spec_errors_name_the_input(data_file):
    with pytest.raises(DSSLError, match="unknown estimator parameter 'kapa'"):
        tiny_spec(data_file, dials={"kapa": [1.0]})
    with pytest.raises(DSSLError, match="'beta' has repeated values"):
        tiny_spec(data_file, betas=[1.0, 1])
    with pytest.raises(DSSLError, match="'shared_epochs' needs a int value"):
        tiny_spec(data_file, params={**TINY, "shared_epochs": "1.5"})
    with pytest.raises(DSSLError, match="specific_epochs=0 skips step 2"):
        tiny_spec(data_file, params={**TINY, "specific_epochs": 0})
    with pytest.raises(DSSLError, match="data file not found"):
        DataSpec(path=str(data_file) + ".missing")


def test_one_stage_method_dials_make_separate_units(data_file):
    spec = tiny_spec(data_file, betas=[0.1, 1.0], seeds=[0],
                     dials={"method": ["disentangled_ssl", "joint", "clip"]})
    units = spec.units()
    by_method: dict[str, list] = {}
    for u in units:
        by_method.setdefault(u.params["method"], []).append(u)
    dssl, joint, clip = (by_method[m] for m in ("disentangled_ssl", "joint", "clip"))
    assert [u.dials["beta"] for u in dssl] == [0.1, 1.0] and all(u.two_step for u in dssl)
    assert all([t.dials for t in u.specific] == [{"lam": v} for v in LAMBDAS] for u in dssl)
    # joint reads lam (not beta): one unit per λ, β collapsed; clip reads neither: one unit.
    assert [u.dials for u in joint] == [{"lam": v, "method": "joint"} for v in LAMBDAS]
    assert [u.dials for u in clip] == [{"method": "clip"}]
    assert all(not u.two_step and not u.specific for u in joint + clip)
    assert len(set(spec.trial_keys())) == 2 * 3 + 2 + 1


# ---------------------------------------------------------------------- serial resume
@pytest.fixture(scope="module")
def serial_sweep(data_file, tmp_path_factory):
    """The tiny sweep run in-process, interrupted at the 3rd step-2 training, then resumed
    with every training counted."""
    folder = tmp_path_factory.mktemp("serial")
    spec = tiny_spec(data_file)
    calls = {"fit_shared": 0, "fit_specific": 0}
    fit_shared, fit_specific = DisentangledSSL.fit_shared, DisentangledSSL.fit_specific
    interrupt_at = [3]

    def counting_shared(self, *a, **k):
        calls["fit_shared"] += 1
        return fit_shared(self, *a, **k)

    def counting_specific(self, *a, **k):
        if calls["fit_specific"] + 1 == interrupt_at[0]:
            raise KeyboardInterrupt  # the user stops the sweep during this training
        calls["fit_specific"] += 1
        return fit_specific(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DisentangledSSL, "fit_shared", counting_shared)
        mp.setattr(DisentangledSSL, "fit_specific", counting_specific)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec, folder, workers=1, progress=False)
        first = dict(calls)
        before = trial_mtimes(folder)
        interrupt_at[0] = -1
        calls.update(fit_shared=0, fit_specific=0)
        result = run_sweep(spec, folder, workers=1, progress=False)
    return {"folder": folder, "spec": spec, "first": first, "second": dict(calls),
            "before": before, "result": result}


def test_serial_resume_recomputes_nothing_finished(serial_sweep):
    s = serial_sweep
    units = s["spec"].units()
    # Run 1: unit 1 complete (1 step-1 + 2 step-2 trainings), unit 2's step 1 trained and
    # recorded, then interrupted during its first step-2 training.
    assert s["first"] == {"fit_shared": 2, "fit_specific": 2}
    assert set(s["before"]) == {*units[0].trial_keys, units[1].shared_key}
    # Run 2: unit 2's saved step-1 model is reused (no retraining), units 3-4 train fully.
    assert s["second"] == {"fit_shared": 2, "fit_specific": 2 + 2 * 2}
    after = trial_mtimes(s["folder"])
    assert len(after) == N_TRIALS
    assert all(after[k] == t for k, t in s["before"].items())  # finished trials untouched
    events = EventLog(s["folder"] / "events.jsonl").read()
    assert [e["unit"] for e in events if e["event"] == "load_shared"] == [units[1].key]
    trained = Counter(e["trial"] for e in events if e["event"] in ("fit_shared",
                                                                    "fit_specific"))
    # Every trial trained once, except the one interrupted mid-training, trained again.
    interrupted = units[1].specific[0].key
    assert trained.pop(interrupted) == 2
    assert set(trained.values()) == {1} and len(trained) == N_TRIALS - 1
    res = s["result"]
    assert (res.n_trials, res.n_done, res.n_computed, res.failed) == (12, 12, 8, {})


def test_report_csv_and_figures(serial_sweep):
    folder = serial_sweep["folder"]
    for name in ("results.csv", "summary.md", "figure3a.png", "figure3b.png",
                 "labelfree.png"):
        assert (folder / name).stat().st_size > 0, name
    with open(folder / "figure3a.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(folder / "results.csv")
    assert dial_columns(rows) == ["beta", "lam"]
    acc = [r for r in rows if r["metric"] == "accuracy"]
    # shared: 3 labels × 4 units; specific: 2 codes × 3 labels × 8 trials
    assert len(acc) == 3 * 4 + 2 * 3 * 8
    assert all(0.0 <= r["value"] <= 1.0 for r in acc)
    assert {r["lam"] for r in rows if r["stage"] == "shared"} == {""}
    assert {r["lam"] for r in rows if r["stage"] == "specific"} == set(LAMBDAS)
    free = {r["metric"] for r in rows if r["metric"].startswith("heldout_")}
    assert free == {"heldout_infonce", "heldout_alignment", "heldout_mi_bound",
                    "heldout_orthogonality"}
    mi = [r for r in rows if r["metric"] == "heldout_mi_bound"]
    nce = {r["key"]: r["value"] for r in rows if r["metric"] == "heldout_infonce"
           and r["stage"] == "shared"}
    assert all(np.isclose(r["value"], np.log(64) - nce[r["key"]]) for r in mi)
    summary = (folder / "summary.md").read_text()
    assert "| beta | shared.yc |" in summary and "| beta | lam | specific1.yc" in summary


def test_report_only_rewrites_without_training(serial_sweep, monkeypatch):
    monkeypatch.setattr(DisentangledSSL, "fit_shared", lambda *a, **k: pytest.fail("trained"))
    res = run_sweep(serial_sweep["spec"], serial_sweep["folder"], run=False, progress=False)
    assert res.complete and res.n_computed == 0
    assert content(res.rows) == content(serial_sweep["result"].rows)


def test_a_diverged_unit_is_reported_and_the_rest_recorded(data_file, tmp_path, monkeypatch):
    spec = tiny_spec(data_file, lambdas=[0.1], seeds=[0])
    fit_shared = DisentangledSSL.fit_shared

    def diverge_at_large_beta(self, *a, **k):
        if self.beta > 1:
            raise TrainingDivergedError("stage 'shared' diverged: loss term 'loss' became nan")
        return fit_shared(self, *a, **k)

    monkeypatch.setattr(DisentangledSSL, "fit_shared", diverge_at_large_beta)
    res = run_sweep(spec, tmp_path, progress=False)
    bad = spec.units()[1]
    assert list(res.failed) == [bad.key] and "diverged" in res.failed[bad.key]
    assert (res.n_trials, res.n_done) == (4, 2)
    failure = json.loads((tmp_path / "failed" / f"{bad.key}.json").read_text())
    assert failure["dials"] == {"beta": 10.0} and failure["error"].startswith(
        "TrainingDivergedError")
    monkeypatch.setattr(DisentangledSSL, "fit_shared", fit_shared)
    res = run_sweep(spec, tmp_path, progress=False)  # a re-run retries the failed unit only
    assert res.complete and res.n_computed == 2
    assert not list((tmp_path / "failed").glob("*.json"))


# ---------------------------------------------------------------------- stale step-1 models
def test_a_saved_model_of_another_seed_is_reported_then_retrained(data_file, tmp_path):
    spec = tiny_spec(data_file, betas=[0.1], lambdas=[0.1], seeds=[0])
    (unit,) = spec.units()
    train, test = spec.data.load()
    folder = tmp_path / "models" / unit.key
    other = DisentangledSSL(**{**unit.params, "random_state": 1, "device": "cpu"})
    other.fit_shared(train.x1, train.x2).save(folder)
    events = EventLog(tmp_path / "events.jsonl")
    reason = "it was trained with seed 1, this unit has seed 0"
    with pytest.warns(UserWarning, match=f"the saved step-1 model {folder} cannot be reused "
                      rf"\({reason}\); deleting it and training step 1 again"):
        outcome = run_unit(unit, (train, test), DirectoryStore(tmp_path),
                           model_dir=tmp_path / "models", events=events, device="cpu")
    assert outcome.trained_shared and sorted(outcome.recorded) == sorted(unit.trial_keys)
    log = events.read()
    assert [e["event"] for e in log][:2] == ["discard_shared", "fit_shared"]
    assert (log[0]["unit"], log[0]["folder"], log[0]["reason"]) == (unit.key, str(folder),
                                                                    reason)
    assert DisentangledSSL.load(folder).seed_ == 0  # replaced by this unit's own step 1


def test_cli_sweep_says_when_a_saved_model_does_not_load(data_file, tmp_path, capsys):
    folder = tmp_path / "sweep"
    argv = _cli_sweep_args(data_file, folder, "--workers", "1")
    argv[argv.index("--betas") + 1], argv[argv.index("--seeds") + 1] = "0.1", "0"
    assert main(argv) == 0
    (unit,) = tiny_spec(data_file, betas=[0.1], seeds=[0]).units()
    (folder / "trials" / f"{unit.specific[0].key}.json").unlink()  # a λ trial left to do
    model = folder / "models" / unit.key
    (model / "config.json").write_text("{ not json")  # e.g. a hand-edited or foreign folder
    n_events = len(EventLog(folder / "events.jsonl").read())
    capsys.readouterr()
    assert main(argv) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"dssl: warning: the saved step-1 model {model} cannot be reused (it does not load: ")
    assert warnings[0].endswith("); deleting it and training step 1 again")
    resumed = EventLog(folder / "events.jsonl").read()[n_events:]
    assert [e["event"] for e in resumed][:2] == ["discard_shared", "fit_shared"]
    assert resumed[0]["folder"] == str(model) and resumed[0]["reason"].startswith(
        "it does not load: ")


# ---------------------------------------------------------------------- parallel kill
def _cli_sweep_args(data_file: Path, folder: Path, *extra: str) -> list[str]:
    return ["sweep", "--out", str(folder), "--data", str(data_file),
            "--betas", ",".join(map(str, BETAS)), "--lambdas", ",".join(map(str, LAMBDAS)),
            "--seeds", ",".join(map(str, SEEDS)), "--shared-epochs", "1",
            "--specific-epochs", "1", "--batch-size", "64", "--set", "hidden_dim=32",
            "--set", "shared_dim=8", "--set", "specific_dim=8", "--device", "cpu",
            "--quiet", *extra]


def test_parallel_killed_midway_resumes_without_recomputing(data_file, tmp_path,
                                                            serial_sweep):
    folder = tmp_path / "parallel"
    argv = _cli_sweep_args(data_file, folder, "--workers", "2")
    code = f"import sys; from disentangled_ssl.cli import main; sys.exit(main({argv!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(trial_mtimes(folder)) < 3 and proc.poll() is None:
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and both workers die at once
    proc.wait()
    time.sleep(0.5)
    before = trial_mtimes(folder)
    assert 3 <= len(before) < N_TRIALS, "kill came too late to test resumption"
    n_events = len(EventLog(folder / "events.jsonl").read())
    units = serial_sweep["spec"].units()
    missing_specific = sum(t.key not in before for u in units for t in u.specific)
    missing_models = sum(
        any(k not in before for k in u.trial_keys) and not (folder / "models" / u.key).is_dir()
        for u in units)

    assert main(_cli_sweep_args(data_file, folder, "--workers", "2")) == 0
    after = trial_mtimes(folder)
    assert len(after) == N_TRIALS
    assert all(after[k] == t for k, t in before.items())  # finished trials never rewritten
    resumed = EventLog(folder / "events.jsonl").read()[n_events:]
    trained = [e for e in resumed if e["event"] in ("fit_shared", "fit_specific")]
    assert not [e for e in trained if e["trial"] in before]
    assert sum(e["event"] == "fit_specific" for e in trained) == missing_specific
    assert sum(e["event"] == "fit_shared" for e in trained) == missing_models
    # Same trials, same numbers as the interrupted-and-resumed serial run.
    assert content(read_csv(folder / "results.csv")) == content(serial_sweep["result"].rows)


# ---------------------------------------------------------------------- optuna engine
@pytest.mark.optuna
def test_optuna_two_workers_match_local_engine(data_file, tmp_path, serial_sweep):
    optuna = pytest.importorskip("optuna")
    folder = tmp_path / "optuna"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    res = run_sweep(serial_sweep["spec"], folder, engine="optuna", workers=2, storage=storage,
                    study_name="tiny", progress=False)
    assert res.complete and res.n_computed == N_TRIALS and not res.failed
    assert content(res.rows) == content(serial_sweep["result"].rows)
    study = optuna.load_study(study_name="tiny", storage=storage)
    done = [t for t in study.trials if t.user_attrs.get("recorded")]
    assert sorted((t.params["beta"], t.params["seed"]) for t in done) == [
        (0.1, 0), (0.1, 1), (10.0, 0), (10.0, 1)]  # every unit computed exactly once
    assert sum(t.user_attrs["recorded"] for t in done) == N_TRIALS
    assert not (folder / "trials").exists()  # records live in the RDB storage
    # A re-run finds everything done and computes nothing.
    again = run_sweep(serial_sweep["spec"], folder, engine="optuna", workers=2,
                      storage=storage, study_name="tiny", progress=False)
    assert again.n_computed == 0 and content(again.rows) == content(res.rows)


@pytest.mark.optuna
def test_optuna_runs_a_sweep_over_methods_that_read_different_dials(data_file, tmp_path):
    pytest.importorskip("optuna")
    spec = tiny_spec(data_file, betas=[0.1, 10.0], lambdas=[0.1], seeds=[0],
                     dials={"method": ["disentangled_ssl", "clip"]})  # clip reads no β, no λ
    local = run_sweep(spec, tmp_path / "local", progress=False)
    res = run_sweep(spec, tmp_path / "optuna", engine="optuna", progress=False)
    assert res.complete and res.n_computed == len(spec.trial_keys()) == 2 * 2 + 1
    assert content(res.rows) == content(local.rows)


@pytest.mark.slow  # kills a worker mid-unit and waits for its heartbeat to go stale
@pytest.mark.optuna
def test_optuna_dead_worker_unit_is_retried(data_file, tmp_path, serial_sweep):
    pytest.importorskip("optuna")
    folder = tmp_path / "optuna-kill"
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    code = (
        "import pickle, sys; from disentangled_ssl.experiments import run_sweep; "
        f"spec = pickle.loads({pickle.dumps(serial_sweep['spec'])!r}); "
        f"run_sweep(spec, {str(folder)!r}, engine='optuna', storage={storage!r}, "
        "study_name='k', heartbeat=(1, 3), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    events = folder / "events.jsonl"
    deadline = time.monotonic() + 240
    while proc.poll() is None and sum(
            e["event"] == "trial_done" for e in EventLog(events).read()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the worker dies inside a unit
    proc.wait()
    n_before = len(EventLog(events).read())
    res = run_sweep(serial_sweep["spec"], folder, engine="optuna", storage=storage,
                    study_name="k", heartbeat=(1, 3), progress=False)
    assert res.complete and content(res.rows) == content(serial_sweep["result"].rows)
    resumed = EventLog(events).read()[n_before:]
    done_before = {e["trial"] for e in EventLog(events).read()[:n_before]
                   if e["event"] == "trial_done"}
    assert not [e for e in resumed if e["event"].startswith("fit") and e["trial"] in done_before]


# ---------------------------------------------------------------------- selection
def _rows(values: dict[float, tuple[float, float, float]], seeds=(0, 1)) -> list[dict]:
    """Hand-made shared rows: β -> (yc, y1, y2) accuracy, seed 1 offset by +0.01."""
    rows = []
    for beta, accs in values.items():
        for seed in seeds:
            for label, acc in zip(("yc", "y1", "y2"), accs):
                rows.append({"key": f"k{beta}-{seed}", "stage": "shared", "beta": beta,
                             "lam": "", "seed": seed, "representation": "shared",
                             "label": label, "metric": "accuracy", "value": acc + 0.01 * seed,
                             "train_seconds": 1.0, "eval_seconds": 0.1})
    return rows


GRID = {0.1: (0.78, 0.67, 0.68), 10.0: (0.76, 0.60, 0.61), 100.0: (0.70, 0.54, 0.53),
        1000.0: (0.55, 0.50, 0.50)}


def test_select_leakage_target_on_hand_made_rows():
    sel = select(_rows(GRID), leakage_target(0.55))
    # β=100: y1 0.545, y2 0.535 ≤ 0.55 and best yc among those that meet it (0.705 > 0.555)
    assert sel.met and sel.chosen.dials == {"beta": 100.0}
    assert np.isclose(sel.chosen.mean("shared.yc"), 0.705)
    assert [t["meets"] for t in sel.table] == [False, False, True, True]
    assert {r["beta"] for r in sel.evidence} == {100.0} and len(sel.evidence) == 6
    assert "← chosen" in sel.markdown() and "β=100" in sel.markdown()


def test_select_keep_target_and_unmet_target():
    sel = select(_rows(GRID), keep_target(0.95))
    # threshold 0.95 × 0.785 = 0.74575: β 0.1 and 10 keep it; 10 leaks less
    assert np.isclose(sel.thresholds["shared.yc >= 0.95·best"], 0.95 * 0.785)
    assert sel.met and sel.chosen.dials == {"beta": 10.0}
    strict = select(_rows(GRID), leakage_target(0.4))
    assert not strict.met and strict.chosen is None
    assert strict.closest.dials == {"beta": 1000.0}  # smallest shortfall


def test_target_parsing_and_errors():
    c = Constraint.parse("specific1.yc <= 0.55")
    assert (c.metric, c.op, c.bound, c.relative) == ("specific1.yc", "<=", 0.55, False)
    assert Constraint.parse("shared.yc>=0.95*best").relative
    with pytest.raises(DSSLError, match="cannot read the constraint 'yc<0.5'"):
        Constraint.parse("yc<0.5")
    obj = Objective.parse("shared.y1+shared.y2", maximize=False)
    assert obj.terms == ((1.0, "shared.y1"), (1.0, "shared.y2"))
    with pytest.raises(DSSLError, match="cannot read the objective"):
        Objective.parse("shared.y1 shared.y2")
    target = Target((Constraint.parse("shared.y3<=0.5"),), Objective.parse("shared.yc"))
    with pytest.raises(DSSLError, match="metric 'shared.y3' is not in the sweep results"):
        select(_rows(GRID), target)


def test_relative_bound_of_a_negative_best():
    rows = [dict(r, metric="heldout_mi_bound", label="", value=-r["value"])
            for r in _rows({1.0: (0.10, 0, 0), 2.0: (0.20, 0, 0)}) if r["label"] == "yc"]
    sel = select(rows, Target((Constraint.parse("shared.heldout_mi_bound>=0.5*best"),),
                              Objective.parse("shared.heldout_mi_bound")))
    # best -0.105, bound -0.105 - 0.5·0.105 = -0.1575: only β=1 meets it
    assert [t["meets"] for t in sel.table] == [True, False]


def test_selection_on_the_tiny_sweep_meets_a_stated_target(serial_sweep):
    rows = serial_sweep["result"].rows
    specific = configs(rows, "specific")
    leaks = sorted(c.mean("specific1.yc") for c in specific)
    bound = leaks[len(leaks) // 2]  # a target half the settings meet
    sel = select(rows, leakage_target(bound, "specific1"))
    assert sel.met and sel.chosen.mean("specific1.yc") <= bound
    meeting = [c for c in specific if c.mean("specific1.yc") <= bound]
    assert sel.chosen.mean("specific1.y1") == max(c.mean("specific1.y1") for c in meeting)
    agree = agreement(rows, 0.95)
    assert agree["labelled"]["beta"] in BETAS and agree["label_free"]["beta"] in BETAS
    assert agree["same_choice"] == (agree["labelled"] == agree["label_free"])


def test_cli_select(serial_sweep, tmp_path, capsys):
    folder = serial_sweep["folder"]
    out = tmp_path / "sel.json"
    assert main(["select", "--sweep", str(folder), "--max-leakage", "1.0", "--representation",
                 "specific1", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["met"] and set(payload["chosen"]) == {"beta", "lam"}
    assert "evidence" in capsys.readouterr().out
    assert main(["select", "--sweep", str(folder), "--max-leakage", "0.0"]) == 1
    assert main(["select", "--sweep", str(folder), "--keep", "0.9", "--label-free",
                 "--agreement"]) == 0
    assert main(["select", "--sweep", str(folder), "--where", "shared.y9<=0.5",
                 "--maximize", "shared.yc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[-1]] and err[-1].startswith(
        "dssl: error: metric 'shared.y9' is not in the sweep results")
    assert main(["select", "--sweep", str(folder)]) == 2
    assert "give exactly one target" in capsys.readouterr().err
