"""Podman (rootful, private storage) loads both tarball formats ``pallet save`` writes, keeps
their digests, and runs the image."""

from __future__ import annotations

import pytest

from support.engines import Podman
from support.images import Interop

pytestmark = pytest.mark.integration

# Podman 4.3 raises RLIMIT_NOFILE and RLIMIT_NPROC of a rootful container above this machine's
# hard limits unless told otherwise, and runc then fails ("error setting rlimits ... operation
# not permitted") where the process lacks CAP_SYS_RESOURCE (CI containers do). These limits fit.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


@pytest.mark.parametrize("fmt", ["oci", "docker"])
@pytest.mark.parametrize("key", ["oci", "docker", "multi"])
def test_podman_load_both_formats(podman: Podman, interop: Interop, key: str, fmt: str) -> None:
    """``podman load`` of an OCI layout tarball and of a Docker archive: the image's config is
    the image ID, and the digest pallet gave the root is among its repository digests (for
    an index, Podman keeps the platform it runs on and the index digest)."""
    name = interop.name(key)
    img = interop.built[key][0]  # linux/amd64
    platform = "linux/amd64" if fmt == "docker" and key == "multi" else None
    archive = interop.archive(key, fmt, platform)
    out = podman("load", "--input", str(archive)).stdout.decode()
    assert out.strip().splitlines()[-1] == f"Loaded image: {name}"
    got = podman("image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", name)
    image_id, digests = got.stdout.decode().split(" ", 1)
    assert "sha256:" + image_id == str(img.config.digest)
    root = img.manifest.digest if platform else interop.roots[key].digest
    assert f'"{name.rsplit(":", 1)[0]}@{root}"' in digests


def test_podman_run(podman: Podman, interop: Interop) -> None:
    name = interop.name("oci")
    podman("load", "--input", str(interop.archive("oci", "oci")))
    out = podman("run", "--rm", "--network", "none", *ULIMITS, name).stdout
    assert out == b"hello-pallet\n"
