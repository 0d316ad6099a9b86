"""The documentation site builds offline with ``mkdocs build --strict``, every public name is in
its API reference with its parameters, its links resolve, and the tutorials' figures are on
their pages."""

from __future__ import annotations

import html
import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The modules whose ``__all__`` is the public API the reference must cover: the top level,
#: every subpackage, and the submodules whose names the subpackages do not re-export.
API_MODULES = (
    "disentangled_ssl",
    "disentangled_ssl.estimator",
    "disentangled_ssl.data",
    "disentangled_ssl.data.readers",
    "disentangled_ssl.data.datasets",
    "disentangled_ssl.data.published",
    "disentangled_ssl.nn",
    "disentangled_ssl.nn.vmf",
    "disentangled_ssl.losses",
    "disentangled_ssl.methods",
    "disentangled_ssl.training",
    "disentangled_ssl.training.ensemble",
    "disentangled_ssl.training.distributed",
    "disentangled_ssl.evaluation",
    "disentangled_ssl.experiments",
    "disentangled_ssl.cli",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stderr[-5000:]
    assert "WARNING" not in run.stderr, run.stderr[-5000:]
    return out


def _api_html(site: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((site / "api").glob("*.html")))


def _public_names() -> list[tuple[str, str, object]]:
    return [(module, name, getattr(importlib.import_module(module), name))
            for module in API_MODULES for name in importlib.import_module(module).__all__]


def _section(page: str, anchor: str) -> str:
    """The HTML of one documented object: from its heading to the next heading that is not
    one of its members'."""
    start = page.index(f'id="{anchor}"')
    ends = [m.start() for m in re.finditer(r'<h\d id="([^"]+)"', page[start + 1:])
            if not m.group(1).startswith(anchor + ".")]
    return page[start:start + 1 + ends[0]] if ends else page[start:]


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def _parameters(obj: object) -> list[str]:
    if not callable(obj) or (inspect.isclass(obj) and issubclass(obj, BaseException)):
        return []
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in signature.parameters.values()
            if p.kind not in skip and p.name != "self"]


def test_site_builds_offline_in_strict_mode(site):
    for page in ["index.html", "installation.html", "quickstart.html", "api/index.html",
                 "tutorials/synthetic.html", "real-tasks/index.html"]:
        assert (site / page).is_file(), page
    home = (site / "index.html").read_text()
    # Nothing is fetched at read time: no web fonts, no scripts or styles from elsewhere.
    assert "fonts.googleapis" not in home and "fonts.gstatic" not in home
    assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//', home)


def test_api_reference_has_every_public_name_with_its_parameters(site):
    page = _api_html(site)
    documented = set(re.findall(r'id="(disentangled_ssl[^"]*)"', page))
    names = _public_names()
    missing, no_params = [], []
    for module, name, obj in names:
        # A re-exported name is documented where a listed module exports the same object, or
        # where it is defined.
        anchors = [f"{m}.{n}" for m, n, o in names if o is obj]
        anchors += [f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"]
        anchors = [a for a in anchors if a in documented]
        if not anchors:
            missing.append(f"{module}.{name}")
            continue
        text = _text(_section(page, anchors[0]))
        no_params += [f"{anchors[0]}({p})" for p in _parameters(obj)
                      if not re.search(rf"\b{re.escape(p)}\b", text)]
    assert not missing, f"not in the API reference: {missing}"
    assert not no_params, f"parameters missing from the API reference: {no_params}"
    assert len(names) > 150, len(names)


def test_api_reference_turns_sphinx_roles_into_links(site):
    page = (site / "api" / "estimator.html").read_text()
    assert ":class:" not in page and ":func:" not in page and ":meth:" not in page
    # `:func:`~disentangled_ssl.training.train_stage`` in the estimator's module docstring
    assert re.search(r'<a [^>]*href="training\.html#disentangled_ssl\.training\.train_stage"',
                     page)
    # ``docs/reliability.md`` in DisentangledSSL's docstring links to the guide page
    assert '<a href="../reliability.html"><code>docs/reliability.md</code></a>' in page


def test_every_local_link_and_image_of_the_site_resolves(site):
    broken = []
    pages = sorted(site.rglob("*.html"))
    ids = {p: set(re.findall(r'\bid="([^"]+)"', p.read_text())) for p in pages}
    for page in pages:
        if page.name == "404.html":
            continue
        for target in re.findall(r'\b(?:href|src)="([^"]+)"', page.read_text()):
            parts = urlsplit(html.unescape(target))
            if parts.scheme or parts.netloc or not (parts.path or parts.fragment):
                continue
            file = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if file.is_dir():
                file = file / "index.html"
            if not file.is_file():
                broken.append(f"{page.relative_to(site)} -> {target}")
            elif parts.fragment and file.suffix == ".html" and parts.fragment not in ids.get(
                    file, set()):
                broken.append(f"{page.relative_to(site)} -> {target} (no such anchor)")
    assert not broken, broken


def test_every_tutorial_figure_is_on_its_page(site):
    tutorials = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
    assert len(tutorials) >= 4
    for script in tutorials:
        name = script.stem
        page = (site / "tutorials" / f"{name}.html").read_text()
        figures = sorted((ROOT / "docs" / "tutorials" / f"{name}_files").glob("*.png"))
        assert figures, f"{name}: no figures"
        for figure in figures:
            assert f'src="{name}_files/{figure.name}"' in page, (name, figure.name)
            assert (site / "tutorials" / f"{name}_files" / figure.name).is_file()
        assert f'href="{name}.py"' in page and (site / "tutorials" / f"{name}.py").is_file()
