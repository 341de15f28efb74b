"""The store commands on a real containerd, as a user runs them (real processes, exit codes).

``pallet export … --containerd SOCK --namespace NS`` writes an image (a layer holding the host's
static ``/bin/busybox`` and a file) straight into a private daemon and unpacks it; ``ctr`` then
lists and runs it; ``pallet images ls``, ``content ls``, ``unpack`` and ``push`` read it from the
daemon; ``pallet images rm`` deletes it and the daemon's collector frees every blob and snapshot
that pallet wrote, with no lease left behind. ``$PALLET_CONTAINERD_ADDRESS`` selects the daemon
as ``--containerd`` does, and a socket without a daemon is one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support.containerd import Containerd, new_namespace
from support.registry import Registry
from support.validate import validate_image

pytestmark = pytest.mark.integration

BUSYBOX = "/bin/busybox"
HELLO = b"hello from a pallet export\n"
GC_SNAPSHOT = "containerd.io/gc.ref.snapshot."


def pallet(
    root: Path | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.update(env or {})
    argv = [sys.executable, "-m", "pallet.cli"]
    if root is not None:
        argv += ["--root", str(root)]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, env=e, timeout=300, check=False
    )


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"{p.args}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p.stdout


def valid(ctrd: Containerd, ns: str, digest: str) -> None:
    """The image ``digest`` in namespace ``ns`` of the daemon passes the graph check."""
    c = ctrd.client(ns)
    try:
        validate_image(c.content, digest)
    finally:
        c.close()


def layer_dir(tmp_path: Path) -> Path:
    if not Path(BUSYBOX).is_file():
        pytest.fail("busybox-static is required (apt-get install busybox-static)")
    d = tmp_path / "layer"
    (d / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, d / "bin" / "busybox")
    (d / "hello.txt").write_bytes(HELLO)
    return d


def export(
    root: Path, layer: Path, name: str, *conn: str, env: dict[str, str] | None = None
) -> str:
    """``pallet export`` of ``layer`` as ``name`` with unpack; returns the printed digest."""
    out = ok(
        pallet(
            root,
            "export",
            "--layer",
            str(layer),
            "--cmd",
            json.dumps([BUSYBOX, "cat", "/hello.txt"]),
            "-t",
            name,
            "-o",
            "type=image,unpack=true",
            "--progress",
            "quiet",
            *conn,
            env=env,
        )
    )
    lines = out.split()
    assert len(lines) == 1 and lines[0].startswith("sha256:"), out
    return lines[0]


def ctr_images(ctrd: Containerd, ns: str) -> dict[str, str]:
    """name -> target digest, from ``ctr images ls``."""
    rows = ctrd.ctr(ns, "images", "ls").stdout.splitlines()[1:]
    return {r.split()[0]: r.split()[2] for r in rows if r.strip()}


def ctr_leases(ctrd: Containerd, ns: str) -> list[str]:
    return [r for r in ctrd.ctr(ns, "leases", "ls").stdout.splitlines()[1:] if r.strip()]


def ctr_snapshots(ctrd: Containerd, ns: str, snapshotter: str) -> dict[str, str]:
    """key -> kind, from ``ctr snapshots --snapshotter S ls``."""
    rows = ctrd.ctr(ns, "snapshots", "--snapshotter", snapshotter, "ls").stdout.splitlines()[1:]
    return {r.split()[0]: r.split()[-1] for r in rows if r.strip()}


def image_blobs(ctrd: Containerd, ns: str, manifest: str) -> tuple[str, list[str]]:
    """(config digest, layer digests) of the manifest as the daemon stores it."""
    m = json.loads(ctrd.ctr(ns, "content", "get", manifest).stdout)
    return m["config"]["digest"], [x["digest"] for x in m["layers"]]


@pytest.mark.parametrize("snapshotter", [None, "native"], ids=["default-overlayfs", "native"])
def test_export_run_list_unpack_and_collect(
    ctrd: Containerd, tmp_path: Path, snapshotter: str | None
) -> None:
    ns = new_namespace("cli")
    root = tmp_path / "store"
    name = "example.com/pallet/cli:1"
    conn = ["--containerd", ctrd.socket, "--namespace", ns]
    sn_flag = ["--snapshotter", snapshotter] if snapshotter else []
    sn = snapshotter or "overlayfs"
    digest = export(root, layer_dir(tmp_path), name, *conn, *sn_flag)

    # containerd has the image under its name, at the digest that export printed
    assert ctr_images(ctrd, ns) == {name: digest}
    assert ctr_leases(ctrd, ns) == []  # export's temporary lease is gone
    config, layers = image_blobs(ctrd, ns, digest)
    blobs = {digest, config, *layers}
    assert len(layers) == 1
    listed = ctrd.ctr(ns, "content", "ls").stdout
    assert all(b in listed for b in blobs)

    # unpacked into the snapshotter: ctr runs it without unpacking again
    chain = ctr_snapshots(ctrd, ns, sn)
    assert list(chain.values()) == ["Committed"]
    run = ctrd.ctr(ns, "run", "--rm", *sn_flag, name, f"id1-{sn}")
    assert run.stdout.encode() == HELLO

    # pallet reads the daemon's store: images, content with labels, unpack into a directory
    imgs = json.loads(ok(pallet(None, "images", "ls", "--format", "json", *conn)))
    assert [(i["name"], i["target"]["digest"]) for i in imgs] == [(name, digest)]
    quiet = pallet(None, "images", "ls", "-q", f"--containerd={ctrd.socket}", "--namespace", ns)
    assert ok(quiet).split() == [name]
    text = ok(pallet(None, "images", "ls", *conn))
    assert name in text and digest in text
    infos = json.loads(ok(pallet(None, "content", "ls", "--format", "json", *conn)))
    by_digest = {i["digest"]: i for i in infos}
    assert set(by_digest) == blobs
    assert by_digest[config]["labels"] == {GC_SNAPSHOT + sn: next(iter(chain))}
    assert by_digest[digest]["labels"]["containerd.io/gc.ref.content.config"] == config
    assert by_digest[layers[0]]["labels"]["containerd.io/uncompressed"] == next(iter(chain))
    assert set(ok(pallet(None, "content", "ls", "-q", *conn)).split()) == blobs
    dest = tmp_path / "unpacked"
    out = ok(pallet(None, "unpack", name, str(dest), *conn))
    assert out.startswith(f"{digest} -> {dest}")
    assert (dest / "hello.txt").read_bytes() == HELLO
    assert (dest / "bin" / "busybox").read_bytes() == Path(BUSYBOX).read_bytes()
    assert not (tmp_path / "xdg").exists()  # no embedded store was opened by those commands
    valid(ctrd, ns, digest)

    # images rm: the daemon's collector frees every blob and snapshot that pallet wrote
    assert ok(pallet(None, "images", "rm", *conn, name)).split() == [name]
    assert ctr_images(ctrd, ns) == {}
    listed = ctrd.ctr(ns, "content", "ls").stdout
    assert not any(b in listed for b in blobs), listed
    for b in blobs:  # the bytes are gone from the daemon's disk, not only unlisted
        assert not (ctrd.content_root / "blobs" / "sha256" / b.removeprefix("sha256:")).exists()
    assert ctr_snapshots(ctrd, ns, sn) == {}
    assert ctr_leases(ctrd, ns) == []
    assert ok(pallet(None, "images", "ls", "-q", *conn)) == ""
    assert ok(pallet(None, "content", "ls", "-q", *conn)) == ""


def test_env_address_selects_containerd(ctrd: Containerd, tmp_path: Path) -> None:
    ns = new_namespace("env")
    root = tmp_path / "store"
    name = "example.com/pallet/env:1"
    env = {"PALLET_CONTAINERD_ADDRESS": ctrd.socket, "PALLET_CONTAINERD_NAMESPACE": ns}
    digest = export(root, layer_dir(tmp_path), name, "--snapshotter", "native", env=env)
    assert ctr_images(ctrd, ns) == {name: digest}
    # the same commands without the variable work on the embedded store, which has no image
    assert ok(pallet(root, "images", "ls", "-q")) == ""
    assert ok(pallet(root, "images", "ls", "-q", env=env)).split() == [name]
    # --namespace overrides the namespace variable; the address still comes from the variable
    addr_only = {"PALLET_CONTAINERD_ADDRESS": ctrd.socket}
    assert ok(pallet(root, "images", "ls", "-q", "--namespace", ns, env=addr_only)).split() == [
        name
    ]
    assert ok(pallet(root, "images", "ls", "-q", env=addr_only)) == ""  # namespace "default"
    out = ok(pallet(root, "content", "ls", "-q", env=env)).split()
    assert digest in out and len(out) == 3
    ok(pallet(root, "images", "rm", name, env=env))
    assert ctr_images(ctrd, ns) == {}
    assert ctrd.ctr(ns, "content", "ls").stdout.splitlines()[1:] == []
    assert ctr_snapshots(ctrd, ns, "native") == {}
    assert ctr_leases(ctrd, ns) == []


def test_push_from_containerd(
    ctrd: Containerd, plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    ns = new_namespace("push")
    conn = ["--containerd", ctrd.socket, "--namespace", ns]
    name = "example.com/pallet/push:1"
    digest = export(tmp_path / "store", layer_dir(tmp_path), name, *conn, "--snapshotter", "native")
    dest = f"{plain_registry.host}/{repo}:v1"
    out = ok(pallet(None, "push", name, dest, "--progress", "quiet", *conn))
    assert out.strip() == dest
    # what the registry has is the daemon's image: pull it into an embedded store and compare
    other = tmp_path / "pulled"
    assert ok(pallet(other, "pull", dest, "--progress", "quiet")).strip() == digest
    got = tmp_path / "got"
    ok(pallet(other, "unpack", dest, str(got)))
    assert (got / "hello.txt").read_bytes() == HELLO
    valid(ctrd, ns, digest)
    # a name the daemon does not have: one line, exit 1
    p = pallet(None, "push", "example.com/none:1", dest, "--progress", "quiet", *conn)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "example.com/none:1" in p.stderr, p.stderr
    ok(pallet(None, "images", "rm", name, *conn))
    assert ctrd.ctr(ns, "content", "ls").stdout.splitlines()[1:] == []


def test_rm_of_a_missing_image_is_one_line(ctrd: Containerd) -> None:
    ns = new_namespace("rm")
    conn = ["--containerd", ctrd.socket, "--namespace", ns]
    p = pallet(None, "images", "rm", "example.com/none:1", *conn)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("pallet: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "example.com/none:1" in p.stderr and "not found" in p.stderr


def _stale_socket(path: Path) -> str:
    """A unix socket file that no process listens on (a daemon that died)."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return str(path)


