"""Run the tutorials and write their pages: ``docs/tutorials/<name>.py`` -> ``<name>.md``.

A tutorial is a Python script in the percent format (``# %%`` starts a code cell,
``# %% [markdown]`` a Markdown cell written as ``#`` comments), so it runs as a plain script
(``python docs/tutorials/synthetic.py``) and opens as a notebook in Jupyter (jupytext), VS Code
or PyCharm. This renderer executes a tutorial cell by cell in one namespace (no Jupyter
kernel), with matplotlib's non-interactive Agg backend, and writes its page: the Markdown
cells, each code cell, the text the cell printed and the figures it drew
(``<name>_files/cell<k>_<j>.png``). The pages and figures are committed, so building the site
runs no code.

    python docs/tools/render_tutorials.py              # every tutorial
    python docs/tools/render_tutorials.py synthetic    # one

Everything a run produces sits between ``<!-- output -->`` and ``<!-- /output -->`` lines of
the page; the rest of the page is a function of the script alone (:func:`skeleton`), which
``tests/test_tutorials.py`` uses to check that every page shows its script's current cells.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a tool, not the library: it draws the tutorials' figures into files

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
_CELL = re.compile(r"^# %%(.*)$")
_OUTPUT = re.compile(r"\n<!-- output -->\n.*?^<!-- /output -->\n", flags=re.M | re.S)


@dataclass
class Cell:
    """One cell of a percent-format script."""

    kind: str  # "code" or "markdown"
    source: str


@dataclass
class Result:
    """What running one code cell produced."""

    stdout: str = ""
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (title, PNG bytes)


def parse(path: Path) -> list[Cell]:
    """The cells of a percent-format script (text before the first ``# %%`` is not a cell)."""
    cells: list[Cell] = []
    kind, lines = None, []
    for line in [*path.read_text().splitlines(), "# %%"]:
        marker = _CELL.match(line)
        if marker is None:
            lines.append(line)
            continue
        if kind == "markdown":
            text = [re.sub(r"^# ?", "", x) for x in lines]
            cells.append(Cell("markdown", "\n".join(text).strip("\n")))
        elif kind == "code" and "\n".join(lines).strip():
            cells.append(Cell("code", "\n".join(lines).strip("\n")))
        kind = "markdown" if "[markdown]" in marker.group(1) else "code"
        lines = []
    return cells


def _png(figure: Figure) -> tuple[str, bytes]:
    """The figure's title (for the image's alt text) and the figure as PNG."""
    titles = [figure.get_suptitle(), *(ax.get_title() for ax in figure.axes)]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return next((t for t in titles if t), ""), buffer.getvalue()


def _run_cell(source: str, where: str, namespace: dict) -> object:
    """Execute a cell; the value of its last line when that is an expression (else None)."""
    tree = ast.parse(source, where)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, where, "exec"), namespace)
    if last is None:
        return None
    return eval(compile(ast.Expression(last.value), where, "eval"), namespace)


def execute(cells: list[Cell], name: str) -> tuple[list[Result | None], dict, float]:
    """Run the code cells in order in one namespace; per cell its output (None for Markdown
    cells), then the namespace and the seconds the run took. Temporary files the tutorial
    makes (``tempfile.mkdtemp()``) are deleted at the end."""
    namespace: dict = {"__name__": "__main__", "__file__": str(TUTORIALS / f"{name}.py")}
    results: list[Result | None] = []
    show, plt.show = plt.show, lambda *args, **kwargs: None  # figures are collected per cell
    plt.close("all")
    scratch, tempdir = tempfile.TemporaryDirectory(), tempfile.tempdir
    tempfile.tempdir = scratch.name  # the tutorial's temporary files go when it ends
    tic = time.perf_counter()
    try:
        for k, cell in enumerate(cells):
            if cell.kind != "code":
                results.append(None)
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                value = _run_cell(cell.source, f"{name}.py, cell {k}", namespace)
            figures = [plt.figure(num) for num in plt.get_fignums()]
            if isinstance(value, Figure) and value not in figures:
                figures.append(value)  # a cell ending in a figure shows it, as in a notebook
            elif value is not None and not isinstance(value, Figure):
                print(repr(value), file=out)
            results.append(Result(out.getvalue(), [_png(f) for f in figures]))
            plt.close("all")
    finally:
        seconds = time.perf_counter() - tic
        plt.show, tempfile.tempdir = show, tempdir
        scratch.cleanup()
    return results, namespace, seconds


def _output(lines: list[str]) -> str:
    """Lines a run produced, marked so that :func:`skeleton` can take them out again."""
    return "\n<!-- output -->\n" + "\n".join(lines) + "\n<!-- /output -->\n"


def page(name: str, cells: list[Cell], results: list[Result | None] | None = None,
         seconds: float | None = None) -> tuple[str, dict[str, bytes]]:
    """The Markdown page of a tutorial and its figure files (name relative to the page)."""
    parts, files = [], {}
    for k, cell in enumerate(cells):
        if cell.kind == "markdown":
            parts.append(cell.source + "\n")
            continue
        parts.append(f"```python\n{cell.source}\n```\n")
        result = results[k] if results else None
        if result is None:
            continue
        lines = []
        if result.stdout.strip():
            lines += ['<div class="tutorial-output" markdown>', "", "```text",
                      result.stdout.rstrip("\n"), "```", "", "</div>"]
        for j, (title, png) in enumerate(result.figures, 1):
            figure = f"{name}_files/cell{k}_{j}.png"
            files[figure] = png
            alt = title.replace("[", "(").replace("]", ")") or f"figure {j} of cell {k}"
            lines += ["", f"![{alt}]({figure})", ""]
        if lines:
            parts[-1] += _output(lines)
    intro = (f"[Download the script]({name}.py) and run it with `python {name}.py`, or open "
             "it as a notebook (percent format: Jupyter with jupytext, VS Code, PyCharm).\n")
    if seconds is not None:
        intro += _output([f"The whole script ran in {seconds:.0f} s on {os.cpu_count()} CPU "
                          "cores when this page was rendered."])
    head = (f"<!-- Rendered by docs/tools/render_tutorials.py from {name}.py: edit the script "
            "and render again, never this page. -->\n")
    return head + "\n".join([parts[0], intro, *parts[1:]]).rstrip("\n") + "\n", files


def skeleton(text: str) -> str:
    """A page without what running the script produced."""
    return _OUTPUT.sub("", text)


def render(name: str) -> float:
    """Run one tutorial and (re)write its page and figures; returns the seconds it ran."""
    cells = parse(TUTORIALS / f"{name}.py")
    results, _, seconds = execute(cells, name)
    text, files = page(name, cells, results, seconds)
    figures = TUTORIALS / f"{name}_files"
    for old in figures.glob("*.png"):
        old.unlink()
    for relative, png in files.items():
        (TUTORIALS / relative).parent.mkdir(parents=True, exist_ok=True)
        (TUTORIALS / relative).write_bytes(png)
    (TUTORIALS / f"{name}.md").write_text(text)
    return seconds


def names() -> list[str]:
    """Every tutorial, in file-name order."""
    return sorted(p.stem for p in TUTORIALS.glob("*.py"))


def main(argv: list[str]) -> None:
    for name in argv or names():
        print(f"{name}: {render(name):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
