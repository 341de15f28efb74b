"""MkDocs hooks: the pages that are generated at build time, so that they cannot drift.

* ``<!-- pallet:cli-reference -->`` becomes the ``--help`` text of ``pallet``, of every command in
  :data:`pallet.cli.main.COMMANDS` and of every sub-command, rendered from the same argparse
  parsers the command line runs.
* ``<!-- pallet:include PATH -->`` becomes the file at ``PATH`` (relative to the repository
  root), e.g. ``BENCHMARKS.md``. Its links to repository files that are not pages of the site
  become plain code spans, so that ``mkdocs build --strict`` checks every link that remains.
* :class:`SphinxStyle`, a griffe extension (``mkdocs.yml`` loads it into mkdocstrings), lets the
  docstrings keep their reST spelling: a role such as ``:meth:`containerd``` becomes a link when
  its target is on the API page, else a code span; ``Example::`` becomes an *Example* heading;
  and the ``#:`` comment above an attribute (a dataclass field) is its docstring, as in Sphinx.

The hook renders the ``pallet`` it imports; it refuses to build from an installed copy other than
this checkout's ``src/`` (the site would document other code than the one in the tree).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

__all__ = ["SphinxStyle", "cli_reference", "include", "on_page_markdown", "subcommands"]

ROOT = Path(__file__).resolve().parent.parent

#: the width argparse wraps help text at (it reads ``$COLUMNS``)
HELP_WIDTH = 100

_CLI = re.compile(r"^<!-- pallet:cli-reference -->$", re.M)
_INCLUDE = re.compile(r"^<!-- pallet:include (\S+) -->$", re.M)
#: an inline link ``[text](target)`` whose target is a relative path (not a URL or an anchor)
_LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|mailto:|#)([^)\s]+)\)")


def _check_pallet() -> None:
    import pallet

    where = Path(pallet.__file__).resolve().parent
    if where != ROOT / "src" / "pallet":
        raise RuntimeError(
            f"docs/hooks.py: pallet was imported from {where}, not from {ROOT / 'src' / 'pallet'}:"
            " install this checkout (pip install -e '.[docs]') or set PYTHONPATH=src"
        )


@contextlib.contextmanager
def _columns(width: int) -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The sub-commands of ``parser`` (name, parser), each once: an alias names the same parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield name, sub


def _top_help() -> str:
    from pallet.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["--help"])
    return out.getvalue()


def _fence(text: str) -> str:
    return f"```text\n{text.rstrip()}\n```\n"


def _walk(prog: str, parser: argparse.ArgumentParser, level: int) -> Iterator[str]:
    for name, sub in subcommands(parser):
        yield f"{'#' * level} `{prog} {name}`\n"
        yield _fence(sub.format_help())
        yield from _walk(f"{prog} {name}", sub, level + 1)


def cli_reference() -> str:
    """The command-line reference, as Markdown: ``pallet --help``, then each command's help and
    its sub-commands' in :data:`~pallet.cli.main.COMMANDS` order."""
    from pallet.cli.main import COMMANDS, command_parser

    with _columns(HELP_WIDTH):
        parts = ["## `pallet`\n", _fence(_top_help())]
        for name, info in COMMANDS.items():
            parts.append(f"## `pallet {name}`\n")
            parts.append(f"{info.summary[:1].upper()}{info.summary[1:]}.\n")
            if info.aliases:
                aliases = ", ".join(f"`pallet {a}`" for a in info.aliases)
                parts.append(f"Also spelt {aliases}.\n")
            parser = command_parser(name)
            parts.append(_fence(parser.format_help()))
            parts.extend(_walk(f"pallet {name}", parser, 3))
    return "\n".join(parts)


def include(path: str, page_dir: Path, docs_dir: Path) -> str:
    """The file at ``path`` (from the repository root), as the page in ``page_dir`` shows it: its
    relative links that lead to a page of the site point there from ``page_dir``, the others
    become code spans."""
    source = ROOT / path
    text = source.read_text(encoding="utf-8")

    def link(m: re.Match[str]) -> str:
        label, target = m.group(1), m.group(2)
        file = target.split("#", 1)[0]
        resolved = (source.parent / file).resolve()
        if resolved.is_relative_to(docs_dir.resolve()) and resolved.exists():
            return f"[{label}]({Path(os.path.relpath(resolved, page_dir.resolve())).as_posix()})"
        shown = label if label.startswith("`") else f"`{file}`"
        return f"{shown} (in the repository)"

    return _LINK.sub(link, text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"])
    if _CLI.search(markdown):
        _check_pallet()
        markdown = _CLI.sub(lambda _: cli_reference(), markdown)
    page_dir = (docs_dir / page.file.src_uri).parent
    return _INCLUDE.sub(lambda m: include(m.group(1), page_dir, docs_dir), markdown)


_ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|mod|data|attr|exc|obj|const):`(~?)\.?([^`]+?)(?:\(\))?`"
)
_EXAMPLE = re.compile(r"^([ \t]*)Example::[ \t]*$", re.M)


def _comment_above(lines: list[str], lineno: int) -> str:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), joined."""
    out: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        out.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return " ".join(out)


class SphinxStyle(griffe.Extension):
    """Turn the reST roles and ``Example::`` markers of pallet's docstrings into Markdown, and
    give attributes their ``#:`` comments as docstrings.

    A role's target is looked up as Sphinx does (from the object outwards, then from the package);
    it links to the API page (``pallet.Name…``) when it is a public name or a member of one, and
    is a code span otherwise, so an internal name never makes a broken reference.
    """

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "pallet":
            return
        #: canonical path of each public object -> its public path
        self.public: dict[str, str] = {}
        for export in pkg.exports or ():
            name = str(export)
            with contextlib.suppress(Exception):
                self.public[pkg[name].final_target.path] = f"pallet.{name}"
        self.pkg = pkg
        self._walk(pkg)

    def _walk(self, obj: griffe.Object) -> None:
        if obj.docstring is None and obj.is_attribute and obj.lineno:
            comment = _comment_above(obj.module.lines, obj.lineno)
            if comment:
                obj.docstring = griffe.Docstring(comment, parent=obj)
        if obj.docstring is not None:
            text = _ROLE.sub(lambda m: self._role(obj, m), obj.docstring.value)
            obj.docstring.value = _EXAMPLE.sub(r"\1**Example**", text)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member)  # type: ignore[arg-type]

    def _find(self, path: str) -> griffe.Object | griffe.Alias | None:
        if path != "pallet" and not path.startswith("pallet."):
            return None
        try:
            return self.pkg[path.removeprefix("pallet.")] if path != "pallet" else self.pkg
        except Exception:
            return None

    def _public_path(self, found: griffe.Object | griffe.Alias) -> str | None:
        with contextlib.suppress(Exception):
            found = found.final_target
        path = found.path
        for canonical, public in self.public.items():
            if path == canonical or path.startswith(canonical + "."):
                rest = path[len(canonical) :]
                if not any(part.startswith("_") for part in rest.split(".") if part):
                    return public + rest
        return None

    def _role(self, obj: griffe.Object, m: re.Match[str]) -> str:
        short, target = m.group(1), m.group(2)
        shown = target.rsplit(".", 1)[-1] if short else target
        scope: griffe.Object | None = obj
        candidates = [target]
        while scope is not None:
            candidates.append(f"{scope.path}.{target}")
            scope = scope.parent
        candidates.append(f"pallet.{target}")
        for candidate in candidates:
            found = self._find(candidate)
            if found is not None:
                public = self._public_path(found)
                if public is not None:
                    return f"[`{shown}`][{public}]"
                break
        return f"`{shown}`"
