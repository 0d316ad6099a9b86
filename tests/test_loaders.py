"""Training from torch.utils.data pipelines: Datasets, DataLoaders, iterables; exact resume;
validation, early stopping and the per-epoch log."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.readers import MultimodalDataset
from disentangled_ssl.data.synthetic import SyntheticStream
from disentangled_ssl.estimator import checkpointing as estimator_module
from disentangled_ssl.evaluation import linear_probe
from disentangled_ssl.methods import method_names
from disentangled_ssl.training import checkpoint as ckpt

SMALL = dict(shared_epochs=2, specific_epochs=2, epochs=2, batch_size=64, hidden_dim=32,
             shared_dim=8, specific_dim=8, random_state=0, verbose=False, device="cpu")


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_samples=640, shared_dim=6, private_dim1=6, private_dim2=6,
                          x_dim1=16, x_dim2=12, seed=3)


class NoisyRows(Dataset):
    """Map-style, item by item (torch's per-row fetch and collate), with a random draw per
    item from torch's RNG: in a worker process that RNG is seeded from the loader's worker
    seed, so a resumed run is exact only if the worker seeds are reproduced."""

    def __init__(self, x1: np.ndarray, x2: np.ndarray) -> None:
        self.x1, self.x2 = torch.from_numpy(x1), torch.from_numpy(x2)

    def __len__(self) -> int:
        return len(self.x1)

    def __getitem__(self, i: int):
        return self.x1[i] + 0.01 * torch.randn(self.x1.shape[1]), self.x2[i]


class Batches:
    """A re-iterable of batch tuples (no Dataset, no DataLoader)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def _same_weights(a, b) -> bool:
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_from_a_dataloader_and_a_dataset(data, method):
    """Each method fits from a DataLoader and from a Dataset; transform of the Dataset is the
    Embeddings of the arrays, row for row."""
    ds = TensorDataset(torch.from_numpy(data.x1), torch.from_numpy(data.x2))
    loader = DataLoader(ds, batch_size=64, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    est = DisentangledSSL(method=method, **SMALL).fit(loader)
    stages = set(est._spec().stage_names)
    assert set(est.history_) == stages
    assert all(len(h) == 2 and np.isfinite(h[-1]["loss"]) for h in est.history_.values())
    from_dataset = est.transform(ds, batch_size=100)
    from_arrays = est.transform([data.x1, data.x2])
    assert type(from_dataset) is type(from_arrays)
    for k, v in from_arrays.as_dict().items():
        np.testing.assert_allclose(from_dataset.as_dict()[k], v, rtol=1e-5, atol=1e-6)
    DisentangledSSL(method=method, **SMALL).fit(ds)  # the estimator builds the loader


def test_get_batch_dataset_equals_per_row_dataset(data):
    """A dataset read one batch per call and the same rows read item by item give the same
    model (same order, same batches)."""
    a = DisentangledSSL(**SMALL).fit(MultimodalDataset([data.x1, data.x2]))
    b = DisentangledSSL(**SMALL).fit(TensorDataset(torch.from_numpy(data.x1),
                                                   torch.from_numpy(data.x2)))
    assert _same_weights(a, b)


def test_a_dataset_order_depends_on_the_seed_and_the_epoch_only(data):
    from disentangled_ssl.data.loaders import EpochSampler

    s = EpochSampler(100, seed=5)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    s.set_epoch(0)
    assert list(s) == first and second != first and sorted(second) == list(range(100))
    assert list(EpochSampler(100, seed=6)) != first


def test_stream_of_a_million_rows_shape_and_memory_free_length():
    stream = SyntheticStream(n_rows=1_000_000, batch_size=256, seed=0)
    assert len(stream) == 3906
    first = next(iter(stream))
    stream.set_epoch(1)
    other = next(iter(stream))
    assert [tuple(x.shape) for x in first] == [(256, 100), (256, 100)]
    assert not torch.equal(first[0], other[0])
    stream.set_epoch(0)
    assert torch.equal(next(iter(stream))[0], first[0])


def test_fit_from_a_generated_stream_learns_the_shared_factor():
    """fit(stream) on rows generated batch by batch: the shared code predicts the shared
    label of held-out rows far above chance."""
    stream = SyntheticStream(n_rows=256 * 60, batch_size=256, seed=0, shared_dim=10,
                             private_dim=10, x_dim=30)
    est = DisentangledSSL(shared_epochs=3, specific_epochs=0, hidden_dim=64, shared_dim=16,
                          lr=1e-3, random_state=0, verbose=False, device="cpu").fit(stream)
    train, test = stream.sample(4000, seed=11), stream.sample(2000, seed=12)
    tr, te = est.transform([train.x1, train.x2]), est.transform([test.x1, test.x2])
    acc = linear_probe(tr.shared, train.labels, te.shared, test.labels)
    assert acc["yc"] > 0.75, acc


def test_iterable_of_batches_and_its_checks(data):
    x1, x2 = torch.from_numpy(data.x1), torch.from_numpy(data.x2)
    batches = [(x1[k:k + 64], x2[k:k + 64]) for k in range(0, 640, 64)]
    est = DisentangledSSL(**SMALL).fit(Batches(batches))
    assert len(est.history_["shared"]) == 2
    with pytest.raises(DSSLError, match="an iterator, which can be read only once"):
        DisentangledSSL(**SMALL).fit(iter(batches))
    bad = batches[:3] + [(x1[:64], x2[:64], x2[:64])]
    with pytest.raises(DSSLError, match="batch 3 of the Batches has 3 modalities but earlier "
                                        "batches had 2"):
        DisentangledSSL(**SMALL).fit(Batches(bad))
    ragged = batches[:2] + [(x1[:64], x2[:63])]
    with pytest.raises(DSSLError, match=r"batch 2 of the Batches is not paired row by row "
                                        r"\(modality 1 has 64, modality 2 has 63 rows\)"):
        DisentangledSSL(**SMALL).fit(Batches(ragged))
    other = batches[:2] + [(x1[:64], x2[:64, :5])]
    with pytest.raises(DSSLError, match="modality 2 of batch 2 has 5 features but the model "
                                        "was fitted with 12"):
        DisentangledSSL(**SMALL).fit(Batches(other))


def test_transform_refuses_a_shuffling_loader(data):
    est = DisentangledSSL(**SMALL).fit([data.x1, data.x2])
    ds = TensorDataset(torch.from_numpy(data.x1), torch.from_numpy(data.x2))
    with pytest.raises(DSSLError, match="transform got a DataLoader that shuffles"):
        est.transform(DataLoader(ds, batch_size=64, shuffle=True))
    emb = est.transform(DataLoader(ds, batch_size=64))
    np.testing.assert_allclose(emb.shared1, est.transform([data.x1, data.x2]).shared1,
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("stop_after", [1, 3])
def test_dataset_resume_after_interruption_is_bit_identical(tmp_path, monkeypatch, data,
                                                            stop_after):
    """Map-style dataset with a random draw per item in a worker process: interrupted right
    after a checkpoint and resumed, the run equals an uninterrupted one bit for bit (the
    order and the worker seeds of every epoch are functions of (seed, epoch))."""
    params = dict(SMALL, shared_epochs=2, specific_epochs=2, num_workers=1)
    reference = DisentangledSSL(**params).fit(NoisyRows(data.x1, data.x2))
    real_save = ckpt.save_checkpoint
    written = []

    def save_then_die(path, checkpoint):
        real_save(path, checkpoint)
        written.append(checkpoint.epoch)
        if len(written) == stop_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(estimator_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        DisentangledSSL(**params, checkpoint_dir=str(tmp_path)).fit(NoisyRows(data.x1, data.x2))
    monkeypatch.undo()
    resumed = DisentangledSSL(**params, checkpoint_dir=str(tmp_path)).fit(
        NoisyRows(data.x1, data.x2), resume=True)
    assert _same_weights(resumed, reference)


_KILLED_FIT = """
import sys, time, numpy as np, torch
torch.set_num_threads(1)
real_step = torch.optim.Adam.step
def slow_step(self, *args, **kwargs):
    time.sleep(0.02)
    return real_step(self, *args, **kwargs)
torch.optim.Adam.step = slow_step
sys.path.insert(0, sys.argv[2])
from test_loaders import NoisyRows, SMALL
from disentangled_ssl import DisentangledSSL, make_synthetic
d = make_synthetic(n_samples=640, shared_dim=6, private_dim1=6, private_dim2=6, x_dim1=16,
                   x_dim2=12, seed=3)
DisentangledSSL(**dict(SMALL, shared_epochs=3, specific_epochs=3, num_workers=1),
                checkpoint_dir=sys.argv[1]).fit(NoisyRows(d.x1, d.x2), resume=True)
"""


def test_sigkill_with_a_worker_dataset_then_resume_is_bit_identical(tmp_path, data,
                                                                   one_thread):
    """One thread here, as in the killed subprocess (OMP_NUM_THREADS=1): bit-identity."""
    params = dict(SMALL, shared_epochs=3, specific_epochs=3, num_workers=1)
    reference = DisentangledSSL(**params).fit(NoisyRows(data.x1, data.x2))
    folder = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_FIT, str(folder),
                             os.path.dirname(__file__)], env=env,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    target = ckpt.checkpoint_path(folder)
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    survivor = ckpt.load_checkpoint(target)
    resumed = DisentangledSSL(**params, checkpoint_dir=str(folder)).fit(
        NoisyRows(data.x1, data.x2), resume=True)
    assert _same_weights(resumed, reference), f"killed after {survivor.stage} " \
        f"epoch {survivor.epoch + 1}"


# ------------------------------------------------------------------------------ validation
def test_validation_fraction_records_held_out_terms_for_both_steps(data):
    est = DisentangledSSL(**dict(SMALL, validation_fraction=0.25)).fit([data.x1, data.x2])
    for stage in ("shared", "specific"):
        record = est.history_[stage][-1]
        assert {"val_loss", "loss"} <= set(record)
        assert np.isfinite(record["val_loss"]) and record["val_loss"] != record["loss"]
    assert {"val_infonce", "val_alignment"} <= set(est.history_["shared"][-1])


def test_early_stopping_stops_and_restores_the_best_epoch(data):
    """A learning rate so large that the validation loss soon stops improving: training stops
    `patience` epochs after the best one, and the model is that epoch's."""
    from disentangled_ssl.training.loop import evaluate_stage

    params = dict(SMALL, shared_epochs=30, specific_epochs=0, lr=0.05,
                  validation_fraction=0.25, early_stopping_patience=2)
    est = DisentangledSSL(**params).fit([data.x1, data.x2])
    history = est.history_["shared"]
    best = history[-1]["best_epoch"]
    losses = [r["val_loss"] for r in history]
    assert len(history) < 30 and len(history) == best + 2
    assert losses[best - 1] == min(losses)
    prepared = est.prepare_stage("shared", [data.x1, data.x2])  # the same split and batches
    # The restored weights give the best epoch's validation loss again.
    fresh = DisentangledSSL(**params).fit([data.x1, data.x2])
    prepared.stage.objective.model.load_state_dict(fresh.model_.state_dict())
    again = evaluate_stage(prepared.stage, prepared.validation, prepared.config.seed + 7919)
    assert again["loss"] == pytest.approx(losses[best - 1], rel=1e-5)


def test_early_stopping_needs_validation_data(data):
    with pytest.raises(DSSLError, match="early_stopping_patience needs validation data"):
        DisentangledSSL(**dict(SMALL, early_stopping_patience=2)).fit([data.x1, data.x2])


def test_explicit_validation_loader(data):
    ds = TensorDataset(torch.from_numpy(data.x1[:512]), torch.from_numpy(data.x2[:512]))
    held = TensorDataset(torch.from_numpy(data.x1[512:]), torch.from_numpy(data.x2[512:]))
    est = DisentangledSSL(**SMALL).fit(DataLoader(ds, batch_size=64, drop_last=True),
                                       validation=DataLoader(held, batch_size=64))
    assert "val_loss" in est.history_["specific"][-1]


def test_log_dir_writes_every_epoch_of_every_stage(tmp_path, data):
    est = DisentangledSSL(**dict(SMALL, log_dir=str(tmp_path / "logs"),
                                 validation_fraction=0.2)).fit([data.x1, data.x2])
    with open(tmp_path / "logs" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["stage"], r["epoch"]) for r in rows] == [
        ("shared", "1"), ("shared", "2"), ("specific", "1"), ("specific", "2")]
    assert float(rows[-1]["val_loss"]) == pytest.approx(est.history_["specific"][-1]["val_loss"])


def test_tokens_from_a_loader_need_the_vocabulary(data):
    ids = torch.randint(1, 20, (256, 6))
    ds = TensorDataset(ids, torch.from_numpy(data.x1[:256]))
    with pytest.raises(DSSLError, match=r"declared 'tokens' but a data loader does not show "
                                        r"its vocabulary"):
        DisentangledSSL(**dict(SMALL, modalities=("tokens", "vector"))).fit(
            DataLoader(ds, batch_size=64))


def test_log_dir_writes_tensorboard_scalars_when_installed(tmp_path, data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    DisentangledSSL(**dict(SMALL, log_dir=str(tmp_path))).fit([data.x1, data.x2])
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"shared/loss", "shared/infonce", "specific/loss"} <= set(scalars)
    assert [e.step for e in events.Scalars("shared/loss")] == [1, 2]


def test_a_dataloader_over_a_stream_of_batches_with_workers():
    """DataLoader(stream, batch_size=None, num_workers=2): the workers split the batches (none
    repeated) and an epoch is the stream's batches."""
    stream = SyntheticStream(n_rows=256 * 6, batch_size=256, seed=0, shared_dim=4,
                             private_dim=4, x_dim=8)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    sums = sorted(float(b[0].sum()) for b in loader)
    assert sums == sorted(float(b[0].sum()) for b in stream) and len(set(sums)) == 6
    est = DisentangledSSL(**dict(SMALL, specific_epochs=0)).fit(loader)
    assert len(est.history_["shared"]) == 2
