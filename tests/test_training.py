from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from disentangled_ssl import DSSLError, PerformanceWarning, TrainingDivergedError
from disentangled_ssl.training import Stage, TrainConfig, train_stage


class _Quadratic(nn.Module):
    """Objective ||W x - x||² with a switch to produce NaN from a given step on."""

    def __init__(self, nan_from_step: int | None = None):
        super().__init__()
        self.net = nn.Linear(4, 4)
        self.calls = 0
        self.nan_from_step = nan_from_step

    def forward(self, x, y):
        self.calls += 1
        err = ((self.net(x) - y) ** 2).mean()
        if self.nan_from_step is not None and self.calls >= self.nan_from_step:
            err = err * float("nan")
        return {"loss": err, "mse": err}


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return [x, x.clone()]


def test_loop_learns_records_history_and_is_deterministic():
    histories, weights = [], []
    for _ in range(2):
        torch.manual_seed(0)
        obj = _Quadratic()
        stage = Stage("fit", obj, trainable=[obj.net], epochs=5)
        histories.append(train_stage(stage, _data(), TrainConfig(batch_size=16, lr=0.05,
                                                                 progress=False)))
        weights.append(obj.net.weight.detach().clone())
    h = histories[0]
    assert len(h) == 5 and h[-1]["mse"] < h[0]["mse"] / 2
    assert h[0]["lr"] == pytest.approx(0.05)
    assert h[-1]["lr"] < h[1]["lr"]  # cosine annealing
    assert torch.equal(weights[0], weights[1])
    assert [r["mse"] for r in histories[0]] == [r["mse"] for r in histories[1]]


def test_loop_frozen_modules_do_not_change():
    obj = _Quadratic()
    frozen = nn.Linear(4, 4)
    before = frozen.weight.detach().clone()
    stage = Stage("fit", obj, trainable=[obj.net], frozen=[frozen], epochs=1)
    train_stage(stage, _data(), TrainConfig(batch_size=16, progress=False))
    assert torch.equal(frozen.weight, before)
    assert frozen.weight.requires_grad  # restored after the stage


def test_divergence_guard_names_epoch_step_and_term():
    obj = _Quadratic(nan_from_step=7)  # 4 steps per epoch -> epoch 2, step 3
    stage = Stage("fit", obj, trainable=[obj.net], epochs=3)
    with pytest.raises(TrainingDivergedError,
                       match="loss term 'loss' became nan at epoch 2, step 3"):
        train_stage(stage, _data(), TrainConfig(batch_size=16, progress=False))


def test_fewer_rows_than_batch():
    obj = _Quadratic()
    stage = Stage("fit", obj, trainable=[obj.net], epochs=1)
    with pytest.raises(DSSLError, match="10 training rows is fewer than batch_size=16"):
        train_stage(stage, _data(10), TrainConfig(batch_size=16, progress=False))


def test_resume_from_epoch_state_is_bit_identical():
    config = TrainConfig(batch_size=16, lr=0.05, progress=False)
    torch.manual_seed(1)
    full = _Quadratic()
    train_stage(Stage("fit", full, trainable=[full.net], epochs=4), _data(), config)

    # Interrupt the same run after epoch 2, keeping the loop state and the weights then.
    torch.manual_seed(1)
    first = _Quadratic()
    snapshots = []

    def keep(state):
        snapshots.append((state, {k: v.clone() for k, v in first.state_dict().items()}))
        if state.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stage(Stage("fit", first, trainable=[first.net], epochs=4), _data(), config,
                    on_epoch_end=keep)
    state, weights = snapshots[-1]
    torch.manual_seed(123)  # the resumed run must not depend on the ambient RNG
    resumed = _Quadratic()
    resumed.load_state_dict(weights)
    history = train_stage(Stage("fit", resumed, trainable=[resumed.net], epochs=4), _data(),
                          config, resume=state)
    assert len(history) == 4
    assert torch.equal(resumed.net.weight, full.net.weight)
    assert torch.equal(resumed.net.bias, full.net.bias)


def _bf16_run(x86_cpu, monkeypatch, *, native: bool, machine: str = "x86_64",
              bf16: bool = True) -> list:
    from disentangled_ssl.training import loop

    x86_cpu(bf16_instructions=native)
    monkeypatch.setattr(loop.platform, "machine", lambda: machine)
    obj = _Quadratic()
    stage = Stage("fit", obj, trainable=[obj.net], epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_stage(stage, _data(), TrainConfig(batch_size=16, progress=False, bf16=bf16))
    return [w for w in caught if issubclass(w.category, PerformanceWarning)]


def test_bf16_on_a_cpu_without_bf16_instructions_warns_that_it_is_slow(x86_cpu, monkeypatch):
    caught = _bf16_run(x86_cpu, monkeypatch, native=False)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "bf16=True but this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): bfloat16 is "
        "emulated there and training runs several times slower than float32; leave bf16 off "
        "on this device"
    )
    assert caught[0].filename == __file__  # points at the caller of train_stage


def test_bf16_with_bf16_instructions_or_off_or_unknown_cpu_does_not_warn(x86_cpu, monkeypatch):
    assert _bf16_run(x86_cpu, monkeypatch, native=True) == []
    assert _bf16_run(x86_cpu, monkeypatch, native=False, bf16=False) == []
    assert _bf16_run(x86_cpu, monkeypatch, native=False, machine="aarch64") == []  # no check


def test_bf16_emulated_names_a_gpu_without_native_bf16(monkeypatch):
    from disentangled_ssl.training.loop import bf16_emulated

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation)
    assert bf16_emulated(torch.device("cuda", 0)) == (
        "GPU 'Tesla V100' has no native bfloat16 support")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert bf16_emulated(torch.device("cuda", 0)) is None
