"""Shared fixtures: real on-disk stores in temporary directories, and one private containerd.

The session-wide fixtures live here, not in the support modules, so that every test module
shares one instance of each (a fixture imported into several modules is one per module).

Daemons are session-scoped and start only when a test asks for them: one real docker-registry per
variant, the interop image set, a private containerd, Docker daemon and Podman.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.containerd import Client
from pallet.metadata.store import Store, open_store
from support.containerd import Containerd, new_namespace, start_containerd
from support.engines import Docker, Podman, start_dockerd
from support.images import Interop, build_interop
from support.registry import PASSWORD, USER, Registry, start_registry


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


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg-plain"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg-tls"), tls=True, users={USER: PASSWORD})
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg-token"), token=True, users={USER: PASSWORD})
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def interop(tmp_path_factory: pytest.TempPathFactory) -> Interop:
    """The :class:`~support.images.Interop` images and archives, built once per session."""
    return build_interop(tmp_path_factory.mktemp("interop"))


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory, ctrd: Containerd) -> Iterator[Docker]:
    """One private dockerd for the session, on the session's containerd (tests/conftest.py)."""
    dk = start_dockerd(tmp_path_factory.mktemp("docker"), ctrd)
    yield dk
    dk.stop()


@pytest.fixture
def podman() -> Iterator[Podman]:
    """A :class:`~support.engines.Podman` with empty storage for each test. Its directory is
    short and not under the test's own: Podman refuses a ``--runroot`` longer than 50
    characters (conmon's sockets live there)."""
    d = Path(tempfile.mkdtemp(prefix="pallet-podman-"))
    try:
        yield Podman(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def repo() -> str:
    return f"test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    d = open_store(tmp_path / "store")
    yield d
    d.close()


@pytest.fixture
def store2(tmp_path: Path) -> Iterator[Store]:
    d = open_store(tmp_path / "store2")
    yield d
    d.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in list(os.environ):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(k)
    # no ambient credentials: every test says which it uses
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
