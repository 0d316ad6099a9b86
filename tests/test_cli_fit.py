"""``dssl fit``: flags generated from the estimator's signature and docstring, config files
(precedence, unknown keys, wrong types) and the data-parallel entry (``--distributed``)."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from disentangled_ssl import DisentangledSSL
from disentangled_ssl.cli import build_parser, main
from disentangled_ssl.cli._params import docstring_args, estimator_params
from disentangled_ssl.cli.fit import (
    CLI_DEFAULTS,
    EXCLUDED_PARAMS,
    PARAM_ALIASES,
    fit_params,
    resolve_params,
)

TINY = ["--shared-epochs", "1", "--specific-epochs", "1", "--batch-size", "32",
        "--hidden-dim", "16", "--shared-dim", "4", "--specific-dim", "4", "--quiet",
        "--device", "cpu"]
#: Excluded parameters that still have a (hand-written) flag of their own.
HAND_WRITTEN = {"modalities"}
#: One value per parameter, different from the defaults, as given on the command line.
FLAG_VALUES = {bool: None, int: "7", float: "0.5", str: "cuda:1"}


@pytest.fixture(scope="module")
def data_npz(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fitdata")
    assert main(["generate", "--out", str(folder / "d.npz"), "--n-samples", "128",
                 "--shared-dim", "4", "--private-dim", "4", "--x-dim", "12"]) == 0
    return folder / "d.npz"


def _fit_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["fit", "--data", "d.npz", "--out", "m", *argv])


def _signature_params() -> list[str]:
    return [n for n in inspect.signature(DisentangledSSL.__init__).parameters if n != "self"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ----------------------------------------------------------------------------- generated flags
def test_every_estimator_parameter_but_the_excluded_is_a_flag():
    """Fails when an estimator parameter is added without reaching ``dssl fit``."""
    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    dests = {a.dest for a in fit._actions}
    expected = set(_signature_params()) - set(EXCLUDED_PARAMS)
    assert expected <= dests, expected - dests
    # Excluded from the generated flags; ``modalities`` has a hand-written flag instead.
    assert not (set(EXCLUDED_PARAMS) - HAND_WRITTEN) & dests
    assert set(EXCLUDED_PARAMS) & dests >= HAND_WRITTEN
    assert set(EXCLUDED_PARAMS) <= set(_signature_params())  # no stale exclusion
    assert [p.name for p in fit_params()] == [n for n in _signature_params()
                                               if n not in EXCLUDED_PARAMS]
    assert {"validation_fraction", "early_stopping_patience", "num_workers", "log_dir"} <= {
        p.name for p in fit_params()}


def test_every_parameter_flag_is_in_the_help_with_its_docstring(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in set(_signature_params()) - set(EXCLUDED_PARAMS):
        assert "--" + name.replace("_", "-") in text, name
    assert "vMF concentration of the step-1 posterior. (default: 1000.0)" in text
    assert "--random-state INT, --seed INT seed (None draws one, stored as 'seed_'). " \
           "(default: 0)" in text
    assert "--bf16, --no-bf16" in text and "--quiet" in text
    for name, reason in EXCLUDED_PARAMS.items():
        assert f"{name}: {reason}" in text
    assert "torchrun --nproc_per_node=4 -m disentangled_ssl.cli fit --distributed" in text


@pytest.mark.parametrize("param", [p for p in fit_params()], ids=lambda p: p.name)
def test_each_parameter_flag_parses_to_the_estimator_parameter(param):
    value = FLAG_VALUES[param.kind]
    if param.kind is bool:
        flag = param.flag if not param.default else "--no-" + param.flag[2:]
        expected = not param.default
        argv = [flag]
    else:
        argv, expected = [param.flag, value], param.kind(value)
    assert resolve_params(_fit_args(*argv))[param.name] == expected
    DisentangledSSL(**resolve_params(_fit_args(*argv)))  # a valid constructor call


@pytest.mark.parametrize(("argv", "expected"), [
    (["--seed", "3"], {"random_state": 3}),
    (["--random-state", "none"], {"random_state": None}),
    (["--quiet"], {"verbose": False}),
    (["--bf16", "--standardize"], {"bf16": True, "standardize": True}),
    (["--beta", "1", "--lam", "2", "--shared-epochs", "50", "--specific-epochs", "30"],
     {"beta": 1.0, "lam": 2.0, "shared_epochs": 50, "specific_epochs": 30}),
    (["--method", "joint", "--alpha", "1", "--epochs", "5"],
     {"method": "joint", "alpha": 1.0, "epochs": 5}),
    (["--checkpoint-dir", "ck"], {"checkpoint_dir": "ck"}),
    (["--no-condition-specific-on-shared"], {"condition_specific_on_shared": False}),
])
def test_the_flags_of_earlier_versions_keep_working(argv, expected):
    assert resolve_params(_fit_args(*argv)) == {**CLI_DEFAULTS, **expected}


def test_resume_and_overwrite_stay_fit_flags():
    args = _fit_args("--checkpoint-dir", "ck", "--resume", "--overwrite")
    assert (args.resume, args.overwrite, args.distributed, args.backend) == (
        True, True, False, None)


def test_no_flag_given_leaves_the_estimator_defaults_but_the_seed():
    assert resolve_params(_fit_args()) == {"random_state": 0}
    assert DisentangledSSL(**resolve_params(_fit_args())).get_params()["batch_size"] == 256


def test_a_bad_flag_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        _fit_args("--epochs", "1.5")
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "dssl fit: error: argument --epochs: expected an integer or null, got '1.5'")


def test_a_new_parameter_becomes_a_flag_and_an_unsupported_type_is_named():
    class Wider(DisentangledSSL):
        """An estimator with one more parameter.

        Args:
            extra: a new dial,
                over two lines.
        """

        def __init__(self, extra: float = 2.0, **kw) -> None:
            super().__init__(**kw)
            self.extra = extra

    (param,) = estimator_params(Wider, {"kw": "not a flag"})
    assert (param.name, param.kind, param.default, param.help) == (
        "extra", float, 2.0, "a new dial, over two lines.")

    class Odd(DisentangledSSL):
        def __init__(self, table: dict | None = None) -> None:
            self.table = table

    with pytest.raises(TypeError, match=re.escape(
            "parameter 'table' has type dict | None, which is not a command-line type; "
            "support it or add it to the excluded parameters")):
        estimator_params(Odd, {})


def test_docstring_args_reads_grouped_entries_and_stops_at_the_next_section():
    doc = """Summary.

    Args:
        a, b: sizes
            of both.
        c: third.

    Returns:
        d: not an argument.
    """
    assert docstring_args(doc) == {"a": "sizes of both.", "b": "sizes of both.", "c": "third."}


# ----------------------------------------------------------------------------- --modalities
@pytest.mark.parametrize(("text", "expected"), [
    ("sequence,vector", ("sequence", "vector")), ("image", "image"),
    (" image , tokens ", ("image", "tokens")), ("auto,tokens", ("auto", "tokens")),
])
def test_modalities_flag_parses_to_the_estimator_parameter(text, expected):
    params = resolve_params(_fit_args("--modalities", text))
    assert params == {**CLI_DEFAULTS, "modalities": expected}
    DisentangledSSL(**params).validate_params()


@pytest.mark.parametrize(("text", "message"), [
    ("bogus", "--modalities: unknown kind 'bogus'; the kinds are auto, vector, sequence, image, "
     "tokens"),
    (",", "--modalities needs at least one kind, e.g. image,tokens"),
])
def test_an_unknown_modality_kind_exits_2_with_one_line(data_npz, tmp_path, capsys, text,
                                                        message):
    assert main(["fit", "--data", str(data_npz), "--out", str(tmp_path / "m"), "--modalities",
                 text, *TINY]) == 2
    assert _one_line_error(capsys) == "dssl: error: " + message
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def sequence_files(tmp_path_factory) -> tuple[Path, Path]:
    """(256, 6, 3) float sequences and (256, 5) vectors sharing two latent factors."""
    folder = tmp_path_factory.mktemp("kinds")
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(256, 2))
    seq = rng.normal(size=(256, 6, 3))
    seq[..., :2] += shared[:, None, :]
    np.save(folder / "seq.npy", seq.astype(np.float32))
    np.save(folder / "vec.npy", np.c_[shared, rng.normal(size=(256, 3))].astype(np.float32))
    return folder / "seq.npy", folder / "vec.npy"


KIND_TINY = [a if a != "32" else "64" for a in TINY]  # batch 64


def test_fit_and_transform_sequence_files(sequence_files, tmp_path, capsys, one_thread):
    """``dssl fit --modalities sequence,vector`` on a 3-D and a 2-D .npy, then ``dssl
    transform`` (which reads the kinds from the saved model) on the same files."""
    seq, vec = (str(p) for p in sequence_files)
    assert main(["fit", "--x1", seq, "--x2", vec, "--modalities", "sequence,vector", "--out",
                 str(tmp_path / "m"), *KIND_TINY]) == 0
    est = DisentangledSSL.load(tmp_path / "m", device="cpu")
    assert [k.kind for k in est.modalities_] == ["sequence", "vector"]
    assert (est.modalities_[0].steps, est.modalities_[0].features) == (6, 3)
    assert main(["transform", "--model", str(tmp_path / "m"), "--x1", seq, "--x2", vec,
                 "--out", str(tmp_path / "emb.npz"), "--device", "cpu"]) == 0
    emb = np.load(tmp_path / "emb.npz")
    assert sorted(emb.files) == ["shared1", "shared2", "specific1", "specific2"]
    assert all(emb[k].shape == (256, 4) and np.isfinite(emb[k]).all() for k in emb.files)
    api = est.transform(np.load(seq), np.load(vec))
    np.testing.assert_allclose(emb["shared1"], api.shared1, rtol=1e-5, atol=1e-6)
    np.save(tmp_path / "narrow.npy", np.load(seq)[..., :2])
    capsys.readouterr()
    assert main(["transform", "--model", str(tmp_path / "m"), "--x1",
                 str(tmp_path / "narrow.npy"), "--x2", vec, "--out",
                 str(tmp_path / "emb2.npz"), "--device", "cpu"]) == 2
    assert _one_line_error(capsys) == (
        "dssl: error: X1 has 2 features per step but the model was fitted with 3")


def test_fit_transform_evaluate_image_and_token_files(tmp_path, capsys, one_thread):
    """(n, C, H, W) images and int64 token ids from .npy/.npz files: the CLI keeps their shape
    and integer dtype, and transform/evaluate reuse the fitted kinds (``auto`` would read the
    integer matrix as vectors)."""
    rng = np.random.default_rng(1)
    np.save(tmp_path / "img.npy", rng.random((128, 1, 8, 8)).astype(np.float32))
    tokens = rng.integers(1, 12, size=(128, 6))
    np.savez(tmp_path / "tok.npz", ids=tokens.astype(np.int32), y=np.arange(128) % 2)
    files = ["--x1", str(tmp_path / "img.npy"), "--x2", f"{tmp_path / 'tok.npz'}:ids"]
    assert main(["fit", *files, "--modalities", "image,tokens", "--out", str(tmp_path / "m"),
                 *TINY]) == 0
    est = DisentangledSSL.load(tmp_path / "m", device="cpu")
    assert [k.kind for k in est.modalities_] == ["image", "tokens"]
    assert est.modalities_[1].vocab_size == 12
    assert main(["transform", "--model", str(tmp_path / "m"), *files, "--out",
                 str(tmp_path / "emb.npz"), "--device", "cpu"]) == 0
    emb = np.load(tmp_path / "emb.npz")
    api = est.transform(np.load(tmp_path / "img.npy"), tokens)
    np.testing.assert_allclose(emb["shared2"], api.shared2, rtol=1e-5, atol=1e-6)
    assert emb["specific1"].shape == (128, 4)
    assert main(["evaluate", "--model", str(tmp_path / "m"), *files, "--label-columns", "y",
                 "--out", str(tmp_path / "metrics.json"), "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_test"] == 26 and set(metrics["probe"]["shared"]) == {"y"}


# ----------------------------------------------------------------------------- config files
def _config(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_config_sets_parameters_and_flags_override_it(tmp_path):
    path = _config(tmp_path, 'beta = 2\nlam = 0.5\nmethod = "joint"\nstandardize = true\n'
                   "random_state = 4\n")
    assert resolve_params(_fit_args("--config", str(path))) == {
        "random_state": 4, "beta": 2.0, "lam": 0.5, "method": "joint", "standardize": True}
    assert resolve_params(_fit_args("--config", str(path), "--lam", "3", "--seed", "9",
                                    "--no-standardize")) == {
        "random_state": 9, "beta": 2.0, "lam": 3.0, "method": "joint", "standardize": False}


def test_json_config_with_null_for_an_optional_parameter(tmp_path):
    path = _config(tmp_path, json.dumps({"alpha": None, "epochs": 3, "verbose": False}),
                   "run.json")
    assert resolve_params(_fit_args("--config", str(path))) == {
        "random_state": 0, "alpha": None, "epochs": 3, "verbose": False}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("run.toml", "betta = 1\n",
     "{p}: unknown key 'betta' (did you mean 'beta'?); the keys are the parameter names of "
     "`dssl fit --help` with underscores, e.g. shared_epochs"),
    ("run.toml", "betta = 1\nshared_epoch = 2\nzzz = 3\n",
     "{p}: unknown keys 'betta' (did you mean 'beta'?), 'shared_epoch' (did you mean "
     "'shared_epochs' or 'shared_dim'?), 'zzz'; the keys are the parameter names of "
     "`dssl fit --help` with underscores, e.g. shared_epochs"),
    ("run.toml", "seed = 1\n",
     "{p}: unknown key 'seed' (did you mean 'random_state'?); the keys are the parameter "
     "names of `dssl fit --help` with underscores, e.g. shared_epochs"),
    ("run.toml", 'beta = "high"\n', "{p}: 'beta' must be a number, got 'high' (str)"),
    ("run.toml", "batch_size = 64.0\n", "{p}: 'batch_size' must be an integer, got 64.0 (float)"),
    ("run.toml", "shared_epochs = true\n",
     "{p}: 'shared_epochs' must be an integer, got True (bool)"),
    ("run.toml", "bf16 = 1\n", "{p}: 'bf16' must be true or false, got 1 (int)"),
    ("run.toml", "[beta]\nx = 1\n", "{p}: 'beta' must be a number, got {{'x': 1}} (dict)"),
    ("run.json", '{"epochs": 1.5}', "{p}: 'epochs' must be an integer or null, got 1.5 (float)"),
    ("run.json", '{"device": null}', "{p}: 'device' must be a string, got None (NoneType)"),
    ("run.json", "[1, 2]", "{p}: expected a table of parameter names to values, got list"),
    ("run.toml", "shared_encoders = []\n",
     "{p}: 'shared_encoders' cannot be set from a config file: a list of torch.nn.Module "
     "objects; pass it from Python (docs/real-data.md)"),
    ("run.toml", "beta = \n", "{p} is not valid TOML: Invalid value (at line 1, column 8)"),
    ("run.json", "{beta: 1}", "{p} is not valid JSON: Expecting property name enclosed in "
     "double quotes: line 1 column 2 (char 1)"),
    ("run.yaml", "beta: 1\n", "config file {p} must end in .toml or .json"),
])
def test_config_errors_are_one_exact_line_and_nothing_is_written(data_npz, tmp_path, capsys,
                                                                 name, text, message):
    path = _config(tmp_path, text, name)
    assert main(["fit", "--config", str(path), "--data", str(data_npz), "--out",
                 str(tmp_path / "m"), *TINY]) == 2
    assert _one_line_error(capsys) == "dssl: error: " + message.format(p=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_config_file(tmp_path, capsys):
    assert main(["fit", "--config", str(tmp_path / "no.toml"), "--data", "d.npz", "--out",
                 str(tmp_path / "m")]) == 2
    assert _one_line_error(capsys) == f"dssl: error: config file not found: {tmp_path}/no.toml"


def test_fit_with_a_config_file_end_to_end(data_npz, tmp_path, capsys):
    path = _config(tmp_path, "beta = 0.25\nlam = 4\nshared_epochs = 3\nbatch_size = 64\n"
                   "random_state = 5\n")
    assert main(["fit", "--config", str(path), "--data", str(data_npz), "--out",
                 str(tmp_path / "m"), *TINY]) == 0
    params = DisentangledSSL.load(tmp_path / "m", device="cpu").get_params()
    assert (params["beta"], params["lam"], params["random_state"]) == (0.25, 4.0, 5)
    assert (params["shared_epochs"], params["batch_size"]) == (1, 32)  # the flags win
    assert f"wrote {tmp_path / 'm'} (final epoch: " in capsys.readouterr().out


def test_fit_help_is_reachable_through_the_console_script():
    assert set(PARAM_ALIASES) <= {p.name for p in fit_params()}
    result = subprocess.run([sys.executable, "-m", "disentangled_ssl.cli", "fit", "--help"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "--config FILE" in result.stdout


# ----------------------------------------------------------------------------- distributed
@pytest.mark.parametrize(("argv", "message"), [
    (["--backend", "gloo"], "--backend is for --distributed training only"),
    (["--distributed", "--resume"],
     "--resume cannot be combined with --distributed: data-parallel runs write no checkpoints"),
    (["--distributed", "--checkpoint-dir", "{tmp}/ck"],
     "fit_distributed writes no checkpoints; set checkpoint_dir=None"),
    (["--distributed", "--random-state", "none"],
     "fit_distributed needs random_state set: every process must use the same seed to walk "
     "through the same global batches"),
])
def test_distributed_flag_errors(data_npz, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["fit", "--data", str(data_npz), "--out", str(tmp_path / "m"), *TINY,
                 *argv]) == 2
    assert _one_line_error(capsys) == "dssl: error: " + message
    assert not (tmp_path / "m").exists()


def test_distributed_in_one_process_equals_a_plain_fit(data_npz, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["fit", "--distributed", "--data", str(data_npz), "--out",
                 str(tmp_path / "ddp"), *TINY]) == 0
    assert f"wrote {tmp_path / 'ddp'} (1 processes) (final epoch: " in capsys.readouterr().out
    assert main(["fit", "--data", str(data_npz), "--out", str(tmp_path / "plain"), *TINY]) == 0
    x = np.load(data_npz)["x1"], np.load(data_npz)["x2"]
    ddp = DisentangledSSL.load(tmp_path / "ddp", device="cpu").transform(*x)
    plain = DisentangledSSL.load(tmp_path / "plain", device="cpu").transform(*x)
    np.testing.assert_allclose(ddp.specific1, plain.specific1, rtol=1e-5, atol=1e-6)


def test_torchrun_two_processes_write_one_model(data_npz, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "disentangled_ssl.cli", "fit", "--distributed", "--backend", "gloo", "--data",
         str(data_npz), "--out", str(tmp_path / "m"), *TINY],
        capture_output=True, text=True, check=False, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(f"wrote {tmp_path / 'm'} (2 processes)") == 1
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_toml_without_tomllib_or_tomli_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10 without tomli
    monkeypatch.setitem(sys.modules, "tomli", None)
    path = _config(tmp_path, "beta = 1\n")
    assert main(["fit", "--config", str(path), "--data", "d.npz", "--out",
                 str(tmp_path / "m")]) == 2
    assert _one_line_error(capsys) == (
        f"dssl: error: reading {path} needs Python >= 3.11 or `pip install tomli`; or write "
        "the config as .json")


def test_modalities_from_a_config_file(sequence_files, tmp_path, capsys, one_thread):
    """``modalities = ["sequence", "vector"]`` in a .toml config file, as the flag does; a bad
    kind names the config key."""
    seq, vec = (str(p) for p in sequence_files)
    config = tmp_path / "run.toml"
    config.write_text('modalities = ["sequence", "vector"]\nshared_epochs = 1\n')
    assert main(["fit", "--x1", seq, "--x2", vec, "--config", str(config), "--out",
                 str(tmp_path / "m"), *KIND_TINY]) == 0
    est = DisentangledSSL.load(tmp_path / "m", device="cpu")
    assert [k.kind for k in est.modalities_] == ["sequence", "vector"]
    assert list(est.modalities) == ["sequence", "vector"]
    config.write_text('modalities = ["sequence", "audio"]\n')
    capsys.readouterr()
    assert main(["fit", "--x1", seq, "--x2", vec, "--config", str(config), "--out",
                 str(tmp_path / "m2"), *KIND_TINY]) == 2
    assert _one_line_error(capsys) == (
        "dssl: error: config key 'modalities': unknown kind 'audio'; the kinds are auto, "
        "vector, sequence, image, tokens")
