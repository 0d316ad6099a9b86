from __future__ import annotations

import pytest
import torch
from torch import nn

from disentangled_ssl import DSSLError, TrainingDivergedError
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
