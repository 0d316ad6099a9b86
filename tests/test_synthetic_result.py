"""The paper's synthetic result at the issue's budget (n=20000, seed 0, 5 + 5 epochs).

The authors' code gives shared .751 (yc) / .644 (y1) / .651 (y2) and specific1 .739 (y1) /
.594 (yc) / .500 (y2) at this budget on a 2-core CPU.
"""

from __future__ import annotations

import pytest

from disentangled_ssl import DisentangledSSL, linear_probe, make_synthetic


@pytest.fixture(scope="module")
def split():
    return make_synthetic(n_samples=20000, seed=0).split(0.2, seed=0)


def _shared_probe(split, beta):
    train, test = split
    est = DisentangledSSL(beta=beta, shared_epochs=5, specific_epochs=5, random_state=0,
                          device="cpu", verbose=False).fit_shared(train.x1, train.x2)
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    return est, linear_probe(tr.shared, train.labels, te.shared, test.labels)


def test_beta1_lambda1_shared_and_specific(split):
    train, test = split
    est, shared = _shared_probe(split, beta=1.0)
    assert shared["yc"] >= 0.73
    assert shared["y1"] <= 0.68 and shared["y2"] <= 0.68
    est.set_params(lam=1.0)
    est.fit_specific(train.x1, train.x2)
    tr, te = est.transform(train.x1, train.x2), est.transform(test.x1, test.x2)
    spec1 = linear_probe(tr.specific1, train.labels, te.specific1, test.labels)
    assert spec1["y1"] >= 0.72
    assert spec1["yc"] <= 0.62
    assert spec1["y2"] <= 0.53
    spec2 = linear_probe(tr.specific2, train.labels, te.specific2, test.labels)
    assert spec2["y2"] >= 0.65 and spec2["y1"] <= 0.53  # symmetric for modality 2


def test_large_beta_drops_private_information(split):
    _, low = _shared_probe(split, beta=0.0)
    _, high = _shared_probe(split, beta=100.0)
    assert high["y1"] < low["y1"]
    assert high["y2"] < low["y2"]
