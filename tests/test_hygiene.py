"""What users rely on without thinking about it: the caller's RNG is left alone, the multiview
calling convention gives the same result, saves are verifiable and never leave a half model,
and the known defects of the redesign review stay fixed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from disentangled_ssl import DisentangledSSL, DSSLError
from disentangled_ssl.estimator import distributed as distributed_module
from disentangled_ssl.estimator import fit_distributed, fit_shared_grid, persistence
from disentangled_ssl.training.distributed import DistributedContext

SMALL = {"hidden_dim": 16, "shared_dim": 4, "specific_dim": 4, "batch_size": 128,
         "shared_epochs": 1, "specific_epochs": 1, "random_state": 0, "device": "cpu",
         "verbose": False}


def _weights(est: DisentangledSSL) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in est.model_.state_dict().items()}


@pytest.mark.parametrize("method", ["disentangled_ssl", "dmvae"])
def test_fit_leaves_the_callers_torch_rng_state_as_it_was(small_data, method):
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    expected_next = torch.rand(3)
    torch.set_rng_state(before)
    DisentangledSSL(**SMALL, method=method, epochs=1).fit(small_data.x1, small_data.x2)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(torch.rand(3), expected_next)


def test_grids_leave_the_callers_torch_rng_state_as_it_was(small_data):
    torch.manual_seed(99)
    before = torch.get_rng_state()
    fit_shared_grid(DisentangledSSL(**SMALL), [0.0, 1.0], small_data.x1, small_data.x2)
    assert torch.equal(torch.get_rng_state(), before)


def test_list_of_views_gives_the_same_model_and_embeddings(small_data):
    views = [small_data.x1, small_data.x2]
    a = DisentangledSSL(**SMALL).fit(views)
    b = DisentangledSSL(**SMALL).fit(small_data.x1, small_data.x2)
    assert all(torch.equal(w, b.model_.state_dict()[k]) for k, w in _weights(a).items())
    ea, eb = a.transform(views).as_dict(), b.transform(small_data.x1, small_data.x2).as_dict()
    assert sorted(ea) == ["shared1", "shared2", "specific1", "specific2"]
    assert all(np.array_equal(ea[k], eb[k]) for k in eb)
    with pytest.raises(DSSLError, match=r"fit needs the paired views: fit\(\[X1, X2, \.\.\.\]\)"):
        DisentangledSSL(**SMALL).fit(small_data.x1)


def test_fit_specific_with_zero_specific_epochs_refuses_instead_of_training(small_data):
    est = DisentangledSSL(**{**SMALL, "specific_epochs": 0}).fit(small_data.x1, small_data.x2)
    assert "specific" not in est.history_
    before = _weights(est)
    with pytest.raises(DSSLError, match=r"stage 'specific' has 0 epochs \(specific_epochs=0\): "
                       "nothing to train; set specific_epochs > 0"):
        est.fit_specific(small_data.x1, small_data.x2)
    assert all(torch.equal(w, est.model_.state_dict()[k]) for k, w in before.items())


def test_prepare_stage_is_what_fit_trains(small_data):
    """The public stage API: training a prepared stage by hand gives fit's model."""
    from disentangled_ssl.training import train_stage

    reference = DisentangledSSL(**SMALL).fit(small_data.x1, small_data.x2)
    est = DisentangledSSL(**SMALL)
    for name in ("shared", "specific"):
        prepared = est.prepare_stage(name, [small_data.x1, small_data.x2])
        est.history_[name] = train_stage(*prepared)
    assert all(torch.equal(w, est.model_.state_dict()[k]) for k, w in _weights(reference).items())
    with pytest.raises(DSSLError, match="method 'clip' has no stage 'shared'; its stages are clip"):
        DisentangledSSL(**SMALL, method="clip").prepare_stage("shared", [small_data.x1,
                                                                          small_data.x2])


@pytest.mark.parametrize(("given", "expected"), [(None, True), (False, False)])
def test_fit_distributed_keeps_the_estimators_bf16_unless_told(small_data, monkeypatch, given,
                                                              expected):
    seen = []
    monkeypatch.setattr(distributed_module, "train_stage",
                        lambda stage, data, config: seen.append(config.bf16) or [])
    est = DisentangledSSL(**SMALL, bf16=True)
    ctx = DistributedContext(0, 1, 0, torch.device("cpu"))
    fit_distributed(est, [small_data.x1, small_data.x2], context=ctx, bf16=given)
    assert seen == [expected, expected]
    assert est.bf16 is expected


def test_fit_distributed_refuses_checkpoints(small_data, tmp_path):
    est = DisentangledSSL(**SMALL, checkpoint_dir=str(tmp_path))
    with pytest.raises(DSSLError, match="fit_distributed writes no checkpoints; set "
                       "checkpoint_dir=None"):
        fit_distributed(est, small_data.x1, small_data.x2,
                        context=DistributedContext(0, 1, 0, torch.device("cpu")))


# ------------------------------------------------------------------------------ saving
@pytest.fixture(scope="module")
def two_models(small_data):
    old = DisentangledSSL(**SMALL).fit(small_data.x1, small_data.x2)
    new = DisentangledSSL(**{**SMALL, "random_state": 1}).fit(small_data.x1, small_data.x2)
    return old, new


def test_saved_config_records_the_weights_sha256(tmp_path, two_models):
    path = two_models[0].save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    assert config["weights_sha256"] == persistence.file_sha256(path / "model.safetensors")
    weights = bytearray((path / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # one flipped bit in the last tensor: still a readable safetensors file
    (path / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(DSSLError, match="model.safetensors is damaged or not the file this model "
                       "saved"):
        DisentangledSSL.load(path)


def _same(a: DisentangledSSL, b: DisentangledSSL) -> bool:
    return all(torch.equal(w, b.model_.state_dict()[k]) for k, w in _weights(a).items())


def test_the_folder_swap_is_atomic_on_this_platform(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_text("a")
    (tmp_path / "b" / "f").write_text("b")
    assert persistence._exchange(tmp_path / "a", tmp_path / "b")  # Linux renameat2
    assert (tmp_path / "a" / "f").read_text() == "b"
    assert (tmp_path / "b" / "f").read_text() == "a"


def test_save_killed_while_writing_keeps_the_old_model(tmp_path, two_models, monkeypatch):
    old, new = two_models
    path = old.save(tmp_path / "m")

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(persistence, "_fsync_tree", die)  # after the files, before the swap
    with pytest.raises(KeyboardInterrupt):
        new.save(path, overwrite=True)
    monkeypatch.undo()
    assert _same(DisentangledSSL.load(path), old)


def test_save_killed_right_after_the_swap_holds_the_new_model(tmp_path, two_models,
                                                              monkeypatch):
    old, new = two_models
    path = old.save(tmp_path / "m")

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(persistence.shutil, "rmtree", die)  # the old copy's clean-up
    with pytest.raises(KeyboardInterrupt):
        new.save(path, overwrite=True)
    monkeypatch.undo()
    assert _same(DisentangledSSL.load(path), new)
