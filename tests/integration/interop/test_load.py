"""pallet loads what skopeo writes from a pallet layout (``oci-archive:`` and
``docker-archive:``): the layers decompress to the original diff IDs, digests are kept where
skopeo keeps them, and the loaded image unpacks to the input tree."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.compression import decompressed_reader
from pallet.layout import image_layers
from pallet.metadata.store import open_store
from pallet.oci.descriptor import Platform
from support.images import Interop, tree_state
from support.tools import require_tool
from support.validate import validate_image

pytestmark = pytest.mark.integration


def skopeo(*args: str) -> None:
    r = subprocess.run([require_tool("skopeo"), *args], capture_output=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"skopeo {' '.join(args)} failed:\n{r.stderr.decode()}")


def pallet(root: Path, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def source(ix: Interop, key: str) -> str:
    # skopeo 1.9 finds a tag only among OCI-typed entries; a single entry needs no tag
    return f"oci:{ix.layout(key)}" + ("" if "docker" in key else ":v1")


def valid(root: Path, name: str) -> None:
    """The image ``name`` in the store at ``root`` passes the graph check."""
    db = open_store(root)
    try:
        validate_image(db.content, db.images.get(name).target)
    finally:
        db.close()


def loaded_diff_ids(root: Path, name: str, platform: str = "linux/amd64") -> list[str]:
    db = open_store(root)
    try:
        target = db.images.get(name).target
        _, layers, diff_ids = image_layers(db.content, target, Platform.parse(platform))
        got = []
        for ly in layers:
            h = hashlib.sha256()
            with db.content.open(ly) as raw, decompressed_reader(raw) as tar:
                while chunk := tar.read(1 << 20):
                    h.update(chunk)
            got.append("sha256:" + h.hexdigest())
        assert got == [str(d) for d in diff_ids]
        return got
    finally:
        db.close()


# skopeo 1.9 refuses zstd layers in a docker-archive ("not supported for docker images")
PAIRS = [
    ("oci", "oci-archive"),
    ("oci", "docker-archive"),
    ("docker", "oci-archive"),
    ("docker", "docker-archive"),
    ("oci-zstd", "oci-archive"),
]


@pytest.mark.parametrize(("key", "transport"), PAIRS, ids=[f"{k}/{t}" for k, t in PAIRS])
def test_load_skopeo_archives(interop: Interop, key: str, transport: str, tmp_path: Path) -> None:
    name = f"example.com/from-skopeo/{key}:{transport}"
    archive = tmp_path / "skopeo.tar"
    skopeo("copy", source(interop, key), f"{transport}:{archive}:{name}")
    root = tmp_path / "store"
    out = pallet(root, "load", "-i", str(archive))
    assert out.startswith(f"loaded {name} sha256:")
    img = interop.built[key][0]
    assert loaded_diff_ids(root, name) == [str(d) for d in img.diff_ids]
    if transport == "oci-archive" and key != "docker":
        # nothing to convert: skopeo keeps the manifest, pallet keeps skopeo's bytes
        assert out.split()[2] == img.manifest.digest
    pallet(root, "unpack", name, str(tmp_path / "rootfs"))
    assert tree_state(tmp_path / "rootfs") == tree_state(interop.expected["linux/amd64"])
    assert "0 problems" in pallet(root, "fsck")
    valid(root, name)


def test_load_skopeo_multi_platform(interop: Interop, tmp_path: Path) -> None:
    name = "example.com/from-skopeo/multi:v1"
    archive = tmp_path / "skopeo.tar"
    skopeo("copy", "--all", source(interop, "multi"), f"oci-archive:{archive}:{name}")
    root = tmp_path / "store"
    assert (
        pallet(root, "load", "-i", str(archive))
        == f"loaded {name} {interop.roots['multi'].digest}\n"
    )
    for img in interop.built["multi"]:
        plat = str(img.platform)
        assert loaded_diff_ids(root, name, plat) == [str(d) for d in img.diff_ids]
    pallet(root, "gc")
    assert "0 problems" in pallet(root, "fsck")
    valid(root, name)
