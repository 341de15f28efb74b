"""A private Docker daemon and a private Podman for the interop tests.

Docker: ``dockerd`` is started once per session (the ``docker`` fixture in
tests/integration/conftest.py), as tests/support/containerd.py starts containerd, with everything
of its own under one temporary directory: ``--data-root``, ``--exec-root``, ``--pidfile``, the API
socket (``--host unix://…``) and a ``--config-file`` of its own (the host's
``/etc/docker/daemon.json`` is not read) that moves the daemon's key file out of ``/etc/docker``.
``--storage-driver vfs`` needs no mounts of its own, and ``--bridge none --iptables=false`` leaves
the host's network alone, so containers run with ``--network none``. It talks to the suite's
private containerd (``--containerd``, the session's ``ctrd``; dockerd keeps to namespaces of its
own there), never to a system one: dockerd would otherwise take ``/run/containerd/containerd.sock``
when it exists. Registries on 127.0.0.0/8 are insecure (plain HTTP) by Docker's own default, which
is what the registry fixtures listen on. The daemon is stopped by its own PID.

Podman has no daemon: :class:`Podman` (the ``podman`` fixture in tests/integration/conftest.py, one
empty store per test) runs it rootful with ``--root``/``--runroot``/``--tmpdir`` in a temporary
directory, ``--storage-driver vfs``, ``--cgroup-manager cgroupfs``, ``--events-backend file`` and
``runc``; a ``containers.conf`` and a ``storage.conf`` of its own (``CONTAINERS_CONF``,
``CONTAINERS_STORAGE_CONF``) keep the host's out, put its network configuration there, and take its
locks from files there instead of the host-wide ``/dev/shm/libpod_lock``.

A missing ``dockerd``, ``docker`` or ``podman`` fails the test (``require_tool``): CI installs
them (scripts/setup.sh), so a skip would hide a broken setup.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.containerd import Containerd
from support.tools import require_tool

__all__ = ["Docker", "Podman", "start_dockerd"]


def _run(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 180,
    log: str = "",
) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run(list(cmd), input=input, capture_output=True, env=env, timeout=timeout)
    if check and res.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout.decode(errors='replace')}\n"
            f"{res.stderr.decode(errors='replace')}"
            + (f"\nlog tail:\n{log[-2000:]}" if log else "")
        )
    return res


@dataclass
class Docker:
    directory: Path
    host: str
    proc: subprocess.Popen[bytes]
    cli: str

    @property
    def log(self) -> str:
        try:
            return (self.directory / "dockerd.log").read_text(errors="replace")
        except OSError:
            return ""

    def __call__(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[bytes]:
        """``docker --host <ours> args…``; on failure the test fails with the output."""
        return _run(
            [self.cli, "--host", self.host, *args],
            input=input,
            check=check,
            timeout=timeout,
            log=self.log if check else "",
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_dockerd(d: Path, containerd: Containerd) -> Docker:
    """Start ``dockerd`` with everything under ``d`` on ``containerd``; wait until it answers."""
    binary = require_tool("dockerd")
    cli = require_tool("docker")
    require_tool("runc")
    d.mkdir(parents=True, exist_ok=True)
    # no host daemon.json; the daemon ID key, /etc/docker/key.json by default, goes here too
    (d / "daemon.json").write_text(json.dumps({"deprecated-key-path": str(d / "key.json")}))
    host = f"unix://{d / 'docker.sock'}"
    args = [
        binary,
        "--config-file", str(d / "daemon.json"),
        "--data-root", str(d / "data"),
        "--exec-root", str(d / "exec"),
        "--pidfile", str(d / "docker.pid"),
        "--host", host,
        "--containerd", containerd.socket,
        "--containerd-namespace", "pallet-docker",
        "--containerd-plugins-namespace", "pallet-docker-plugins",
        "--storage-driver", "vfs",
        "--bridge", "none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--log-level", "warn",
    ]  # fmt: skip
    with open(d / "dockerd.log", "ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    docker = Docker(directory=d, host=host, proc=proc, cli=cli)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(d / "docker.sock"):
            r = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
            if r.returncode == 0:
                return docker
        time.sleep(0.1)
    docker.stop()
    pytest.fail(f"dockerd did not start:\n{docker.log[-3000:]}")


class Podman:
    """``podman`` rootful with all of its state under ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cli = require_tool("podman")
        require_tool("runc")
        require_tool("conmon")
        for sub in ("root", "run", "tmp", "networks"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        conf = directory / "containers.conf"
        conf.write_text(
            "[engine]\n"
            'lock_type = "file"\n'
            f'image_copy_tmp_dir = "{directory / "tmp"}"\n'
            "[network]\n"
            f'network_config_dir = "{directory / "networks"}"\n'
        )
        storage = directory / "storage.conf"
        storage.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'graphroot = "{directory / "root"}"\n'
            f'runroot = "{directory / "run"}"\n'
        )
        auth = directory / "auth.json"
        auth.write_text("{}\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"},
            "CONTAINERS_CONF": str(conf),
            "CONTAINERS_STORAGE_CONF": str(storage),
            "REGISTRY_AUTH_FILE": str(auth),  # no host credentials
            "TMPDIR": str(directory / "tmp"),
        }

    def __call__(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[bytes]:
        """``podman <private state flags> args…``; on failure the test fails with the output."""
        d = self.directory
        cmd = [
            self.cli,
            "--root", str(d / "root"),
            "--runroot", str(d / "run"),
            "--tmpdir", str(d / "tmp"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            "--runtime", "runc",
            *args,
        ]  # fmt: skip
        return _run(cmd, env=self.env, input=input, check=check, timeout=timeout)
