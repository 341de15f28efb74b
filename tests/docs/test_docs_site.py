"""The documentation site's generated pages: the command-line reference covers every command and
sub-command, the API page every public name, and ``mkdocs build --strict`` passes."""

from __future__ import annotations

import argparse
import doctest
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import pallet
from pallet.cli.main import COMMANDS, command_parser
from support.docs import REPO


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pallet_docs_hooks", REPO / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands(prog: str, parser: argparse.ArgumentParser, hooks: ModuleType) -> list[str]:
    out = [prog]
    for name, sub in hooks.subcommands(parser):
        out.extend(_commands(f"{prog} {name}", sub, hooks))
    return out


def test_cli_reference_has_every_command() -> None:
    hooks = _hooks()
    page = hooks.cli_reference()
    headings = re.findall(r"^#+ `(pallet[^`]*)`$", page, re.M)
    want = ["pallet"]
    for name in COMMANDS:
        want.extend(_commands(f"pallet {name}", command_parser(name), hooks))
    assert headings == want
    # each heading is followed by that parser's own help
    export = command_parser("export")
    assert "usage: pallet export" in page
    for action in export._actions:
        for flag in action.option_strings:
            assert flag in page
    # aliases are named, not repeated as commands
    assert "Also spelt `pallet image`, `pallet i`." in page
    assert "`pallet images list`" not in page


def test_include_keeps_site_links_and_flattens_the_others(tmp_path: Path) -> None:
    hooks = _hooks()
    text = hooks.include("BENCHMARKS.md", REPO / "docs", REPO / "docs")
    assert "`bench/README.md` (in the repository)" in text
    assert "](bench/README.md)" not in text
    # a link to a page of the site stays a link, relative to the including page
    target = os.path.relpath(REPO / "docs" / "architecture.md", tmp_path)
    (tmp_path / "x.md").write_text(f"[the architecture]({target}) [top](#top)\n")
    rel = os.path.relpath(tmp_path / "x.md", REPO)
    linked = hooks.include(rel, REPO / "docs" / "guides", REPO / "docs")
    assert linked == "[the architecture](../architecture.md) [top](#top)\n"


@pytest.mark.slow
def test_site_builds_strict_and_documents_every_public_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    api = (site / "reference" / "api" / "index.html").read_text()
    documented = set(re.findall(r'<h\d id="pallet\.([A-Za-z_]+)"', api))
    assert documented == set(pallet.__all__)
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert 'id="pallet-export"' in cli
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert "Current figures" in benchmarks


def _docstring_examples(doc: str) -> list[str]:
    """The ``Example::`` blocks of a docstring, dedented."""
    lines = inspect.cleandoc(doc).splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "Example::":
            indent = len(line) - len(line.lstrip())
            block = []
            for body in lines[i + 1 :]:
                if body.strip() and len(body) - len(body.lstrip()) <= indent:
                    break
                block.append(body)
            out.append(textwrap.dedent("\n".join(block)))
    return out


def _public_docstrings() -> list[tuple[str, str]]:
    out = []
    for name in pallet.__all__:
        obj = getattr(pallet, name)
        if isinstance(obj, str):
            continue
        out.append((name, obj.__doc__ or ""))
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if not member.startswith("_"):
                    out.append((f"{name}.{member}", getattr(value, "__doc__", None) or ""))
    return out


def test_docstring_examples_are_python() -> None:
    """The API page shows each public name's ``Example::``: each is at least valid Python (a
    ``"\\n"`` in a docstring that is not raw, say, breaks it)."""
    broken = []
    count = 0
    for name, doc in _public_docstrings():
        for example in _docstring_examples(doc):
            count += 1
            # a doctest (">>> …" lines and their output) is checked line by line
            sources = [e.source for e in doctest.DocTestParser().get_examples(example)]
            for source in sources or [example]:
                try:
                    compile(source, name, "exec")
                except SyntaxError as exc:
                    broken.append(f"{name}: {exc.msg} in\n{example}")
    assert count
    assert not broken, "\n\n".join(broken)
