"""Checkpoints: format, atomicity, refusal of bad files, resume and the divergence guard."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import disentangled_ssl.estimator.checkpointing as estimator_module
import disentangled_ssl.training.checkpoint as ckpt
from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl._errors import DSSLError, TrainingDivergedError
from disentangled_ssl.cli import main
from disentangled_ssl.data.io import save_paired
from disentangled_ssl.methods.dssl import SpecificObjective
from disentangled_ssl.training.checkpoint import (
    Checkpoint,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from disentangled_ssl.training.loop import LoopState, Stage, TrainConfig, train_stage

SMALL = dict(shared_epochs=3, specific_epochs=3, batch_size=64, hidden_dim=32, shared_dim=8,
             specific_dim=8, random_state=0, verbose=False, device="cpu")


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_samples=512, shared_dim=8, private_dim1=8, private_dim2=8,
                          x_dim1=16, x_dim2=16, seed=0)


@pytest.fixture(scope="module")
def reference(data):
    """The uninterrupted run (no checkpointing) every resumed run must equal bit for bit."""
    return DisentangledSSL(**SMALL).fit(data.x1, data.x2)


def _same_weights(a: DisentangledSSL, b: DisentangledSSL) -> bool:
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _without_seconds(history: dict) -> dict:
    return {s: [{k: v for k, v in r.items() if k != "seconds"} for r in h]
            for s, h in history.items()}


def _loop_state(epochs: int = 2) -> tuple[torch.nn.Linear, LoopState]:
    """A real Adam/cosine/RNG state after ``epochs`` epochs of a tiny stage."""

    class Objective(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(3, 2)

        def forward(self, x):
            return {"loss": (self.net(x + torch.randn_like(x)) ** 2).mean()}

    torch.manual_seed(0)
    obj = Objective()
    states: list[LoopState] = []
    train_stage(Stage("s", obj, trainable=[obj.net], epochs=epochs), [torch.randn(32, 3)],
                TrainConfig(batch_size=8, lr=0.1, progress=False), on_epoch_end=states.append)
    return obj.net, states[-1]


# ------------------------------------------------------------------------------ format
def test_roundtrip_restores_every_part_exactly(tmp_path):
    net, state = _loop_state()
    path = save_checkpoint(tmp_path / "c.safetensors",
                           Checkpoint("s", state, net.state_dict(), {"note": [1, "x", None]},
                                      {"cuda_rng": torch.arange(4, dtype=torch.uint8)}))
    back = load_checkpoint(path)
    assert back.stage == "s" and back.epoch == 1 and back.meta == {"note": [1, "x", None]}
    assert all(torch.equal(back.model[k], v) for k, v in net.state_dict().items())
    assert torch.equal(back.extra["cuda_rng"], torch.arange(4, dtype=torch.uint8))
    assert torch.equal(back.loop.torch_rng, state.torch_rng)
    assert torch.equal(back.loop.shuffle_rng, state.shuffle_rng)
    assert back.loop.scheduler == state.scheduler and back.loop.history == state.history
    assert back.loop.optimizer["param_groups"] == state.optimizer["param_groups"]
    for index, entry in state.optimizer["state"].items():
        assert set(back.loop.optimizer["state"][index]) == {"step", "exp_avg", "exp_avg_sq"}
        for name, value in entry.items():
            assert torch.equal(back.loop.optimizer["state"][index][name], value), name
    # No pickle anywhere: the file is a safetensors buffer whose header is JSON.
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"]["format"] == "disentangled-ssl-checkpoint"
    assert "optimizer/0/exp_avg" in header and "rng/shuffle" in header
    assert b"\x80\x04" not in raw[: 8 + int.from_bytes(raw[:8], "little")]  # no pickle opcode


def test_crash_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    net, state = _loop_state()
    path = save_checkpoint(tmp_path / "c.safetensors", Checkpoint("s", state, net.state_dict()))
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, Checkpoint("s", state, {k: v + 1 for k, v in
                                                      net.state_dict().items()}))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no temp left
    # A temporary orphaned by SIGKILL is removed on the next resume.
    stale = tmp_path / ".checkpoint.safetensors.abc.tmp"
    stale.write_bytes(b"half")
    assert ckpt.remove_stale_temporaries(tmp_path) == [stale] and not stale.exists()


def test_refuses_truncated_tampered_foreign_and_future_files(tmp_path, monkeypatch, reference):
    net, state = _loop_state()
    good = save_checkpoint(tmp_path / "c.safetensors", Checkpoint("s", state, net.state_dict()))
    raw = good.read_bytes()

    cases = {
        "truncated.safetensors": (raw[:-7], "failed its checksum|is corrupt"),
        "header_cut.safetensors": (raw[:100], r"is truncated \(header says"),
        "tiny.safetensors": (raw[:5], r"is truncated \(5 bytes\)"),
        "flipped.safetensors": (raw[:-1] + bytes([raw[-1] ^ 1]),
                                "failed its checksum: the checkpoint was modified"),
        "garbage.safetensors": (b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
                                "is not a safetensors checkpoint"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DSSLError, match=message):
            load_checkpoint(tmp_path / name)
    # A saved model is safetensors too, but not a checkpoint.
    model = reference.save(tmp_path / "model")
    with pytest.raises(DSSLError, match="is not a disentangled-ssl checkpoint"):
        load_checkpoint(model / "model.safetensors")
    # Hand-edited JSON (e.g. the epoch) breaks the checksum.
    edited = raw.replace(b'\\"epoch\\": 1', b'\\"epoch\\": 0')
    assert edited != raw
    (tmp_path / "edited.safetensors").write_bytes(edited)
    with pytest.raises(DSSLError, match="failed its checksum"):
        load_checkpoint(tmp_path / "edited.safetensors")
    # A file from another format version.
    monkeypatch.setattr(ckpt, "CHECKPOINT_FORMAT_VERSION", 99)
    future = save_checkpoint(tmp_path / "f.safetensors", Checkpoint("s", state, net.state_dict()))
    monkeypatch.undo()
    with pytest.raises(DSSLError, match="written in checkpoint format '99'; this library"):
        load_checkpoint(future)
    with pytest.raises(DSSLError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.safetensors")


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("stop_after", [1, 3, 4, 6])  # mid step 1, end of step 1, mid step 2, end
def test_resume_after_interruption_is_bit_identical(tmp_path, monkeypatch, data, reference,
                                                    stop_after):
    written = []
    real_save = ckpt.save_checkpoint

    def save_then_die(path, checkpoint):
        real_save(path, checkpoint)
        written.append((checkpoint.stage, checkpoint.epoch))
        if len(written) == stop_after:
            raise KeyboardInterrupt  # the process "dies" right after a checkpoint

    monkeypatch.setattr(estimator_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        DisentangledSSL(**SMALL, checkpoint_dir=str(tmp_path)).fit(data.x1, data.x2)
    monkeypatch.undo()
    stages = ["shared"] * 3 + ["specific"] * 3
    assert written[-1] == (stages[stop_after - 1], (stop_after - 1) % 3)
    resumed = DisentangledSSL(**SMALL, checkpoint_dir=str(tmp_path)).fit(
        data.x1, data.x2, resume=True)
    assert _same_weights(resumed, reference)
    assert _without_seconds(resumed.history_) == _without_seconds(reference.history_)
    emb_a = resumed.transform(data.x1, data.x2).as_dict()
    emb_b = reference.transform(data.x1, data.x2).as_dict()
    assert all(np.array_equal(emb_a[k], emb_b[k]) for k in emb_b)


@pytest.mark.parametrize("method", ["focal", "dmvae"])
def test_resume_a_one_stage_baseline_is_bit_identical(tmp_path, monkeypatch, data, method):
    params = {**SMALL, "method": method, "epochs": 3}
    reference = DisentangledSSL(**params).fit(data.x1, data.x2)
    real_save = ckpt.save_checkpoint
    written = []

    def save_then_die(path, checkpoint):
        real_save(path, checkpoint)
        written.append((checkpoint.stage, checkpoint.epoch))
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(estimator_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        DisentangledSSL(**params, checkpoint_dir=str(tmp_path)).fit(data.x1, data.x2)
    monkeypatch.undo()
    assert written == [(method, 0), (method, 1)]
    resumed = DisentangledSSL(**params, checkpoint_dir=str(tmp_path)).fit(
        data.x1, data.x2, resume=True)
    assert _same_weights(resumed, reference)
    assert _without_seconds(resumed.history_) == _without_seconds(reference.history_)


def test_resume_without_checkpoint_starts_fresh_and_refusals(tmp_path, data, reference):
    folder = tmp_path / "ck"
    est = DisentangledSSL(**SMALL, checkpoint_dir=str(folder)).fit(data.x1, data.x2,
                                                                     resume=True)
    assert _same_weights(est, reference)  # checkpointing does not perturb training
    final = load_checkpoint(checkpoint_path(folder))
    assert (final.stage, final.epoch) == ("specific", 2)
    assert set(final.meta["history"]) == {"shared"}

    with pytest.raises(DSSLError, match="holds the checkpoint of an earlier run; pass "
                       r"resume=True \(CLI: --resume\) to continue it, or delete it"):
        DisentangledSSL(**SMALL, checkpoint_dir=str(folder)).fit(data.x1, data.x2)
    with pytest.raises(DSSLError, match="was written by a run with other settings "
                       r"\(lam=1.0 there, 2.0 here\)"):
        DisentangledSSL(**{**SMALL, "lam": 2.0}, checkpoint_dir=str(folder)).fit(
            data.x1, data.x2, resume=True)
    with pytest.raises(DSSLError, match="was written by a run on other data"):
        DisentangledSSL(**SMALL, checkpoint_dir=str(folder)).fit(data.x1 + 1, data.x2,
                                                                 resume=True)
    with pytest.raises(DSSLError, match="resume=True needs checkpoint_dir"):
        DisentangledSSL(**SMALL).fit(data.x1, data.x2, resume=True)
    # A finished run resumes to the finished model without training.
    again = DisentangledSSL(**{**SMALL, "verbose": True}, checkpoint_dir=str(folder)).fit(
        data.x1, data.x2, resume=True)
    assert _same_weights(again, reference)
    assert DisentangledSSL.from_checkpoint(folder).history_.keys() == {"shared", "specific"}


# ------------------------------------------------------------------------------ divergence
def _nan_from_call(monkeypatch, call: int) -> None:
    """Make the step-2 objective's terms NaN from its ``call``-th forward on (1-based)."""
    real_forward = SpecificObjective.forward
    calls = [0]

    def forward(self, *xs):
        calls[0] += 1
        terms = real_forward(self, *xs)
        if calls[0] >= call:
            terms = {k: v * float("nan") for k, v in terms.items()}
        return terms

    monkeypatch.setattr(SpecificObjective, "forward", forward)


