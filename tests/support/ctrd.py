"""A private containerd for the tests of :mod:`pallet.containerd` (spec/containerd.md §6.1).

Root, state, the gRPC/ttrpc/debug sockets and the ``opt`` plugin's directory all live in one
temporary directory; CRI is disabled. The daemon is started in its own session (``setsid``),
waited for with ``ctr -a SOCK version``, and stopped at the end of the test session by its own
PID. One daemon serves the whole session; every test works in a namespace of its own
(:func:`new_namespace`). A missing ``containerd``/``ctr`` fails the tests: it is installed by
scripts/setup.sh and CI, so a skip would hide a broken setup.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pallet.containerd import Client, connect

__all__ = ["Ctrd", "client", "ctrd", "new_namespace", "start_ctrd"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"required tool {name!r} is not installed (apt-get install containerd runc)")
    return path


def new_namespace(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Ctrd:
    directory: Path
    socket: str
    proc: subprocess.Popen[bytes]
    ctr_path: str

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def content_root(self) -> Path:
        """The daemon's local content store (blobs/, ingest/)."""
        return self.root / "io.containerd.content.v1.content"

    @property
    def log(self) -> str:
        try:
            return (self.directory / "containerd.log").read_text(errors="replace")
        except OSError:
            return ""

    def ctr(
        self, namespace: str, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``ctr -a SOCK -n NAMESPACE args…``; a failure fails the test with the output."""
        cmd = [self.ctr_path, "-a", self.socket, "-n", namespace, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            pytest.fail(
                f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}\n"
                f"containerd log tail:\n{self.log[-2000:]}"
            )
        return res

    def client(self, namespace: str) -> Client:
        return connect(self.socket, namespace)

    def stop(self) -> None:
        """Stop our daemon, by its PID only."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_ctrd(d: Path) -> Ctrd:
    """Start ``containerd`` with everything under ``d``; wait until ``ctr version`` answers."""
    binary = _tool("containerd")
    ctr = _tool("ctr")
    d.mkdir(parents=True, exist_ok=True)
    for sub in ("root", "state", "opt"):
        (d / sub).mkdir(exist_ok=True)
    sock = str(d / "containerd.sock")
    (d / "config.toml").write_text(
        "\n".join(
            [
                "version = 2",
                f'root = "{d / "root"}"',
                f'state = "{d / "state"}"',
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
                "[grpc]",
                f'  address = "{sock}"',
                "[ttrpc]",
                f'  address = "{sock}.ttrpc"',
                "[debug]",
                f'  address = "{d / "debug.sock"}"',
                '  level = "info"',
                "[metrics]",
                '  address = ""',
                '[plugins."io.containerd.internal.v1.opt"]',
                f'  path = "{d / "opt"}"',
                "",
            ]
        )
    )
    with open(d / "containerd.log", "ab") as log:
        proc = subprocess.Popen(
            [binary, "--config", str(d / "config.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # setsid: no signal from our terminal reaches it
        )
    c = Ctrd(directory=d, socket=sock, proc=proc, ctr_path=ctr)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(sock):
            r = subprocess.run(
                [ctr, "-a", sock, "version"], capture_output=True, text=True, timeout=10
            )
            if r.returncode == 0:
                return c
        time.sleep(0.02)
    c.stop()
    pytest.fail(f"containerd did not start:\n{c.log[-3000:]}")


_shared: Ctrd | None = None


@pytest.fixture(scope="session")
def ctrd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctrd]:
    """One private daemon for the session, whichever test module asks first."""
    global _shared
    owner = False
    if _shared is None or _shared.proc.poll() is not None:
        _shared = start_ctrd(tmp_path_factory.mktemp("ctrd"))
        owner = True
    yield _shared
    if owner and _shared is not None:
        _shared.stop()
        _shared = None


@pytest.fixture
def client(ctrd: Ctrd) -> Iterator[Client]:
    """A client in a fresh namespace of the session's daemon."""
    c = ctrd.client(new_namespace())
    yield c
    c.close()
