"""Every code block of the documentation site (``docs/**/*.md``) and of ``README.md`` runs here,
against a real store and a real registry (sybil parses the Markdown).

The conventions the pages are written to, so that their examples run as they are printed:

* A page's blocks run in order, in a fresh scratch directory holding the trees the examples
  export (``dist/``, ``config/``, ``rootfs/``, ``rootfs-v2/``, ``amd64/``, ``arm64/``: see
  :func:`support.docs.make_trees`), with a fresh store as the default root (``$PALLET_ROOT``), so
  ``pallet`` and ``pallet.Store()`` need no ``--root``.
* ``registry.example.com`` names the registry: the test puts the fixture registry's
  ``127.0.0.1:PORT`` in its place (a loopback registry speaks plain HTTP, so no ``--insecure``
  is needed). That registry already holds ``registry.example.com/base:1``, a two-platform base
  image. Other names, such as ``example.com/app:1``, only ever name images in the store: no
  example pulls them from, or pushes them to, anywhere.
* ``python`` blocks run in one namespace per page, in this process. ``sh`` blocks run each in
  ``bash -euo pipefail``, with this checkout's ``pallet`` first on ``$PATH``.
* A page whose code mentions containerd (``--containerd``, ``Store.containerd``, ``ctr``) runs
  against the documentation's own containerd (``docs_ctrd``; the examples use the namespaces
  ``default`` and ``dev``, which the shared daemon keeps for other tests):
  ``$CONTAINERD_ADDRESS``, the default socket of ``pallet --containerd``,
  ``pallet.Store.containerd()`` and ``ctr``, points at it. (Not ``$PALLET_CONTAINERD_ADDRESS``:
  that one turns every command into a containerd one.)
* ``<!-- skip: next "why" -->`` before a block skips it; the reason is required. It is used for
  what a test cannot run here: ``scripts/setup.sh`` (it installs system packages), the whole
  suite, a server (``mkdocs serve``), and commands of other engines (``docker``, ``podman``,
  ``ctr run``), which the interop tests (``tests/integration/interop/``) run instead.
* Blocks in any other language (``text``, ``console``, ``json``, ``yaml``) are output or
  configuration, not run.

The ``python`` and ``sh`` blocks of a page run as two tests, each from a fresh directory and
store, so each language's blocks must stand on their own.
"""

from __future__ import annotations

import os
import re
import subprocess
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sybil import Example, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser, SkipParser

from support.docs import REPO, DocRegistry, cli, make_trees

#: the pages whose examples run: every page of the site, and the README
PAGES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").rglob("*.md"))
PAGES.append("README.md")

_FENCE = re.compile(r"^```(\w+)\s*$", re.M)
_SKIP = re.compile(r"<!--\s*skip:\s*(.*?)\s*-->")
_CONTAINERD = re.compile(r"--containerd|Store\.containerd|\bctr ")


def _blocks(page: str, language: str) -> str:
    """The code of ``page``'s ``language`` blocks, joined."""
    text = (REPO / page).read_text()
    out, lang, lines = [], None, []
    for line in text.splitlines():
        m = _FENCE.match(line)
        if lang is None and m:
            lang, lines = m.group(1), []
        elif lang is not None and line.startswith("```"):
            if lang == language:
                out.append("\n".join(lines))
            lang = None
        elif lang is not None:
            lines.append(line)
    return "\n".join(out)


def _params() -> list[Any]:
    params = []
    for page in PAGES:
        for language in ("python", "sh"):
            code = _blocks(page, language)
            if not code:
                continue
            params.append(pytest.param(page, language, id=f"{page}-{language}"))
    return params


class _Runner:
    """Evaluates one language's blocks of a page; the other language's blocks are passed over
    (but still consume a ``skip: next`` that precedes them)."""

    def __init__(self, language: str, registry: DocRegistry, cwd: Path, env: dict[str, str]):
        self.language = language
        self.registry = registry
        self.cwd = cwd
        self.env = env
        self.ran = 0

    def evaluator(self, language: str) -> Callable[[Example], None]:
        if language != self.language:
            return lambda example: None
        return self.python if language == "python" else self.sh

    def python(self, example: Example) -> None:
        source = pad(self.registry.substitute(example.parsed), example.line)
        code = compile(source, example.path, "exec", dont_inherit=True)
        exec(code, example.namespace)
        self.ran += 1

    def sh(self, example: Example) -> None:
        source = self.registry.substitute(example.parsed)
        res = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", source],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if res.returncode != 0:
            pytest.fail(
                f"{example.path}:{example.line}: the sh block exited {res.returncode}\n"
                f"--- block\n{source}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
            )
        self.ran += 1


@pytest.mark.integration
@pytest.mark.parametrize(("page", "language"), _params())
def test_page_examples(
    page: str,
    language: str,
    doc_registry: DocRegistry,
    pallet_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    text = (REPO / page).read_text()
    for reason in _SKIP.findall(text):
        assert re.fullmatch(r'(next|start) ".+"|end', reason), (
            f'{page}: "<!-- skip: {reason} -->" must say why: <!-- skip: next "reason" -->'
        )
    work = tmp_path / "work"
    make_trees(work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("PALLET_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("PATH", f"{pallet_bin}{os.pathsep}{os.environ['PATH']}")
    if _CONTAINERD.search(_blocks(page, language)):
        ctrd = request.getfixturevalue("docs_ctrd")
        monkeypatch.setenv("CONTAINERD_ADDRESS", ctrd.socket)

    runner = _Runner(language, doc_registry, work, dict(os.environ))
    parsers = [CodeBlockParser(lang, runner.evaluator(lang)) for lang in ("python", "sh")]
    document = Sybil([*parsers, SkipParser()]).parse(REPO / page)
    skipped = 0
    for example in document:
        try:
            example.evaluate()
        except unittest.SkipTest:
            skipped += 1
    assert runner.ran, f"{page}: all {skipped} {language} blocks are skipped"


@pytest.mark.integration
def test_readme_main_job(pallet_bin: Path, tmp_path: Path) -> None:
    """The README's first command, after ``scripts/setup.sh`` (which the block's test skips):
    export ``docs/`` into a store and list it. ``.venv/bin/pallet`` becomes this checkout's
    pallet and ``/tmp/pallet-demo`` a temporary root; the rest runs as printed, from the
    repository root."""
    readme = (REPO / "README.md").read_text()
    m = re.search(r"^bash scripts/setup\.sh && (\.venv/bin/pallet .*)$", readme, re.M)
    assert m, "README.md: the main-job command is gone"
    root = tmp_path / "demo"
    command = m.group(1).replace(".venv/bin/pallet", str(pallet_bin / "pallet"))
    command = command.replace("/tmp/pallet-demo", str(root))
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    digest = res.stdout.splitlines()[0]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), res.stdout
    listing = res.stdout.splitlines()[1:]
    assert listing[0].split() == ["REF", "TYPE", "DIGEST", "SIZE"]
    assert listing[1].split()[:3] == ["example.com/demo:1", "manifest", digest]
    # the image holds docs/ at /docs, byte for byte
    out = tmp_path / "unpacked"
    cli("unpack", "example.com/demo:1", str(out), root=root)
    for page in (REPO / "docs").rglob("*.md"):
        assert (out / "docs" / page.relative_to(REPO / "docs")).read_bytes() == page.read_bytes()
