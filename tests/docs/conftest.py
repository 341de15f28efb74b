"""What the documentation's tests share: the scratch trees the examples export, and a registry
that holds the base image they name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.containerd import Containerd, start_containerd
from support.docs import DocRegistry, cli
from support.registry import start_registry


@pytest.fixture(scope="session")
def doc_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocRegistry]:
    # a registry of its own: the examples push to fixed names (app:1, base:1…) that other
    # tests must not see change under them
    reg = start_registry(tmp_path_factory.mktemp("reg-docs"))
    try:
        d = tmp_path_factory.mktemp("docs-base")
        for arch in ("amd64", "arm64"):
            (d / arch / "etc").mkdir(parents=True)
            (d / arch / "etc" / "os-release").write_text(f'NAME="base"\nARCH="{arch}"\n')
        cli(
            "export",
            "--rootfs",
            f"linux/amd64={d / 'amd64'}",
            "--rootfs",
            f"linux/arm64={d / 'arm64'}",
            "--env",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "--cmd",
            '["/bin/sh"]',
            "-o",
            f"type=image,name={reg.host}/base:1,push=true",
            "--progress",
            "quiet",
            root=d / "store",
        )
        yield DocRegistry(reg)
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def docs_ctrd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A containerd of the documentation's own: its examples name fixed namespaces (``default``,
    ``dev``), which the session's shared daemon keeps for the tests that check them."""
    c = start_containerd(tmp_path_factory.mktemp("ctrd-docs"))
    yield c
    c.stop()


@pytest.fixture
def pallet_bin(tmp_path: Path) -> Path:
    """A directory holding a ``pallet`` command that runs this checkout's pallet with the test's
    interpreter (put it first on ``$PATH``)."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "pallet"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pallet.cli "$@"\n')
    exe.chmod(0o755)
    return d
