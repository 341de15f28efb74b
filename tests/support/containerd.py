"""A private containerd for interop tests (spec/containerd.md §6.1).

Everything lives in a temporary directory: root, state, the gRPC/ttrpc/debug sockets and the
``opt`` plugin's directory; CRI is disabled; images are unpacked with the ``native`` snapshotter
(plain copies, no mounts). The daemon is stopped by its own PID, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Containerd", "containerd", "require_tool", "start_containerd"]

NAMESPACE = "pallet-test"


def require_tool(name: str) -> str:
    """Path of an external tool; a missing tool fails the test (tests/conftest.py's rule)."""
    import shutil

    path = shutil.which(name)
    if path is None:
        pytest.fail(f"required tool {name!r} is not installed (see .ci/run)")
    return path


@dataclass
class Containerd:
    directory: Path
    socket: str
    proc: subprocess.Popen[bytes]
    ctr_path: str
    namespace: str = NAMESPACE

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def log(self) -> str:
        try:
            return (self.directory / "containerd.log").read_text(errors="replace")
        except OSError:
            return ""

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ctr -a <socket> -n <namespace> args…``; on failure the test fails with output."""
        cmd = [self.ctr_path, "-a", self.socket, "-n", self.namespace, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            pytest.fail(
                f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}\n"
                f"containerd log tail:\n{self.log[-2000:]}"
            )
        return res

    @contextlib.contextmanager
    def snapshot_view(self, key: str) -> Iterator[Path]:
        """The directory of the committed native snapshot ``key`` (a chain ID).

        A native view of a committed snapshot is a read-only bind of the snapshot's own
        directory. ``ctr snapshots view --mounts`` prints that bind in the same call (a view
        without a lease may be collected right after), and we read the source directory without
        mounting anything."""
        vkey = f"pallet-view-{uuid.uuid4().hex[:12]}"
        out = self.ctr("snapshots", "--snapshotter", "native", "view", "--mounts", vkey, key)
        try:
            (mount,) = json.loads(out.stdout)
            mount = {k.lower(): v for k, v in mount.items()}  # ctr 1.6 prints Go field names
            assert mount["type"] == "bind", mount
            yield Path(mount["source"])
        finally:
            self.ctr("snapshots", "--snapshotter", "native", "rm", vkey, check=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_containerd(d: Path) -> Containerd:
    """Start ``containerd`` with everything under ``d``; wait until ``ctr version`` answers."""
    binary = require_tool("containerd")
    ctr = require_tool("ctr")
    require_tool("runc")
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
            start_new_session=True,
        )
    c = Containerd(directory=d, socket=sock, proc=proc, ctr_path=ctr)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(sock):
            r = c.ctr("version", check=False, timeout=10)
            if r.returncode == 0:
                return c
        time.sleep(0.05)
    c.stop()
    pytest.fail(f"containerd did not start:\n{c.log[-3000:]}")


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    c = start_containerd(tmp_path_factory.mktemp("ctrd"))
    yield c
    c.stop()
