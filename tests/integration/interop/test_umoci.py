"""umoci unpacks pallet's OCI layouts into exactly the input tree (content, modes, symlinks).

umoci 0.4.7 reads OCI media types with gzip or uncompressed layers only (a Docker-typed manifest
is "not implemented", a zstd layer "not correct mediatype") and refuses a tag that names an
index ("tag is ambiguous"), so multi-platform images are handed to it as ``pallet save
--platform``; the Docker family and zstd are covered by skopeo and containerd.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from support.images import Interop, tree_state
from support.tools import require_tool

pytestmark = pytest.mark.integration


def umoci(*args: str) -> str:
    r = subprocess.run([require_tool("umoci"), *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"umoci {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def unpacked(bundle: Path) -> Path:
    rootfs = bundle / "rootfs"
    assert rootfs.is_dir()
    return rootfs


@pytest.mark.parametrize("source", ["directory", "tarball"])
@pytest.mark.parametrize("key", ["oci", "multi"])
def test_umoci_unpack(interop: Interop, key: str, source: str, tmp_path: Path) -> None:
    platform = "linux/arm64" if key == "multi" else None
    if source == "directory":
        layout = interop.layout(key, platform)
    else:
        layout = tmp_path / "layout"
        layout.mkdir()
        with tarfile.open(interop.archive(key, "oci", platform)) as tf:
            tf.extractall(layout, filter="tar")
    assert "v1" in umoci("ls", "--layout", str(layout)).split()
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{layout}:v1", str(bundle))
    want = interop.expected[platform or "linux/amd64"]
    assert tree_state(unpacked(bundle)) == tree_state(want)
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["process"]["args"] == ["/bin/busybox", "echo", "hello-pallet"]
