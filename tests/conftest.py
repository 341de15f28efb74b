"""Shared fixtures: real on-disk stores in temporary directories, and one private containerd.

The session-wide fixtures live here, not in the support modules, so that every test module
shares one instance of each (a fixture imported into several modules is one per module).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.containerd import Client
from pallet.metadata.store import Store, open_store
from support.containerd import Containerd, new_namespace, start_containerd


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    d = open_store(tmp_path / "store")
    yield d
    d.close()


@pytest.fixture(scope="session")
def ctrd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """One private containerd for the session (tests/support/containerd.py)."""
    c = start_containerd(tmp_path_factory.mktemp("ctrd"))
    yield c
    c.stop()


@pytest.fixture
def client(ctrd: Containerd) -> Iterator[Client]:
    """A client in a fresh namespace of the session's daemon."""
    c = ctrd.client(new_namespace())
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PALLET_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    # a developer's containerd must not turn the store commands' tests into containerd ones
    monkeypatch.delenv("PALLET_CONTAINERD_ADDRESS", raising=False)
    monkeypatch.delenv("PALLET_CONTAINERD_NAMESPACE", raising=False)
