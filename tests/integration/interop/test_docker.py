"""Docker reads what pallet writes and pallet reads what Docker writes, on a private dockerd:
``docker load`` of ``pallet save --format docker`` and of ``export -o type=docker,dest=-``, then
``docker run``; ``docker pull`` + ``docker run`` of what ``pallet push`` sent to a real registry
(one platform and an index); ``docker save | pallet load`` + ``pallet unpack``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from support.engines import Docker
from support.images import Interop, make_tree, tree_state
from support.registry import Registry

pytestmark = pytest.mark.integration

HELLO = b"hello-pallet\n"  # what the interop images' Cmd prints


def pallet(root: Path, *args: str, input: bytes | None = None) -> bytes:
    r = subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        input=input,
        capture_output=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def inspect(dk: Docker, ref: str) -> dict[str, object]:
    (info,) = json.loads(dk("image", "inspect", ref).stdout)
    assert isinstance(info, dict)
    return info


def run(dk: Docker, ref: str, *cmd: str) -> bytes:
    # no network: the daemon has no bridge (--bridge none)
    return dk("run", "--rm", "--network", "none", ref, *cmd).stdout


@pytest.mark.parametrize(
    ("key", "platform"), [("oci", None), ("docker", None), ("multi", "linux/amd64")]
)
def test_docker_load_of_pallet_save_then_run(
    docker: Docker, interop: Interop, key: str, platform: str | None
) -> None:
    """``pallet save --format docker | docker load`` (README), both media-type families, and
    one platform of an index."""
    name = interop.name(key)
    img = interop.built[key][0]  # linux/amd64
    out = docker("load", input=interop.archive(key, "docker", platform).read_bytes()).stdout
    try:
        assert out.decode().strip().splitlines()[-1] == f"Loaded image: {name}"
        info = inspect(docker, name)
        assert info["Id"] == str(img.config.digest)  # Docker's image ID is the config digest
        assert info["RootFS"] == {"Type": "layers", "Layers": [str(d) for d in img.diff_ids]}
        assert info["Architecture"] == "amd64" and info["Os"] == "linux"
        assert run(docker, name) == HELLO
        assert run(docker, name, "/bin/busybox", "cat", "/opt/app/config.txt") == (
            b"platform linux/amd64\n"
        )
    finally:
        docker("rmi", name)


def test_docker_load_of_export_to_stdout_then_run(docker: Docker, tmp_path: Path) -> None:
    """``pallet export -o type=docker,dest=- | docker load``: the exporter's own tarball."""
    rootfs = make_tree(tmp_path / "rootfs", 7, busybox=True)
    name = f"example.com/exported/{uuid.uuid4().hex[:8]}:v1"
    tarball = pallet(
        tmp_path / "store", "export", "--rootfs", str(rootfs),
        "--cmd", '["/bin/busybox", "cat", "/data/ro.txt"]',
        "-o", f"type=docker,dest=-,name={name}", "--progress", "quiet",
    )  # fmt: skip
    out = docker("load", input=tarball).stdout
    try:
        assert out.decode().strip().splitlines()[-1] == f"Loaded image: {name}"
        assert run(docker, name) == b"read only\n"
        assert run(docker, name, "/bin/busybox", "cat", "/data/ro-link.txt") == b"read only\n"
        assert run(docker, name, "/bin/busybox", "stat", "-c", "%a", "/private") == b"700\n"
    finally:
        docker("rmi", name)


@pytest.mark.parametrize("key", ["oci", "multi", "multi-docker"])
def test_docker_pull_of_pallet_push_then_run(
    docker: Docker, interop: Interop, plain_registry: Registry, repo: str, key: str
) -> None:
    """What ``pallet push`` sends, Docker pulls (digest kept) and runs: one manifest, an OCI
    index and a Docker manifest list (Docker picks linux/amd64 out of the two platforms)."""
    ref = f"{plain_registry.host}/{repo}:v1"
    root = interop.roots[key]
    pallet(interop.root, "push", interop.name(key), ref, "--progress", "quiet")
    docker("pull", "--quiet", ref)
    try:
        info = inspect(docker, ref)
        assert info["RepoDigests"] == [f"{plain_registry.host}/{repo}@{root.digest}"]
        assert info["Id"] == str(interop.built[key][0].config.digest)
        assert run(docker, ref) == HELLO
    finally:
        docker("rmi", ref)


def test_docker_save_into_pallet_load_and_unpack(
    docker: Docker, interop: Interop, tmp_path: Path
) -> None:
    """``docker save | pallet load`` then ``pallet unpack``: Docker's own archive format (layer
    directories, ``repositories``), and the unpacked tree is the image's."""
    name = interop.name("oci")
    docker("load", input=interop.archive("oci", "docker").read_bytes())
    try:
        saved = docker("save", name).stdout
    finally:
        docker("rmi", name)
    store = tmp_path / "store"
    imported = "example.com/from-docker/oci:v1"
    pallet(store, "load", "--tag", imported, input=saved)
    out = tmp_path / "rootfs"
    pallet(store, "unpack", imported, str(out))
    assert tree_state(out) == tree_state(interop.expected["linux/amd64"])
