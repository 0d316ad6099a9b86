"""The README's Python example works when copy-pasted: run it verbatim and check what it prints
and writes (a new user's first contact with the library must not rot)."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.md"
CLI_PAGE = ROOT / "docs" / "cli.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_example_runs_verbatim(tmp_path, monkeypatch):
    blocks = _python_blocks(README.read_text())
    assert blocks, "README.md has no ```python block"
    code = blocks[0]
    monkeypatch.chdir(tmp_path)  # model.save("my_model") writes into the working directory
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    # What the example's comments promise.
    assert lines[0] == "(4000, 100) (4000, 100)"
    shared, specific1 = (ast.literal_eval(line) for line in lines[1:3])
    assert set(shared) == set(specific1) == {"y1", "yc", "y2"}
    # Shared code predicts the shared label better than either private one; the specific code
    # of modality 1 predicts y1 and carries nothing of modality 2's private label.
    assert shared["yc"] > max(shared["y1"], shared["y2"]) + 0.05, shared
    assert specific1["y1"] > specific1["yc"] + 0.05, specific1
    assert abs(specific1["y2"] - 0.5) < 0.05, specific1
    assert (tmp_path / "my_model" / "config.json").is_file()
    assert (tmp_path / "my_model" / "model.safetensors").is_file()


def test_quickstart_page_shows_the_readme_example():
    """The site's quick start shows the very example the test above runs."""
    assert _python_blocks(QUICKSTART.read_text())[0] == _python_blocks(README.read_text())[0]


def _command_lines(text: str) -> list[list[str]]:
    """The ``dssl`` (or ``-m disentangled_ssl.cli``) command lines of the ```bash blocks, as
    argument lists after the program name (continuations joined, comments dropped)."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0].endswith("dssl"):
                    commands.append(words[1:])
                elif "disentangled_ssl.cli" in words:
                    commands.append(words[words.index("disentangled_ssl.cli") + 1:])
    return commands


def test_readme_command_lines_parse():
    """Every command line the README and the site's command-line page show is accepted by
    today's parser, verbatim."""
    from disentangled_ssl.cli import build_parser

    commands = _command_lines(README.read_text()) + _command_lines(CLI_PAGE.read_text())
    assert len(commands) >= 12, commands
    assert any(c[:2] == ["fit", "--distributed"] for c in commands), commands
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # argparse exits (fails the test) on a stale flag


def test_docs_command_lines_parse():
    """The command lines of every other docs page parse too (a page may elide arguments with
    ``...``, and ``--help`` exits by design; those lines are skipped)."""
    from disentangled_ssl.cli import build_parser

    parser = build_parser()
    checked = 0
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for argv in _command_lines(page.read_text()):
            if any(word in ("...", "…", "--help", "-h") for word in argv):
                continue
            try:
                parser.parse_args(argv)
            except SystemExit:
                raise AssertionError(f"{page.relative_to(ROOT)}: dssl {' '.join(argv)}") from None
            checked += 1
    assert checked >= 40, checked
