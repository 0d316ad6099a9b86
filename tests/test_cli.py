from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from disentangled_ssl.cli import main

TINY = ["--shared-epochs", "1", "--specific-epochs", "1", "--batch-size", "64", "--quiet",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    assert main(["generate", "--out", str(d / "data.npz"), "--n-samples", "600"]) == 0
    assert main(["fit", "--data", str(d / "data.npz"), "--out", str(d / "model"),
                 "--shared-dim", "8", "--specific-dim", "8", "--hidden-dim", "32", *TINY]) == 0
    return d


def test_generate_fit_transform_evaluate(workdir, capsys):
    data = np.load(workdir / "data.npz")
    assert data["x1"].shape == (600, 100) and set(data["yc"]) == {0, 1}
    assert (workdir / "model" / "model.safetensors").is_file()
    assert main(["transform", "--model", str(workdir / "model"), "--data",
                 str(workdir / "data.npz"), "--out", str(workdir / "emb.npz")]) == 0
    emb = np.load(workdir / "emb.npz")
    assert sorted(emb.files) == ["shared1", "shared2", "specific1", "specific2"]
    assert emb["specific1"].shape == (600, 8)
    assert main(["evaluate", "--model", str(workdir / "model"), "--data",
                 str(workdir / "data.npz"), "--out", str(workdir / "metrics.json")]) == 0
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert set(metrics["probe"]) == {"shared", "shared1", "shared2", "specific1", "specific2"}
    assert 0.0 <= metrics["probe"]["shared"]["yc"] <= 1.0
    assert set(metrics["retrieval"]) == {"top1", "top5", "top10", "mrr"}
    assert "retrieval shared1 -> shared2" in capsys.readouterr().out


def test_fit_from_separate_files(workdir, tmp_path):
    data = np.load(workdir / "data.npz")
    np.save(tmp_path / "a.npy", data["x1"])
    header = ",".join(f"f{i}" for i in range(100))
    np.savetxt(tmp_path / "b.csv", data["x2"], delimiter=",", header=header, comments="")
    assert main(["fit", "--x1", str(tmp_path / "a.npy"), "--x2", str(tmp_path / "b.csv"),
                 "--out", str(tmp_path / "m"), "--hidden-dim", "16", *TINY]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "--data", "missing.npz", "--out", "{d}/new"], "file not found: missing.npz"),
        (["fit", "--data", "{d}/data.npz", "--out", "{d}/model"],
         "already exists; pass --overwrite to replace it"),
        (["fit", "--out", "{d}/new2"], "give the paired input as --data FILE.npz or as --x1"),
        (["fit", "--data", "{d}/data.npz", "--out", "{d}/new3", "--beta", "-1", *TINY],
         "beta must be a finite number >= 0, got -1.0"),
        (["transform", "--model", "{d}/nomodel", "--data", "{d}/data.npz", "--out", "{d}/e.npz"],
         "is not a saved DisentangledSSL model"),
        (["generate", "--out", "{d}/data.npz"], "already exists; pass --overwrite"),
    ],
)
def test_cli_errors_exit_2_with_one_line(workdir, capsys, argv, message):
    argv = [a.replace("{d}", str(workdir)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dssl: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_cli_reproduce_tiny(tmp_path):
    out = tmp_path / "repro"
    code = main(["reproduce", "synthetic", "--out", str(out), "--n-samples", "1200",
                 "--betas", "0,1", "--step2-betas", "1", "--lambdas", "0,1", *TINY])
    assert code == 0
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    shared = [r for r in rows if r["stage"] == "shared"]
    specific = [r for r in rows if r["stage"] == "specific"]
    assert len(shared) == 2 * 3  # 2 betas x 3 labels
    assert len(specific) == 2 * 2 * 3  # 2 lambdas x {specific1, specific2} x 3 labels
    assert {r["representation"] for r in specific} == {"specific1", "specific2"}
    for name in ("figure3a.png", "figure3b.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1 |" in (out / "summary.md").read_text()


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "disentangled_ssl.cli", "--version"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("dssl ")


def test_fit_bf16_on_a_cpu_without_bf16_prints_one_warning_line(workdir, tmp_path, capsys,
                                                                x86_cpu):
    x86_cpu(bf16_instructions=False)
    assert main(["fit", "--data", str(workdir / "data.npz"), "--out", str(tmp_path / "m"),
                 "--hidden-dim", "16", "--bf16", *TINY]) == 0
    err = capsys.readouterr().err.splitlines()
    # Both stages train in bf16; the warning is printed once, without a source location.
    assert [line for line in err if "warning" in line.lower()] == [
        "dssl: warning: bf16=True but this CPU has no bfloat16 instructions (AVX512-BF16 or "
        "AMX): bfloat16 is emulated there and training runs several times slower than float32; "
        "leave bf16 off on this device"
    ]


def test_every_command_module_registers_its_commands_in_order():
    from disentangled_ssl.cli import build_parser
    from disentangled_ssl.cli.main import COMMAND_MODULES

    assert [m.rsplit(".", 1)[1] for m in COMMAND_MODULES] == [
        "fit", "reproduce", "compare", "sweep", "benchmark", "counterfactual"]
    commands = list(build_parser()._subparsers._group_actions[0].choices)
    assert commands[:6] == ["generate", "fit", "transform", "evaluate", "reproduce", "compare"]
    assert {"sweep", "select", "benchmark"} <= set(commands[6:])
