"""containerd imports what pallet writes (``ctr images import``, native snapshotter), unpacks it
into exactly the input tree and runs it; and pallet loads what containerd exports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.rootfs import chain_ids
from support.containerd import Containerd, new_namespace
from support.images import Interop, tree_state
from support.validate import validate_image, validate_layout

pytestmark = pytest.mark.integration

CASES = [
    ("oci", "oci"),
    ("oci", "docker"),
    ("docker", "oci"),
    ("docker", "docker"),
    ("oci-zstd", "oci"),
    ("multi", "oci"),
    ("multi-docker", "oci"),
]


@pytest.fixture
def ns() -> str:
    """A namespace of the session's daemon for this test alone."""
    return new_namespace("interop")


def images(c: Containerd, ns: str) -> dict[str, str]:
    """name -> target digest, from ``ctr images ls``."""
    out = c.ctr(ns, "images", "ls").stdout.splitlines()[1:]
    return {line.split()[0]: line.split()[2] for line in out if line.strip()}


@pytest.mark.parametrize(("key", "fmt"), CASES, ids=[f"{k}/{f}" for k, f in CASES])
def test_ctr_import_unpacks_the_same_tree(
    ctrd: Containerd, ns: str, interop: Interop, key: str, fmt: str
) -> None:
    name = interop.name(key)
    args = ["images", "import", "--snapshotter", "native"]
    if key.startswith("multi"):
        args.append("--all-platforms")
    out = ctrd.ctr(ns, *args, str(interop.archive(key, fmt))).stdout
    try:
        assert f"unpacking {name} ({interop.roots[key].digest})...done" in out
        assert images(ctrd, ns)[name] == interop.roots[key].digest
        c = ctrd.client(ns)
        try:  # containerd's own import labels the graph: it passes the checks of pallet's
            validate_image(c.content, interop.roots[key])
        finally:
            c.close()
        amd = interop.built[key][0]
        with ctrd.snapshot_view(ns, chain_ids(amd.diff_ids)[-1]) as rootfs:
            assert tree_state(rootfs) == tree_state(interop.expected["linux/amd64"])
        if key.startswith("multi"):  # every platform's content came in
            for img in interop.built[key]:
                info = ctrd.ctr(ns, "content", "get", str(img.config.digest)).stdout
                assert json.loads(info)["architecture"] == img.platform.architecture
    finally:
        ctrd.ctr(ns, "images", "rm", name)


@pytest.mark.parametrize("key", ["oci", "docker"])
def test_ctr_run(ctrd: Containerd, ns: str, interop: Interop, key: str) -> None:
    name = interop.name(key)
    ctrd.ctr(ns, "images", "import", "--snapshotter", "native", str(interop.archive(key, "docker")))
    try:
        out = ctrd.ctr(
            ns, "run", "--rm", "--snapshotter", "native", name, f"pallet-{key}",
            "/bin/busybox", "echo", "hello-pallet",
        ).stdout  # fmt: skip
        assert out == "hello-pallet\n"
    finally:
        ctrd.ctr(ns, "images", "rm", name)


@pytest.mark.parametrize("key", ["oci", "multi"])
def test_pallet_loads_a_ctr_export(
    ctrd: Containerd, ns: str, interop: Interop, key: str, tmp_path: Path
) -> None:
    name = interop.name(key)
    args = ["images", "import", "--snapshotter", "native", "--all-platforms"]
    ctrd.ctr(ns, *args, str(interop.archive(key)))
    exported = tmp_path / "ctr-export.tar"
    try:
        ctrd.ctr(ns, "images", "export", "--all-platforms", str(exported), name)
    finally:
        ctrd.ctr(ns, "images", "rm", name)
    assert [d.digest for d in validate_layout(exported.read_bytes())] == [interop.roots[key].digest]
    root = tmp_path / "store"
    r = subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), "load", "-i", str(exported)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"loaded {name} {interop.roots[key].digest}\n"
    out = tmp_path / "rootfs"
    r = subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), "unpack", name, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert tree_state(out) == tree_state(interop.expected["linux/amd64"])
