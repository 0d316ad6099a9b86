"""The tutorials (``docs/tutorials/*.py``) run, show what their text says, and their rendered
pages show their current cells (``python docs/tools/render_tutorials.py`` renders them)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _renderer():
    spec = importlib.util.spec_from_file_location("render_tutorials",
                                                  ROOT / "docs" / "tools" / "render_tutorials.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


render = _renderer()


def _run(name: str) -> tuple[dict, list]:
    """Run a tutorial as the renderer does; its namespace and per-cell results. The run draws
    as many figures as its committed page shows."""
    cells = render.parse(TUTORIALS / f"{name}.py")
    results, namespace, _ = render.execute(cells, name)
    page = (TUTORIALS / f"{name}.md").read_text()
    drawn = sum(len(r.figures) for r in results if r is not None)
    assert drawn == len(re.findall(rf"\]\({name}_files/cell\d+_\d+\.png\)", page)) > 0
    return namespace, results


def test_tutorials_are_the_ones_rendered():
    scripts = {p.stem for p in TUTORIALS.glob("*.py")}
    pages = {p.stem for p in TUTORIALS.glob("*.md")} - {"index"}
    assert scripts == pages == {"synthetic", "your_tables", "sweep", "images_and_captions"}


@pytest.mark.parametrize("name", ["synthetic", "your_tables", "sweep", "images_and_captions"])
def test_rendered_page_shows_the_scripts_current_cells(name):
    """The page is what the renderer writes for today's script (outputs aside), and its
    figure files are the ones it references, no more."""
    cells = render.parse(TUTORIALS / f"{name}.py")
    page = (TUTORIALS / f"{name}.md").read_text()
    assert render.skeleton(page) == render.page(name, cells)[0], (
        f"docs/tutorials/{name}.md is stale: run python docs/tools/render_tutorials.py {name}")
    assert page.count("<!-- output -->") == page.count("<!-- /output -->") > 0
    referenced = set(re.findall(rf"\]\(({name}_files/cell\d+_\d+\.png)\)", page))
    on_disk = {f"{name}_files/{p.name}" for p in (TUTORIALS / f"{name}_files").glob("*")}
    assert referenced == on_disk


def test_renderer_shows_prints_figures_and_a_cell_ending_in_a_figure(tmp_path):
    script = tmp_path / "demo.py"
    script.write_text("# %% [markdown]\n# # Demo\n#\n# Text.\n\n# %%\nprint('hello')\n"
                      "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.title('line')\n"
                      "plt.show()\n\n"
                      "# %%\nfrom matplotlib.figure import Figure\nfig = Figure()\n"
                      "fig.add_subplot().set_title('own')\nfig\n\n# %%\n1 + 1\n")
    cells = render.parse(script)
    assert [c.kind for c in cells] == ["markdown", "code", "code", "code"]
    assert cells[0].source == "# Demo\n\nText."
    results, namespace, _ = render.execute(cells, "demo")
    assert results[1].stdout == "hello\n" and [t for t, _ in results[1].figures] == ["line"]
    assert [t for t, _ in results[2].figures] == ["own"] and results[3].stdout == "2\n"
    text, files = render.page("demo", cells, results, seconds=1.0)
    assert "![line](demo_files/cell1_1.png)" in text and "![own](demo_files/cell2_1.png)" in text
    assert sorted(files) == ["demo_files/cell1_1.png", "demo_files/cell2_1.png"]
    assert render.skeleton(text) == render.page("demo", cells)[0]


def test_tutorial_synthetic():
    ns, _ = _run("synthetic")
    shared, specific1, specific2 = (ns["probes"][c] for c in ["shared", "specific1",
                                                                "specific2"])
    assert shared["yc"] > max(shared["y1"], shared["y2"]) + 0.05, shared
    assert specific1["y1"] > specific1["yc"] + 0.05 and abs(specific1["y2"] - 0.5) < 0.05
    assert specific2["y2"] > specific2["yc"] + 0.05 and abs(specific2["y1"] - 0.5) < 0.05
    assert all(abs(shared[k] - v) < 0.03 for k, v in ns["paper"].items()), shared


def test_tutorial_your_tables():
    ns, results = _run("your_tables")
    assert np.array_equal(ns["paired"].x2, ns["source"].x2)  # the ID join undid the shuffle
    accuracy = ns["accuracy"]  # rows shared, specific1, specific2; columns yc, y1, y2
    assert accuracy[0, 0] > max(accuracy[0, 1], accuracy[0, 2]) + 0.03, accuracy
    assert accuracy[1, 1] > accuracy[1, 2] + 0.1 and abs(accuracy[1, 2] - 0.5) < 0.05
    assert accuracy[2, 2] > accuracy[2, 1] + 0.1 and abs(accuracy[2, 1] - 0.5) < 0.05
    assert np.allclose(ns["again"].shared, ns["emb_test"].shared)
    cli = results[-1].stdout
    assert "wrote cli-model" in cli and "wrote metrics.json" in cli
    assert re.search(r"^shared\s+0\.\d+\s+0\.\d+\s+0\.\d+$", cli, flags=re.M), cli


@pytest.mark.slow
def test_tutorial_sweep():
    ns, _ = _run("sweep")
    assert ns["result"].complete and not ns["result"].failed
    shared = {c.dials["beta"]: c for c in ns["shared"]}
    private = {b: c.mean("shared.y1") + c.mean("shared.y2") for b, c in shared.items()}
    assert private[1000] < private[0.1] - 0.05, private  # β drops private information
    assert shared[1000].mean("shared.yc") < shared[0.1].mean("shared.yc")  # at a price
    leak = {(c.dials["beta"], c.dials["lam"]): c.mean("specific1.yc") for c in ns["specific"]}
    assert leak[0.1, 0.0] > leak[0.1, 0.1] + 0.03, leak  # λ > 0 cuts the leakage
    assert ns["keep"].met and ns["bounded"].met and ns["label_free"].chosen is not None


@pytest.mark.slow
def test_tutorial_images_and_captions():
    ns, _ = _run("images_and_captions")
    assert [k.kind for k in ns["model"].modalities_] == ["image", "tokens"]
    assert ns["image_to_caption"]["top1"] > 0.1 and ns["caption_to_image"]["top1"] > 0.1
    assert ns["image_to_caption"]["top10"] > 0.4  # chance: 10 / 600
    def probe(code: str) -> float:
        return ns["linear_probe"](getattr(ns["emb_train"], code), ns["train_group"],
                                  getattr(ns["emb_test"], code), ns["test_group"])["group"]

    shared = probe("shared")
    assert shared > ns["majority"] + 0.1 and shared > probe("specific1") + 0.05