@pytest.mark.parametrize("kind", ["missing", "stale"])
def test_no_daemon_is_one_line_and_exit_1(tmp_path: Path, kind: str) -> None:
    sock = str(tmp_path / "none.sock") if kind == "missing" else _stale_socket(tmp_path / "s.sock")
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "f").write_text("x")
    dest = tmp_path / "dest"
    root = tmp_path / "store"
    commands = [
        ["images", "ls"],
        ["images", "rm", "example.com/x:1"],
        ["content", "ls"],
        ["push", "example.com/x:1", "localhost:1/x:1", "--progress", "quiet"],
        ["unpack", "example.com/x:1", str(dest)],
        ["export", "--layer", str(layer), "-t", "example.com/x:1", "--progress", "quiet"],
    ]
    for argv in commands:
        for how in ("flag", "env"):
            if how == "flag":
                p = pallet(root, *argv, f"--containerd={sock}")
            else:
                p = pallet(root, *argv, env={"PALLET_CONTAINERD_ADDRESS": sock})
            assert p.returncode == 1, (argv, how, p.stderr)
            assert p.stdout == "", (argv, how)
            assert p.stderr.startswith(f"pallet: error: containerd at {sock}: "), (argv, how)
            assert p.stderr.count("\n") == 1 and p.stderr.endswith("\n"), (argv, how, p.stderr)
            assert "Traceback" not in p.stderr
    assert not dest.exists()


def test_bad_namespace_is_a_usage_error(tmp_path: Path) -> None:
    for ns in ("", "bad/ns"):
        p = pallet(tmp_path / "s", "images", "ls", "--containerd", "--namespace", ns)
        assert p.returncode == 2 and p.stdout == "", p.stderr
        assert p.stderr.startswith("pallet: error: namespace") and p.stderr.count("\n") == 1
