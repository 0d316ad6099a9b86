"""``dssl compare``: loss histories and curves, the convergence check, the learning-rate
selection on validation data, the untrained reference and DMVAE's diagnostics."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from disentangled_ssl import DisentangledSSL, make_synthetic
from disentangled_ssl.cli import main
from disentangled_ssl.data.io import save_paired
from disentangled_ssl.experiments.compare import (
    CSV_FIELDS,
    CURVE_FIELDS,
    SELECTION_FIELDS,
    CompareConfig,
    loss_change,
    loss_noise,
    plan,
)
from disentangled_ssl.experiments.trial import dmvae_diagnostics

PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread_module")  # conftest


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(n_samples=600, shared_dim=8, private_dim1=8, private_dim2=8,
                          x_dim1=16, x_dim2=16, seed=0)


@pytest.fixture(scope="module")
def tiny_npz(tiny, tmp_path_factory):
    return save_paired(tmp_path_factory.mktemp("conv") / "tiny.npz", tiny)


def _csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ the convergence measure
def test_loss_change_is_the_last_window_share_of_the_range():
    losses = [10.0, 5.0, 3.0, 2.5, 2.2, 2.1, 2.05, 2.02, 2.01, 2.0]
    # k = round(0.1 * 10) = 1: (L[9] - L[10]) / (10 - 2)
    assert loss_change(losses) == pytest.approx(0.01 / 8.0)
    # the last half: k = 5, (L[5] - L[10]) / 8
    assert loss_change(losses, 0.5) == pytest.approx(0.2 / 8.0)
    # defined for a loss that crosses zero, positive while still falling
    assert loss_change([1.0, -0.5, -1.0]) == pytest.approx(0.5 / 2.0)
    assert loss_change([1.0, 2.0]) == pytest.approx(-1.0)
    assert loss_change([3.0]) is None and loss_change([2.0, 2.0]) is None


def test_loss_noise_is_one_epoch_means_noise_over_the_range():
    # second half [2, 3, 2, 3]: differences +1, -1, +1 (std 0.943); range 10 - 2 = 8
    losses = [10.0, 6.0, 4.0, 3.0, 2.0, 3.0, 2.0, 3.0]
    assert loss_noise(losses) == pytest.approx(np.std([1.0, -1.0, 1.0]) / np.sqrt(2) / 8)
    assert loss_noise([3.0, 2.0, 1.0]) is None  # fewer than 3 epochs in the second half


# ------------------------------------------------------------------ histories, curves, reference
def test_compare_writes_histories_curves_and_the_untrained_reference(tiny_npz, tmp_path,
                                                                       capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(tiny_npz), "--methods", "disentangled_ssl,dmvae",
            "--sweep", "disentangled_ssl:lam=0.1,1", "--sweep", "dmvae:alpha=1e-5",
            "--seeds", "0,1", "--epochs", "3", "--shared-epochs", "2", "--specific-epochs", "3",
            "--batch-size", "64", "--lr", "1e-3", "--validation-fraction", "0.25",
            "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Did each objective converge?" in printed and "DMVAE: has it trained?" in printed
    # one lr: no selection, and results.csv as before (columns, no lr in the settings)
    assert not (out / "selection.csv").exists() and not (out / "selection").exists()
    results = _csv(out / "results.csv")
    assert tuple(results[0]) == CSV_FIELDS
    assert all("lr" not in json.loads(r["settings"]) for r in results)
    assert json.loads((out / "run.json").read_text())["config"]["lr"] == 1e-3

    curves = _csv(out / "loss_curves.csv")
    assert tuple(curves[0]) == CURVE_FIELDS
    assert {r["phase"] for r in curves} == {"compare"}
    assert {r["lr"] for r in curves} == {"0.001"}
    loss = {(r["method"], r["dial_value"], r["seed"], r["stage"], int(r["epoch"])): r["value"]
            for r in curves if r["term"] == "loss"}
    val = {k[:4] for k in (
        (r["method"], r["dial_value"], r["seed"], r["stage"], r["epoch"]) for r in curves
        if r["term"] == "val_loss")}
    # every epoch of every run: DisentangledSSL 2 step-1 + 3 step-2 epochs per λ, DMVAE 3
    for seed in ("0", "1"):
        for lam in ("0.1", "1.0"):
            assert [e for (m, d, s, st, e) in loss if (m, d, s, st) == (
                "disentangled_ssl", lam, seed, "shared")] == [1, 2]
            assert [e for (m, d, s, st, e) in loss if (m, d, s, st) == (
                "disentangled_ssl", lam, seed, "specific")] == [1, 2, 3]
        assert [e for (m, d, s, st, e) in loss if (m, s, st) == ("dmvae", seed, "dmvae")] == [
            1, 2, 3]
    assert ("dmvae", "1e-05", "0", "dmvae") in val  # the validation terms, per epoch
    # the curves are the estimators' history_: the trial records hold them
    record = next(json.loads(p.read_text()) for p in (out / "trials").glob("*.json")
                  if json.loads(p.read_text())["dials"].get("method") == "dmvae"
                  and json.loads(p.read_text())["seed"] == 0)
    assert [e["loss"] for e in record["history"]["dmvae"]] == pytest.approx(
        [float(loss[("dmvae", "1e-05", "0", "dmvae", k)]) for k in (1, 2, 3)], rel=1e-5)
    assert (out / "loss_curves.png").read_bytes()[:8] == PNG

    # the untrained reference: every method, every seed, the modality-1 code's probes
    untrained = _csv(out / "untrained.csv")
    assert tuple(untrained[0]) == CSV_FIELDS
    assert {(r["method"], r["seed"]) for r in untrained if r["representation"] == "specific1"
            and r["label"] == "y1"} == {(m, s) for m in ("disentangled_ssl", "dmvae")
                                        for s in ("0", "1")}
    summary = (out / "summary.md").read_text()
    assert "| disentangled_ssl | untrained | specific1 |" in summary
    assert "| dmvae | untrained | specific1 |" in summary
    assert "| disentangled_ssl | every λ | shared | 2 |" in summary  # step 1 once per seed
    assert "| dmvae | alpha=1e-05 | dmvae | 3 |" in summary
    assert not {"lr", "seconds", "lam", "alpha"} & {r["term"] for r in curves}

    # --resume: the same command keeps every trial and writes the report again, training none
    events = (out / "events.jsonl").read_text()
    run_json = (out / "run.json").read_text()
    (out / "summary.md").unlink()
    assert main([*argv, "--resume"]) == 0
    assert (out / "events.jsonl").read_text() == events
    assert (out / "run.json").read_text() == run_json  # the record of the run that trained
    assert (out / "summary.md").read_text() == summary
    assert _csv(out / "results.csv") == results
    assert main([*argv, "--resume", "--overwrite"]) == 2
    assert "choose one" in capsys.readouterr().err


def test_untrained_reference_is_the_initialisation_fit_starts_from(tiny, tmp_path):
    from disentangled_ssl.experiments.compare import _initialised

    train, _ = tiny.split(0.2, seed=0)
    params = dict(shared_epochs=0, specific_epochs=2, batch_size=64, random_state=3,
                  device="cpu", verbose=False)
    ref = _initialised(DisentangledSSL(**params), train)
    fit0 = DisentangledSSL(**params).fit_shared(train.x1, train.x2)  # 0 epochs: no training
    np.testing.assert_array_equal(ref.transform(train.x1, train.x2).shared1,
                                  fit0.transform(train.x1, train.x2).shared1)
    assert ref.transform(train.x1, train.x2).specific1.shape == (len(train), 100)


def test_dmvae_diagnostics_match_a_direct_computation(tiny):
    train, test = tiny.split(0.2, seed=0)
    est = DisentangledSSL(method="dmvae", alpha=1e-5, epochs=2, batch_size=64, lr=1e-3,
                          random_state=0, device="cpu", verbose=False).fit(train.x1, train.x2)
    got = dmvae_diagnostics(est, test, batch_size=50)  # several batches
    model = est.model_
    with torch.no_grad():
        xs = [torch.from_numpy(test.x1), torch.from_numpy(test.x2)]
        mus = [model.shared[i].posterior(x) for i, x in enumerate(xs)]
        private = [model.specific[i].posterior(x) for i, x in enumerate(xs)]
        prec = [torch.exp(-lv) for _, lv in mus]
        mu_s = (mus[0][0] * prec[0] + mus[1][0] * prec[1]) / (prec[0] + prec[1])
        logvar_s = -torch.log(prec[0] + prec[1])
        for i, x in enumerate(xs):
            recon = model.extra["decoders"][i](torch.cat([private[i][0], mu_s], dim=1))
            r2 = 1 - float(((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
            assert got[f"r2_x{i + 1}"] == pytest.approx(r2, abs=1e-5)

        def kl(mu, lv):
            return float(-0.5 * (1 + lv - mu ** 2 - lv.exp()).sum()) / len(test)

        assert got["kl_private"] == pytest.approx(kl(*private[0]) + kl(*private[1]), rel=1e-4)
        assert got["kl_shared"] == pytest.approx(kl(mu_s, logvar_s), rel=1e-4)


# ------------------------------------------------------------------ learning-rate selection
def test_lr_is_chosen_by_the_validation_probe(tiny_npz, tmp_path, capsys):
    out = tmp_path / "sel"
    argv = ["compare", "--data", str(tiny_npz), "--methods", "joint,clip,dmvae",
            "--sweep", "joint:lam=0.1,1", "--set", "dmvae:lr=2e-4", "--seeds", "0,1",
            "--epochs", "2", "--batch-size", "64", "--lr", "1e-4,3e-3",
            "--select-fraction", "0.25", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert "Learning rate, chosen on validation data" in capsys.readouterr().out
    selection = _csv(out / "selection.csv")
    assert tuple(selection[0]) == SELECTION_FIELDS
    # seed 0 only; dmvae keeps its fixed lr and is not selected
    assert {r["seed"] for r in selection} == {"0"}
    assert {r["method"] for r in selection} == {"joint", "clip"}
    # the training rows (480) split 360 / 120; the test rows are not among them
    sel_run = json.loads((out / "selection" / "run.json").read_text())
    assert (sel_run["n_train"], sel_run["n_validation"]) == (360, 120)
    curves = _csv(out / "loss_curves.csv")
    chosen = {}
    for method, code in (("joint", "specific1"), ("clip", "shared1")):
        scores = {}
        for k, lr in enumerate(("0.0001", "0.003")):
            accs = [float(r["accuracy"]) for r in selection if r["method"] == method
                    and r["lr"] == lr and r["representation"] == code and r["label"] == "y1"]
            assert len(accs) == (2 if method == "joint" else 1)  # every dial value
            final = [float(r["value"]) for r in curves if r["phase"] == "selection"
                     and r["method"] == method and r["lr"] == lr and r["term"] == "loss"
                     and r["epoch"] == "2"]
            # the mean validation probe; a tie: the lower final loss, then the first lr
            scores[float(lr)] = (round(np.mean(accs), 9), -np.mean(final), -k)
        best = max(scores, key=scores.__getitem__)
        chosen[method] = best
        flagged = {float(r["lr"]) for r in selection if r["method"] == method
                   and r["chosen"] == "1"}
        assert flagged == {best}
    # the comparison trains each method at its chosen lr (dmvae at its fixed one)
    results = _csv(out / "results.csv")
    for r in results:
        lr = json.loads(r["settings"])["lr"]
        assert lr == chosen.get(r["method"], 2e-4)
    assert {(r["phase"], r["lr"]) for r in curves if r["method"] == "joint"} == {
        ("selection", "0.0001"), ("selection", "0.003"), ("compare", str(chosen["joint"]))}
    summary = (out / "summary.md").read_text()
    assert "| method | dial | lr | code |" in summary
    assert f"| joint | {chosen['joint']:g} |" in summary


@pytest.mark.parametrize("config,message", [
    (CompareConfig(methods=("joint",), lr_candidates=(1e-4, 1e-4)), "learning rates repeat"),
    (CompareConfig(methods=("joint",), lr_candidates=(1e-4, 0.0)), "lr must be > 0"),
    (CompareConfig(methods=("joint",), selection_fraction=1.0), "selection_fraction"),
    (CompareConfig(methods=("joint",), selection_epochs=0), "selection_epochs"),
    (CompareConfig(methods=("joint",), validation_fraction=-0.1), "validation_fraction"),
    (CompareConfig(methods=("joint",), fixed={"joint": {"lr": -1.0}}), "lr must be > 0"),
])
def test_selection_settings_are_checked(config, message):
    from disentangled_ssl import DSSLError

    with pytest.raises(DSSLError, match=message):
        plan(config)
