"""Data-parallel training: two gloo processes with local batch B compute the gradients (and
train the weights) of one process with the global batch 2B; bf16 autocast runs.

The comparison runs in float64: the orthogonality term's gradient is a sum of large, nearly
cancelling per-row terms, so in float32 summing in another order (per process, then across
processes) moves it by ~1e-3 relative; in float64 the two runs agree to ~1e-12.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from disentangled_ssl.data.augment import VectorAugment
from disentangled_ssl.losses import SharedLoss, SpecificLoss
from disentangled_ssl.methods import MethodSettings
from disentangled_ssl.methods.dssl import (
    SharedObjective,
    SpecificObjective,
    build_stages,
)
from disentangled_ssl.nn.model import MultimodalModel
from disentangled_ssl.training import Stage, TrainConfig, train_stage
from disentangled_ssl.training.distributed import (
    DistributedContext,
    distributed_stage,
    init_distributed,
)

WORLD = 2
LOCAL_BATCH = 16
GLOBAL_BATCH = WORLD * LOCAL_BATCH
ROWS = 4 * GLOBAL_BATCH


def _data() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(ROWS, 12, generator=g, dtype=torch.float64),
            torch.randn(ROWS, 10, generator=g, dtype=torch.float64)]


def _stages(gather: bool = False) -> tuple[MultimodalModel, list[Stage]]:
    """Both DisentangledSSL stages, deterministic (no augmentation, no vMF noise) so that a
    data-parallel run and a single-process run see the same numbers; ``gather`` builds the
    losses in their global-batch form."""
    torch.manual_seed(0)
    model = MultimodalModel([12, 10], shared_dim=6, specific_dim=5, hidden_dim=16).double()
    augment = VectorAugment(enabled=False)
    shared = Stage("shared", SharedObjective(model, augment, SharedLoss(beta=1.0, gather=gather),
                                             kappa=None),
                   trainable=[model.shared], epochs=2)
    specific_loss = SpecificLoss(lam=2.0, gather=gather)
    specific = Stage("specific", SpecificObjective(model, augment, specific_loss),
                     trainable=[model.specific], frozen=[model.shared], epochs=2)
    return model, [shared, specific]


def _gradients(stage: Stage, batch: list[torch.Tensor]) -> list[torch.Tensor]:
    params = [p for m in stage.trainable for p in m.parameters()]
    for p in params:
        p.grad = None
    stage.objective(*batch)["loss"].backward()
    return [p.grad.clone() for p in params]


def _assert_close(mine: torch.Tensor, theirs: torch.Tensor, rel: float = 1e-9) -> None:
    """Equal up to float rounding, relative to the tensor's scale."""
    gap = float((mine - theirs).abs().max())
    assert gap <= rel * float(theirs.abs().max()) + 1e-12, (gap, float(theirs.abs().max()))


def _run(stages_of_model, data: list[torch.Tensor], wrap) -> dict[str, object]:
    """Gradients of each stage on the first global batch, then the weights after training
    both stages through the loop with the global batch size."""
    model, stages = stages_of_model
    batch = [x[:GLOBAL_BATCH] for x in data]
    out: dict[str, object] = {}
    for stage in stages:
        out[f"{stage.name}_grads"] = _gradients(wrap(stage), batch)
    config = TrainConfig(batch_size=GLOBAL_BATCH, lr=1e-2, seed=0, progress=False)
    for stage in stages:
        out[f"{stage.name}_history"] = train_stage(wrap(stage), data, config)
    out["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
    return out


def _worker(rank: int, rendezvous: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=WORLD)
    try:
        ctx = DistributedContext(rank, WORLD, rank, torch.device("cpu"))
        result = _run(_stages(gather=True), _data(),
                      lambda stage: distributed_stage(stage, ctx))
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(f"file://{out / 'rendezvous'}", str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def single_process_run():
    torch.set_num_threads(1)
    return _run(_stages(), _data(), lambda stage: stage)


def test_two_processes_give_the_gradients_of_the_global_batch(two_process_run,
                                                              single_process_run):
    for name in ("shared_grads", "specific_grads"):
        reference = single_process_run[name]
        assert any(float(g.abs().max()) > 1e-4 for g in reference)  # a real gradient
        for rank_result in two_process_run:  # DDP averaged: identical on both ranks
            for mine, theirs in zip(rank_result[name], reference):
                _assert_close(mine, theirs)


def test_local_batch_alone_gives_other_gradients(single_process_run):
    """The check above can fail: without gathering, half the batch has other gradients."""
    _, stages = _stages()
    local = _gradients(stages[0], [x[:LOCAL_BATCH] for x in _data()])
    gap = max(float((a - b).abs().max()) for a, b in zip(local,
                                                          single_process_run["shared_grads"]))
    assert gap > 1e-4


def test_two_processes_train_the_weights_of_the_global_batch(two_process_run,
                                                             single_process_run):
    reference = single_process_run["weights"]
    for rank_result in two_process_run:
        for key, value in rank_result["weights"].items():
            _assert_close(value, reference[key])
    # Each rank records its own half's loss; their mean is the global batch's loss.
    for stage in ("shared", "specific"):
        ranks = [r[f"{stage}_history"][0]["loss"] for r in two_process_run]
        whole = single_process_run[f"{stage}_history"][0]["loss"]
        assert sum(ranks) / WORLD == pytest.approx(whole, rel=1e-6)  # history is float32


def test_single_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(Exception, match="RANK=5 is not in"):
        init_distributed(device="cpu")


@pytest.mark.filterwarnings("ignore::disentangled_ssl.PerformanceWarning")  # AVX2 hosts
def test_bf16_autocast_trains_on_cpu():
    torch.manual_seed(0)
    model = MultimodalModel([12, 10], shared_dim=6, specific_dim=5, hidden_dim=16)
    stages = build_stages(model, VectorAugment(), MethodSettings(
        beta=1.0, lam=1.0, kappa=100.0, shared_epochs=2, specific_epochs=1))
    before = model.shared[0].net[0].weight.detach().clone()
    config = TrainConfig(batch_size=GLOBAL_BATCH, lr=1e-2, progress=False, bf16=True)
    data = [x.float() for x in _data()]
    for stage in stages:
        history = train_stage(stage, data, config)
        assert all(torch.isfinite(torch.tensor(r["loss"])) for r in history)
    assert model.shared[0].net[0].weight.dtype == torch.float32  # master weights stay fp32
    assert not torch.equal(model.shared[0].net[0].weight, before)