def test_nan_mid_run_stops_with_message_and_keeps_last_good_checkpoint(
    tmp_path, monkeypatch, data, reference
):
    _nan_from_call(monkeypatch, 8 + 3)  # 512 rows / 64 = 8 steps: epoch 2, step 3 of step 2
    est = DisentangledSSL(**SMALL, checkpoint_dir=str(tmp_path))
    with pytest.raises(TrainingDivergedError) as info:
        est.fit(data.x1, data.x2)
    message = str(info.value)
    assert message.startswith("stage 'specific' diverged: loss term 'loss' became nan at "
                              "epoch 2, step 3; lower the learning rate")
    assert (f"The last good checkpoint (stage 'specific', epoch 1) is kept in "
            f"{checkpoint_path(tmp_path)}") in message
    monkeypatch.undo()

    last = load_checkpoint(checkpoint_path(tmp_path))
    assert (last.stage, last.epoch) == ("specific", 0)
    assert all(torch.isfinite(v).all() for v in last.model.values())
    good = DisentangledSSL.from_checkpoint(tmp_path, device="cpu")
    assert len(good.history_["shared"]) == 3 and len(good.history_["specific"]) == 1
    emb = good.transform(data.x1, data.x2)
    assert np.isfinite(emb.specific1).all() and np.isfinite(emb.shared2).all()
    # The kept checkpoint is exactly the clean run's state: resuming it without the fault
    # ends bit-identical to the run that never diverged.
    resumed = DisentangledSSL(**SMALL, checkpoint_dir=str(tmp_path)).fit(
        data.x1, data.x2, resume=True)
    assert _same_weights(resumed, reference)


