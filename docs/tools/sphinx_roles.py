"""A griffe extension for the API reference: the docstrings' Sphinx roles become links, and
the grouped Google-style entries the code base writes (``shared_dim, specific_dim: embedding
sizes.``) become one entry per name.

- A role (``:class:`~disentangled_ssl.losses.SpecificLoss```, ``:func:`train_stage```) is
  resolved in the scope of the object whose docstring holds it, as Sphinx would, and written
  as an optional autoref: a link where the target is rendered in the site, plain code where it
  is not (a private helper, ``os.replace``), never a broken reference.
- In an ``Args:`` or ``Attributes:`` section, ``a, b (type): text`` (and the call-convention
  form ``X1, X2 (, X3, …): text``) becomes ``a (type): text`` and ``b (type): text``, each
  with the continuation lines, so every parameter is checked against the signature and
  listed with its description.
- An attribute documented by a Sphinx ``#:`` comment on the lines above it (``#: name ->
  spec``) gets that comment as its docstring.
- A guide page named as code (````docs/reliability.md````) links to that page of the site
  (from the API pages, which are all in ``docs/api/``).
- ``Example:`` (a Google section name griffe does not know: it would render the doctest as
  quoted text) becomes ``Examples:``, so the doctest renders as code.
- RST's literal-block marker ``text::`` becomes ``text:`` (the indented block after it is
  already a Markdown code block).

Loaded by ``mkdocs.yml`` (``extensions: [docs/tools/sphinx_roles.py]``).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
_LITERAL_MARKER = re.compile(r"(?<=\S)::$", flags=re.M)
_GUIDE_PAGE = re.compile(r"``docs/([\w/-]+)\.md(#[\w-]+)?``")
_DOCS = Path(__file__).resolve().parents[1]
_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", flags=re.M)
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes):\s*$")
_GROUPED = re.compile(r"^(\s+)(\w+(?:\s*,\s*\w+)+)(\s*\(,[^)]*\))?(\s*\([^),][^)]*\))?:(\s.*)?$")


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` seen from ``obj``'s docstring, or ``name`` unchanged."""
    if name.startswith("disentangled_ssl"):
        return name
    head, _, rest = name.partition(".")
    for scope in (obj, obj.parent):
        if scope is None:
            continue
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, griffe.AliasResolutionError, AttributeError):
            continue
        return f"{path}.{rest}" if rest else path
    return name


def _link(obj: griffe.Object, match: re.Match[str]) -> str:
    short, name = match.group(1), match.group(2).strip()
    title = name.rsplit(".", 1)[-1] if short else name
    identifier = html.escape(_target(obj, name), quote=True)
    code = f"<code>{html.escape(title)}</code>"
    return f'<autoref identifier="{identifier}" optional>{code}</autoref>'


def _guide_link(match: re.Match[str]) -> str:
    page, anchor = match.group(1), match.group(2) or ""
    if not (_DOCS / f"{page}.md").is_file():
        return match.group(0)
    html_page = page[: -len("README")] + "index" if page.endswith("README") else page
    return f'<a href="../{html_page}.html{anchor}"><code>docs/{page}.md{anchor}</code></a>'


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_grouped_entries(text: str) -> str:
    """One entry per name in the ``Args:``/``Attributes:`` sections of a Google docstring."""
    lines, out, i = text.splitlines(), [], 0
    section_indent = None  # indentation of the current section's header, or None outside one
    while i < len(lines):
        line = lines[i]
        if header := _SECTION.match(line):
            section_indent = len(header.group(1))
            out.append(line)
            i += 1
            continue
        if section_indent is not None and line.strip() and _indent(line) <= section_indent:
            section_indent = None
        grouped = _GROUPED.match(line) if section_indent is not None else None
        if grouped is None:
            out.append(line)
            i += 1
            continue
        indent, names, _, kind, rest = grouped.groups()
        body = []  # continuation lines: deeper than the entry, or blank inside it
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(indent)):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            i -= 1
            body.pop()
        for name in re.split(r"\s*,\s*", names):
            out.append(f"{indent}{name}{kind or ''}:{rest or ''}")
            out.extend(body)
    return "\n".join(out)


def comment_docstring(attr: griffe.Attribute) -> str | None:
    """The text of the ``#:`` comment lines right above ``attr``'s assignment, or None."""
    if attr.lineno is None or attr.filepath not in attr.lines_collection:
        return None
    lines = attr.lines_collection[attr.filepath]
    comment, i = [], attr.lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        comment.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return "\n".join(comment) or None


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring once the object tree is complete (before it is parsed)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_attribute and (text := comment_docstring(obj)):
            obj.docstring = griffe.Docstring(text, parent=obj)
        if obj.docstring is None:
            return
        text = split_grouped_entries(obj.docstring.value)
        text = _ROLE.sub(lambda m: _link(obj, m), text)
        text = _GUIDE_PAGE.sub(_guide_link, text)
        text = _EXAMPLE.sub(r"\1Examples:", text)
        obj.docstring.value = _LITERAL_MARKER.sub(":", text)
