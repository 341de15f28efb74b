"""Shared fixtures: real on-disk stores in temporary directories."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.metadata.store import Store, open_store


def require_tool(name: str) -> str:
    """Path of an external tool; a missing tool fails the test (CI installs every one)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"required tool {name!r} is not installed (see .ci/run)")
    return path


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    d = open_store(tmp_path / "store")
    yield d
    d.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PALLET_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    # a developer's containerd must not turn the store commands' tests into containerd ones
    monkeypatch.delenv("PALLET_CONTAINERD_ADDRESS", raising=False)
    monkeypatch.delenv("PALLET_CONTAINERD_NAMESPACE", raising=False)


def is_root() -> bool:
    return os.geteuid() == 0
