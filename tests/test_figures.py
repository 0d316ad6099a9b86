"""Figures: each draws on its own Agg canvas, so neither importing any module of the package
nor drawing a figure changes the process-wide matplotlib backend (a notebook user's backend
stays theirs)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from disentangled_ssl.experiments.figures import plot_compare, plot_figure3a, plot_figure3b

PNG = b"\x89PNG\r\n\x1a\n"

#: Runs in a fresh interpreter: select a non-Agg backend, import every module of the package,
#: draw a figure, and print what the backend is then.
_PROBE = textwrap.dedent("""
    import importlib, pkgutil, sys
    import matplotlib
    matplotlib.use("svg")
    import disentangled_ssl
    names = sorted(m.name for m in pkgutil.walk_packages(disentangled_ssl.__path__,
                                                         "disentangled_ssl."))
    for name in names:
        importlib.import_module(name)
    after_imports = matplotlib.get_backend()
    from disentangled_ssl.experiments.figures import plot_figure3a
    rows = [{"key": f"k{b}{s}", "stage": "shared", "beta": b, "seed": s,
             "representation": "shared", "label": "yc", "metric": "accuracy",
             "value": 0.7 + 0.01 * s, "train_seconds": 1.0, "eval_seconds": 0.1}
            for b in (0.1, 1.0) for s in (0, 1)]
    plot_figure3a(rows, sys.argv[1])
    print(len(names), after_imports, matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
""")


def test_importing_every_module_and_drawing_leave_the_matplotlib_backend_alone(tmp_path):
    png = tmp_path / "figure.png"
    result = subprocess.run([sys.executable, "-c", _PROBE, str(png)], capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    n_modules, after_imports, after_drawing, pyplot = result.stdout.split()
    assert int(n_modules) > 40  # every module was imported, not a few
    assert (after_imports, after_drawing) == ("svg", "svg")
    assert pyplot == "False"  # pyplot (the stateful, backend-selecting interface) is not used
    assert png.read_bytes()[:8] == PNG


def _tidy(stage, beta, lam, seed, rep, label, value):
    return {"key": f"{stage}{beta}{lam}{seed}", "stage": stage, "beta": beta, "lam": lam,
            "seed": seed, "representation": rep, "label": label, "metric": "accuracy",
            "value": value, "train_seconds": 1.0, "eval_seconds": 0.1}


@pytest.fixture
def rows():
    out = []
    for seed in (0, 1):
        for beta in (0.1, 10.0):
            out += [_tidy("shared", beta, "", seed, "shared", lab, 0.6 + 0.01 * seed)
                    for lab in ("yc", "y1", "y2")]
            for lam in (0.1, 1.0):
                out += [_tidy("specific", beta, lam, seed, "specific1", lab, 0.55 + lam / 10)
                        for lab in ("yc", "y1")]
    return out


def test_every_figure_writes_a_png(rows, tmp_path):
    plot_figure3a(rows, tmp_path / "a.png")
    plot_figure3b(rows, tmp_path / "b.png", frontier=True)
    points = {"disentangled_ssl": [
        {"dial": "lam", "value": v, "representation": "specific1", "own": (0.7, 0.01, 2),
         "leak": (0.6, 0.01, 2)} for v in (0.1, 1.0)],
        "clip": [{"dial": "", "value": None, "representation": "shared1",
                  "own": (0.65, 0.0, 2), "leak": (0.7, 0.0, 2)}]}
    plot_compare(points, tmp_path / "c.png")
    for name in ("a.png", "b.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temporary left
