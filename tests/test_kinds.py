"""Modality kinds end to end: planted shared and specific factors are recovered by the kinds'
default encoders (and not by what flattening or mean-pooling reaches), save/load, custom
augmentations, padded sequences, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from disentangled_ssl import DisentangledSSL
from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.sequences import pack_sequences
from disentangled_ssl.data.toy import make_image_captions, make_sequence_pair
from disentangled_ssl.evaluation import linear_probe
from disentangled_ssl.nn.modalities import Image, Sequence, Tokens, Vector

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small CNNs and Transformers


FAST = dict(batch_size=128, shared_dim=16, specific_dim=16, hidden_dim=64, lr=1e-3,
            random_state=0, verbose=False, device="cpu")


def _probes(est, train, test, views_train, views_test) -> dict[str, float]:
    a, b = est.transform(views_train), est.transform(views_test)
    out = {"shared": linear_probe(a.shared1, train.labels, b.shared1, test.labels)["shared"]}
    if a.specific_list:
        for i in (1, 2):
            spec_a, spec_b = a.as_dict()[f"specific{i}"], b.as_dict()[f"specific{i}"]
            out[f"specific{i}"] = linear_probe(spec_a, train.labels, spec_b,
                                               test.labels)[f"specific{i}"]
    return out


@pytest.fixture(scope="module")
def sequences():
    data = make_sequence_pair(2048, steps=12, features=4, seed=0)
    return data.split(0.25, seed=0)


def test_time_average_of_the_sequences_carries_nothing(sequences):
    train, _ = sequences
    means = train.x1.mean(axis=1)  # (n, features)
    for label in ("shared", "specific1"):
        y = train.labels[label]
        gap = np.abs(means[y == 1].mean(0) - means[y == 0].mean(0))
        assert gap.max() < 1e-6  # by construction: every row is centred over time
    assert np.abs(means).max() < 1e-5


def test_sequence_encoders_recover_order_factors_mean_pooling_cannot(sequences):
    """Shared code -> the shared factor, each specific code -> its own factor, from
    sequences whose time averages are uninformative; the vector MLP on the time-averaged
    input stays at chance on the same budget."""
    train, test = sequences
    kw = dict(FAST, shared_epochs=10, specific_epochs=8)
    est = DisentangledSSL(modalities=Sequence(d_model=32, n_layers=1), **kw).fit(
        [train.x1, train.x2])
    got = _probes(est, train, test, [train.x1, train.x2], [test.x1, test.x2])
    assert got["shared"] > 0.85 and got["specific1"] > 0.8 and got["specific2"] > 0.8, got
    mean = [train.x1.mean(1), train.x2.mean(1)], [test.x1.mean(1), test.x2.mean(1)]
    pooled = DisentangledSSL(**kw).fit(mean[0])
    base = _probes(pooled, train, test, *mean)
    assert max(base.values()) < 0.6, base


def test_image_and_token_encoders_recover_planted_factors():
    """Images + token captions: the shared code predicts the shape (4 classes) from either
    modality, the image's specific code its colour, the caption's specific code its mood
    word; better than the vector MLP on flattened pixels / ids on the same budget."""
    data, vocabulary = make_image_captions(2048, image_size=16, seed=0)
    assert vocabulary[0] == "<pad>"
    train, test = data.split(0.25, seed=0)
    kw = dict(FAST, shared_epochs=12, specific_epochs=8)
    est = DisentangledSSL(modalities=(Image(cnn_width=16), Tokens(d_model=32, n_layers=1)),
                          **kw).fit([train.x1, train.x2])
    assert est.modalities_[1].vocab_size == len(vocabulary)
    got = _probes(est, train, test, [train.x1, train.x2], [test.x1, test.x2])
    emb = est.transform([test.x1, test.x2])
    caption_shared = linear_probe(est.transform([train.x1, train.x2]).shared2, train.labels,
                                  emb.shared2, test.labels)["shared"]
    assert got["shared"] > 0.85 and caption_shared > 0.85, (got, caption_shared)  # chance 0.25
    assert got["specific1"] > 0.9 and got["specific2"] > 0.9, got
    flat = [v.reshape(len(v), -1).astype(np.float32) for v in (train.x1, train.x2)]
    flat_test = [v.reshape(len(v), -1).astype(np.float32) for v in (test.x1, test.x2)]
    base = _probes(DisentangledSSL(**kw).fit(flat), train, test, flat, flat_test)
    assert got["shared"] > base["shared"] and got["specific2"] > base["specific2"] + 0.2, (
        got, base)


def test_padded_sequences_use_their_lengths():
    """(values, lengths): padding is ignored, so garbage in the padded steps changes
    nothing; unpadded rows at transform count as full length."""
    rng = np.random.default_rng(0)
    rows = [rng.standard_normal((int(t), 3)).astype(np.float32) for t in rng.integers(3, 9, 256)]
    values, lengths = pack_sequences(rows)
    vec = rng.standard_normal((256, 5)).astype(np.float32)
    est = DisentangledSSL(**dict(FAST, batch_size=64, shared_epochs=1, specific_epochs=1)).fit(
        [(values, lengths), vec])
    assert est.modalities_[0] == Sequence(features=3, steps=values.shape[1], masked=True)
    garbage = values.copy()
    for k, n in enumerate(lengths):
        garbage[k, n:] = 1e3
    a = est.transform([(values, lengths), vec]).shared1
    b = est.transform([(garbage, lengths), vec]).shared1
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    full = np.full(256, values.shape[1])
    np.testing.assert_allclose(est.transform([values, vec]).shared1,
                               est.transform([(values, full), vec]).shared1, atol=1e-6)
    with pytest.raises(DSSLError, match=r"lengths must be in 0\.\.8"):
        est.transform([(values, lengths + 20), vec])


def test_kinds_save_load_round_trip(tmp_path):
    data, _ = make_image_captions(256, image_size=12, seed=1)
    est = DisentangledSSL(modalities=("image", Tokens(vocab_size=30)),
                          **dict(FAST, batch_size=64, shared_epochs=1, specific_epochs=1)).fit(
        [data.x1, data.x2])
    est.save(tmp_path / "m")
    loaded = DisentangledSSL.load(tmp_path / "m", device="cpu")
    assert loaded.modalities_ == est.modalities_
    a, b = est.transform([data.x1, data.x2]), loaded.transform([data.x1, data.x2])
    assert all(np.array_equal(a.as_dict()[k], b.as_dict()[k]) for k in a.as_dict())
    bad = data.x2.copy()
    bad[3, 2] = 30
    with pytest.raises(DSSLError, match=r"X2 has token id 30 at row 3, position 2, outside the "
                                        r"vocabulary of 30 ids \(0\.\.29\)"):
        loaded.transform([data.x1, bad])


class Shift(nn.Module):
    """A custom augmentation: adds a constant (so its use is visible in the loss)."""

    rowwise = True

    def __init__(self, by: float) -> None:
        super().__init__()
        self.by = by
        self.calls = 0

    def forward(self, x):
        return x + self.by


def test_custom_augmentations_replace_the_defaults():
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((256, 6)).astype(np.float32)
    x2 = rng.standard_normal((256, 4, 3)).astype(np.float32)
    params = dict(FAST, batch_size=64, shared_epochs=1, specific_epochs=1)
    plain = DisentangledSSL(**params).fit([x1, x2])
    custom = DisentangledSSL(augmentations=[Shift(5.0), None], **params).fit([x1, x2])
    assert custom.history_["shared"][0]["loss"] != plain.history_["shared"][0]["loss"]
    with pytest.raises(DSSLError, match="augmentations has 3 entries for 2 modalities"):
        DisentangledSSL(augmentations=[None, None, None], **params).fit([x1, x2])


def test_vector_kind_is_today_s_model():
    """modalities='vector' (and 'auto' on 2-D arrays) builds exactly the MLP model."""
    rng = np.random.default_rng(0)
    x1, x2 = (rng.standard_normal((256, d)).astype(np.float32) for d in (6, 5))
    params = dict(FAST, batch_size=64, shared_epochs=1, specific_epochs=1)
    a = DisentangledSSL(**params).fit([x1, x2])
    b = DisentangledSSL(modalities=(Vector(), "vector"), **params).fit([x1, x2])
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_constant_features_are_kept_and_standardised_as_scikit_learn_does():
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((256, 6)).astype(np.float32)
    x1[:, 2] = 1.0  # a pixel that is always white, a word never seen in training
    x2 = rng.standard_normal((256, 4)).astype(np.float32)
    est = DisentangledSSL(standardize=True, **dict(FAST, batch_size=64, shared_epochs=1,
                                                   specific_epochs=1)).fit([x1, x2])
    assert float(est.model_.input_scale_0[2]) == 1.0
    assert float(est.model_.input_mean_0[2]) == 1.0
    test = x1.copy()
    test[:, 2] = 3.0
    assert np.isfinite(est.transform([test, x2]).shared1).all()


def test_images_and_tokens_are_never_standardised():
    data, _ = make_image_captions(256, image_size=12, seed=1)
    est = DisentangledSSL(modalities=("image", "tokens"), standardize=True,
                          **dict(FAST, batch_size=64, shared_epochs=1, specific_epochs=1)).fit(
        [data.x1, data.x2])
    assert not any(k.startswith("input_") for k in est.model_.state_dict())


def test_sequences_are_standardised_per_feature_over_real_steps():
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((256, 5, 3)) * [1, 10, 100] + [0, 5, -5]).astype(np.float32)
    lengths = rng.integers(2, 6, 256)
    vec = rng.standard_normal((256, 4)).astype(np.float32)
    est = DisentangledSSL(standardize=True, **dict(FAST, batch_size=64, shared_epochs=1,
                                                   specific_epochs=0)).fit(
        [(values, lengths), vec])
    real = np.concatenate([values[k, :n] for k, n in enumerate(lengths)])
    np.testing.assert_allclose(est.model_.input_mean_0.numpy(), real.mean(0), rtol=1e-4)
    np.testing.assert_allclose(est.model_.input_scale_0.numpy(), real.std(0), rtol=1e-4)


@pytest.mark.parametrize("method", ["clip", "simclr", "joint", "focal", "factorcl", "dmvae"])
def test_every_baseline_trains_on_sequences(method):
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((256, 6, 3)).astype(np.float32)
    x2 = rng.standard_normal((256, 5)).astype(np.float32)
    est = DisentangledSSL(method=method, modalities=(Sequence(d_model=16, n_layers=1),
                                                     "vector"),
                          **dict(FAST, batch_size=64, epochs=1)).fit([x1, x2])
    emb = est.transform([x1, x2])
    assert emb.shared1.shape == (256, 16) and np.isfinite(emb.shared1).all()


def test_dmvae_refuses_kinds_without_a_decoder():
    data, _ = make_image_captions(256, image_size=12, seed=1)
    with pytest.raises(DSSLError, match="method 'dmvae' reconstructs its input but has no "
                                        "decoder for 'image' modalities"):
        DisentangledSSL(method="dmvae", modalities=("image", "tokens"),
                        **dict(FAST, batch_size=64, epochs=1)).fit([data.x1, data.x2])


def test_custom_encoders_for_a_baseline():
    """Custom (B, T, d) -> (B, dim) encoders work for a one-stage baseline too."""
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((256, 6, 3)).astype(np.float32)
    x2 = rng.standard_normal((256, 5)).astype(np.float32)

    def gru() -> nn.Module:
        class Last(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.rnn, self.out = nn.GRU(3, 16, batch_first=True), nn.Linear(16, 16)

            def forward(self, x):
                return self.out(self.rnn(x)[0][:, -1])

        return Last()

    for method in ("factorcl", "dmvae"):
        est = DisentangledSSL(method=method, shared_encoders=[gru(), nn.Linear(5, 16)],
                              specific_encoders=[gru(), nn.Linear(5, 16)],
                              **dict(FAST, batch_size=64, epochs=1)).fit([x1, x2])
        assert np.isfinite(est.transform([x1, x2]).specific1).all()
