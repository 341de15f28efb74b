"""A private containerd for the tests (spec/containerd.md §6.1).

Root, state, the gRPC/ttrpc/debug sockets and the ``opt`` plugin's directory all live in one
temporary directory; CRI is disabled. The daemon is started in its own session (``setsid``),
waited for with ``ctr -a SOCK version``, and stopped by its own PID. One daemon serves the whole
test session (the ``ctrd`` fixture in tests/conftest.py); every test works in a namespace
of its own (:func:`new_namespace`), so tests never see each other's images, leases or snapshots.
Images are unpacked with the ``native`` snapshotter (plain copies), whose committed snapshots
the tests read in place (:meth:`Containerd.snapshot_view`).
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

from pallet.containerd import Client, connect
from support.tools import require_tool

__all__ = ["Containerd", "new_namespace", "start_containerd"]


def new_namespace(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Containerd:
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

    @contextlib.contextmanager
    def snapshot_view(self, namespace: str, key: str) -> Iterator[Path]:
        """The directory of the committed native snapshot ``key`` (a chain ID).

        A native view of a committed snapshot is a read-only bind of the snapshot's own
        directory. ``ctr snapshots view --mounts`` prints that bind in the same call (a view
        without a lease may be collected right after), and we read the source directory without
        mounting anything."""
        vkey = f"pallet-view-{uuid.uuid4().hex[:12]}"
        sn = ("snapshots", "--snapshotter", "native")
        out = self.ctr(namespace, *sn, "view", "--mounts", vkey, key)
        try:
            (mount,) = json.loads(out.stdout)
            mount = {k.lower(): v for k, v in mount.items()}  # ctr 1.6 prints Go field names
            assert mount["type"] == "bind", mount
            yield Path(mount["source"])
        finally:
            self.ctr(namespace, *sn, "rm", vkey, check=False)

    def stop(self) -> None:
        """Stop our daemon, by its PID only."""
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
    require_tool("runc")  # `ctr run` in the tests starts containers
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
    c = Containerd(directory=d, socket=sock, proc=proc, ctr_path=ctr)
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
