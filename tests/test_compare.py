"""``dssl compare``: planning, aggregation, the claim check, outputs and the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from disentangled_ssl import DSSLError, make_synthetic
from disentangled_ssl.cli import main
from disentangled_ssl.data.io import save_paired
from disentangled_ssl.data.synthetic import PairedData
from disentangled_ssl.experiments.compare import (
    CSV_FIELDS,
    CompareConfig,
    plan,
    run_compare,
    summary_table,
)
from disentangled_ssl.experiments.results import configs

pytestmark = pytest.mark.usefixtures("one_thread_module")  # conftest


# ------------------------------------------------------------------ planning
def test_default_plan_sweeps_every_method():
    settings = plan(CompareConfig())
    by_method: dict[str, list] = {}
    for s in settings:
        by_method.setdefault(s.method, []).append(s)
    assert list(by_method) == ["disentangled_ssl", "joint", "focal", "dmvae"]
    assert [s.value for s in by_method["dmvae"]] == [1e-6, 1e-5, 1e-4]
    assert by_method["disentangled_ssl"][0].params == {"beta": 0.1, "lam": 0.1}
    assert by_method["joint"][2].params == {"alpha": 1.0, "lam": 10.0}


def test_plan_with_overrides_and_single_setting_methods():
    config = CompareConfig(methods=("factorcl", "joint"), sweeps={"joint": ("alpha", [0.5])},
                           fixed={"joint": {"lam": 2.0}})
    settings = plan(config)
    assert [(s.method, s.dial, s.value) for s in settings] == [
        ("factorcl", "", None), ("joint", "alpha", 0.5)]
    assert settings[1].params == {"alpha": 0.5, "lam": 2.0}


@pytest.mark.parametrize("config,message", [
    (CompareConfig(methods=("bogus",)), "unknown method 'bogus'; choose one of: clip"),
    (CompareConfig(methods=("dmvae",), sweeps={"dmvae": ("lam", [1.0])}),
     "method 'dmvae' has no dial 'lam' to sweep (its dials: alpha)"),
    (CompareConfig(methods=("clip",), sweeps={"clip": ("lam", [1.0])}),
     "method 'clip' has no dial 'lam' to sweep (its dials: none)"),
    (CompareConfig(methods=("joint",), fixed={"joint": {"beta": 1.0}}),
     "method 'joint' has no parameter 'beta'"),
    (CompareConfig(methods=("joint",), sweeps={"focal": ("lam", [1.0])}),
     "not among the compared methods"),
    (CompareConfig(methods=("joint",), sweeps={"joint": ("lam", [-1.0])}),
     "joint: lam must be >= 0"),
    (CompareConfig(methods=("joint",), representations=("specific",)),
     "unknown representation 'specific'"),
    (CompareConfig(methods=()), "no methods to compare"),
])
def test_plan_errors_name_the_problem(config, message):
    with pytest.raises(DSSLError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan(config)


# ------------------------------------------------------------------ aggregation, claim check
def _rows(method, dials, y1s, ycs):
    """Tidy rows (the engine's schema) of one setting's specific1 probes, one seed each."""
    rows = []
    for seed, (y1, yc) in enumerate(zip(y1s, ycs)):
        for label, acc in (("y1", y1), ("yc", yc)):
            rows.append({"key": f"{method}{dials}{seed}", "stage": "specific",
                         "beta": dials.get("beta", ""), "lam": dials["lam"],
                         "method": method, "alpha": dials.get("alpha", ""), "seed": seed,
                         "representation": "specific1", "label": label, "metric": "accuracy",
                         "value": acc, "train_seconds": 1.0, "eval_seconds": 0.1})
    return rows


def test_aggregate_and_claim_check():
    rows = (_rows("disentangled_ssl", {"beta": 0.1, "lam": 1.0}, [0.73, 0.75], [0.56, 0.58])
            + _rows("joint", {"alpha": 1.0, "lam": 1.0}, [0.73, 0.73], [0.64, 0.66])
            + _rows("joint", {"alpha": 1.0, "lam": 10.0}, [0.76, 0.78], [0.60, 0.60]))
    stats = {(c.dials["method"], c.dials["lam"]): c for c in configs(rows, "specific")}
    mean, std, n = stats[("disentangled_ssl", 1.0)].stat("specific1.y1")
    assert (mean, n) == (pytest.approx(0.74), 2) and std == pytest.approx(0.01)
    text = summary_table(rows, CompareConfig(methods=("disentangled_ssl", "joint")))
    assert "| disentangled_ssl | lam=1 | specific1 | 0.740 ± 0.010 | 0.570 ± 0.010 |" in text
    assert "| joint | lam=1 | 0.730 | 0.650 | lam=1 | yes |" in text
    # joint at λ = 10 covers y1 better (0.77 > 0.74 + tolerance): not dominated
    assert "| joint | lam=10 | 0.770 | 0.600 | – | NO |" in text


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    data = make_synthetic(n_samples=600, shared_dim=8, private_dim1=8, private_dim2=8,
                          x_dim1=16, x_dim2=16, seed=0)
    return save_paired(tmp_path_factory.mktemp("cmp") / "tiny.npz", data)


def test_cli_compare_end_to_end(tiny_npz, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(tiny_npz), "--methods", "disentangled_ssl,clip,dmvae",
            "--sweep", "disentangled_ssl:lam=0.1,1", "--sweep", "dmvae:alpha=1e-5",
            "--seeds", "0,1", "--epochs", "1", "--shared-epochs", "1", "--specific-epochs", "1",
            "--batch-size", "64", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert "Claim check" in capsys.readouterr().out
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_FIELDS
    # 4 settings × 2 seeds × 3 representations × 3 labels
    assert len(rows) == 4 * 2 * 3 * 3
    assert {r["representation"] for r in rows if r["method"] == "clip"} == {
        "shared", "shared1", "shared2"}
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    # Step 1 is trained once per seed and shared by the λ sweep: identical shared probes.
    shared = {(r["seed"], r["label"], r["dial_value"]): r["accuracy"] for r in rows
              if r["method"] == "disentangled_ssl" and r["representation"] == "shared"}
    for (seed, label, value), acc in shared.items():
        assert acc == shared[(seed, label, "0.1" if value == "1.0" else value)]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    trained = [e["event"] for e in events if e["event"].startswith("fit")]
    # per seed: one step 1 for both λ, two step 2, one fit each of clip and dmvae
    assert sorted(trained) == ["fit"] * 4 + ["fit_shared"] * 2 + ["fit_specific"] * 4
    assert (out / "figure3b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "run.json").read_text())["n_train"] == 480
    # an existing output folder is refused without --overwrite
    assert main(argv) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    # --overwrite starts afresh: nothing of the earlier run's trials is reused
    (out / "keep.txt").write_text("a user's file")
    again = ["compare", "--data", str(tiny_npz), "--methods", "clip", "--seeds", "0,1",
             "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--quiet", "--out",
             str(out), "--overwrite"]
    assert main(again) == 0, capsys.readouterr().err
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sorted(e["event"] for e in events if e["event"].startswith("fit")) == ["fit"] * 2
    assert (out / "keep.txt").read_text() == "a user's file"


@pytest.mark.parametrize("extra,message", [
    (["--methods", "jointopt"], "unknown method 'jointopt'"),
    (["--sweep", "joint=0.1"], "--sweep expects METHOD:NAME=VALUE"),
    (["--set", "joint:alpha=1,2"], "needs exactly one value"),
])
def test_cli_compare_errors(extra, message, tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dssl: error:") and message in err


def test_compare_needs_labels(tmp_path):
    rng = np.random.default_rng(0)
    data = PairedData(rng.normal(size=(300, 4)).astype("float32"),
                      rng.normal(size=(300, 4)).astype("float32"))
    with pytest.raises(DSSLError, match="no labels to probe"):
        run_compare(CompareConfig(methods=("clip",), seeds=(0,)), tmp_path / "o", data=data)