def test_nan_through_the_cli_is_one_line_exit_2(tmp_path, monkeypatch, capsys, data):
    save_paired(tmp_path / "d.npz", data)
    _nan_from_call(monkeypatch, 1)
    code = main(["fit", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m"),
                 "--checkpoint-dir", str(tmp_path / "ck"), *_cli_small()])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("dssl: error: stage 'specific' diverged: loss term 'loss' became nan "
                          "at epoch 1, step 1")
    assert "The last good checkpoint (stage 'shared', epoch 3) is kept in" in err
    assert not (tmp_path / "m").exists()
    assert load_checkpoint(checkpoint_path(tmp_path / "ck")).stage == "shared"


# ------------------------------------------------------------------------------ kill -9
def _cli_small(epochs: int = 3) -> list[str]:
    return ["--shared-epochs", str(epochs), "--specific-epochs", str(epochs), "--batch-size",
            "64", "--hidden-dim", "32", "--shared-dim", "8", "--specific-dim", "8", "--seed",
            "0", "--device", "cpu", "--quiet"]


# Runs `dssl fit` with every optimiser step slowed by a sleep, so that a kill lands mid-run.
_SLOW_DSSL = """
import sys, time, torch
real_step = torch.optim.Adam.step
def slow_step(self, *args, **kwargs):
    time.sleep(0.03)
    return real_step(self, *args, **kwargs)
torch.optim.Adam.step = slow_step
from disentangled_ssl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_and_kill(argv: list[str], folder, rng: random.Random) -> float:
    """Start `dssl fit`, SIGKILL it a random 0-0.3 s after a checkpoint first appears."""
    # One thread: idle OpenMP threads would spin through the sleeps and slow a busy machine
    # (results do not depend on the thread count: tests/test_determinism.py).
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_DSSL, *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    file = checkpoint_path(folder)
    def stamp():
        st = file.stat()
        return (st.st_ino, st.st_mtime_ns)

    first = stamp() if file.exists() else None
    deadline = time.monotonic() + 60
    while (not file.exists() or stamp() == first) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.005)
    delay = rng.uniform(0.0, 0.3)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended (rc {proc.returncode}) before the kill {delay:.3f} s after a "
        f"checkpoint: {err.decode()[-500:]}")
    return delay


def test_sigkill_then_resume_is_byte_identical(tmp_path, data):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1)
    try:
        _sigkill_then_resume(tmp_path, data)
    finally:
        torch.set_num_threads(threads)


def _sigkill_then_resume(tmp_path, data) -> None:
    save_paired(tmp_path / "d.npz", data)
    args = ["--data", str(tmp_path / "d.npz"), *_cli_small(epochs=4)]
    assert main(["fit", *args, "--out", str(tmp_path / "reference")]) == 0

    folder, out = tmp_path / "ck", tmp_path / "resumed"
    argv = ["fit", *args, "--out", str(out), "--checkpoint-dir", str(folder)]
    rng = random.Random()
    delays = [_run_and_kill(argv, folder, rng)]  # killed in the first run
    assert not out.exists()
    killed_at = load_checkpoint(checkpoint_path(folder))  # the survivor is complete
    delays.append(_run_and_kill([*argv, "--resume"], folder, rng))  # killed again resuming
    assert not out.exists()
    order = {"shared": 0, "specific": 1}
    killed_again = load_checkpoint(checkpoint_path(folder))
    assert ((order[killed_again.stage], killed_again.epoch)
            > (order[killed_at.stage], killed_at.epoch)), "the second run did not continue"
    assert main([*argv, "--resume"]) == 0  # the last resume runs to the end (in-process)
    reference = (tmp_path / "reference" / "model.safetensors").read_bytes()
    resumed = (out / "model.safetensors").read_bytes()
    print(f"\nkills {[round(d, 3) for d in delays]} s after a checkpoint (first kill left "
          f"{killed_at.stage} epoch {killed_at.epoch + 1}); compared {len(reference)} bytes")
    assert len(reference) > 10_000 and resumed == reference
    hist = [json.loads((p / "config.json").read_text())["history"]
            for p in (tmp_path / "reference", out)]
    assert _without_seconds(hist[0]) == _without_seconds(hist[1])
    assert not list(folder.glob(".checkpoint.safetensors.*"))  # no temporaries left behind
