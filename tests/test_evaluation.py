from __future__ import annotations

import numpy as np
import pytest

from disentangled_ssl import DSSLError, linear_probe, retrieval_metrics


def test_probe_separable_and_random(rng):
    x = rng.normal(size=(600, 5))
    labels = {"sep": (x[:, 0] > 0).astype(int), "noise": rng.integers(0, 2, 600)}
    acc = linear_probe(x[:400], {k: v[:400] for k, v in labels.items()},
                       x[400:], {k: v[400:] for k, v in labels.items()})
    assert acc["sep"] > 0.95
    assert abs(acc["noise"] - 0.5) < 0.1


def test_probe_is_scale_invariant(rng):
    x = rng.normal(size=(400, 3))
    y = {"y": (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)}
    a = linear_probe(x[:300], {"y": y["y"][:300]}, x[300:], {"y": y["y"][300:]})
    scaled = x * np.array([1000.0, 0.001, 1.0])
    b = linear_probe(scaled[:300], {"y": y["y"][:300]}, scaled[300:], {"y": y["y"][300:]})
    assert a == pytest.approx(b, abs=0.02)


def test_probe_errors(rng):
    x = rng.normal(size=(10, 2))
    with pytest.raises(DSSLError, match="label 'y' has a single class"):
        linear_probe(x, {"y": np.zeros(10)}, x, {"y": np.zeros(10)})
    with pytest.raises(DSSLError, match="train features have 2 columns, test features 3"):
        linear_probe(x, {"y": np.arange(10) % 2}, rng.normal(size=(4, 3)), {"y": np.zeros(4)})


def test_retrieval_perfect_and_known_ranks():
    x = np.eye(4)
    assert retrieval_metrics(x, x) == {"top1": 1.0, "top5": 1.0, "top10": 1.0, "mrr": 1.0}
    items = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # query0 -> correct item0 (cos 0), ranked 3rd; query1 -> item1 (cos 0), ranked 3rd;
    # query2 -> item2 (cos .707), item1 has cos 1 -> rank 2
    out = retrieval_metrics(queries, items, ks=(1, 2))
    assert out["top1"] == 0.0
    assert out["top2"] == pytest.approx(1 / 3)
    assert out["mrr"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)


def test_retrieval_random_near_chance_and_chunking(rng):
    q, v = rng.normal(size=(500, 16)), rng.normal(size=(500, 16))
    out = retrieval_metrics(q, v)
    assert out["top10"] < 0.06
    assert retrieval_metrics(q, v, chunk_size=7) == out


def test_retrieval_errors():
    with pytest.raises(DSSLError, match="paired 2-D arrays of equal shape"):
        retrieval_metrics(np.zeros((3, 2)), np.zeros((4, 2)))
