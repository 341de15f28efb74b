"""skopeo reads what pallet writes: ``oci:``, ``oci-archive:`` and ``docker-archive:``, inspected
and copied to a directory and to a real registry, digests kept wherever no conversion happens."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from pallet.oci import mediatypes as mt
from support.images import Interop
from support.layout_schemas import validate_json_blobs
from support.registry import Registry
from support.tools import require_tool
from support.validate import validate_layout

pytestmark = pytest.mark.integration

SINGLE = ["oci", "docker", "oci-zstd"]
ALL = [*SINGLE, "multi", "multi-docker"]


def skopeo(*args: str) -> bytes:
    r = subprocess.run([require_tool("skopeo"), *args], capture_output=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"skopeo {' '.join(args)} failed:\n{r.stderr.decode()}")
    return r.stdout


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_digests(layout: Path) -> set[str]:
    return {f"sha256:{p.name}" for p in (layout / "blobs" / "sha256").iterdir()}


def graph(ix: Interop, key: str) -> set[str]:
    out = {str(ix.roots[key].digest)}
    for img in ix.built[key]:
        out |= {str(d.digest) for d in [img.manifest, img.config, *img.layers]}
    return out


def layout_ref(ix: Interop, key: str) -> str:
    """``oci:DIR:v1``; for Docker media types ``oci:DIR`` (skopeo 1.9 looks a tag up only among
    OCI-typed index.json entries, but takes a layout's single entry whatever its type)."""
    return f"oci:{ix.layout(key)}" + ("" if "docker" in key else ":v1")


@pytest.mark.parametrize("key", ALL)
def test_inspect_oci_archive_and_layout(interop: Interop, key: str) -> None:
    root = interop.roots[key]
    for src in (f"oci-archive:{interop.archive(key)}", layout_ref(interop, key)):
        assert sha(skopeo("inspect", "--raw", src)) == root.digest, src
    img = interop.built[key][0]  # linux/amd64
    info = json.loads(skopeo("inspect", layout_ref(interop, key)))
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Layers"] == [str(d.digest) for d in img.layers]
    assert info["Digest"] == root.digest
    cfg = skopeo("inspect", "--config", "--raw", f"oci-archive:{interop.archive(key)}")
    assert sha(cfg) == img.config.digest
    if key.startswith("multi"):
        arm = interop.built[key][1]
        src = f"oci-archive:{interop.archive(key)}"
        info = json.loads(skopeo("--override-arch", "arm64", "inspect", src))
        assert info["Architecture"] == "arm64"
        assert info["Layers"] == [str(d.digest) for d in arm.layers]
        cfg = skopeo("--override-arch", "arm64", "inspect", "--config", "--raw", src)
        assert sha(cfg) == arm.config.digest


@pytest.mark.parametrize("key", SINGLE)
def test_inspect_docker_archive(interop: Interop, key: str) -> None:
    img = interop.built[key][0]
    path = interop.archive(key, "docker")
    for src in (f"docker-archive:{path}", f"docker-archive:{path}:{interop.name(key)}"):
        info = json.loads(skopeo("inspect", src))
        # docker-archive reports layers by diff ID (it hands out uncompressed layers)
        assert info["Layers"] == [str(d) for d in img.diff_ids]
        assert sha(skopeo("inspect", "--config", "--raw", src)) == img.config.digest
    # the Docker archive is an OCI layout as well
    assert sha(skopeo("inspect", "--raw", f"oci-archive:{path}")) == img.manifest.digest


@pytest.mark.parametrize("key", ALL)
def test_copy_layout_keeps_every_digest(interop: Interop, key: str, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    if key == "multi-docker":
        # skopeo writes only OCI indexes into an OCI layout (it would have to convert the
        # Docker list, which --preserve-digests forbids): copy it to dir: instead
        skopeo("copy", "--all", "--preserve-digests", layout_ref(interop, key), f"dir:{dst}")
        assert sha((dst / "manifest.json").read_bytes()) == interop.roots[key].digest
        for img in interop.built[key]:
            m = dst / f"{img.manifest.digest.hex}.manifest.json"
            assert sha(m.read_bytes()) == img.manifest.digest
            for d in [img.config, *img.layers]:
                assert sha((dst / d.digest.hex).read_bytes()) == d.digest
        return
    skopeo("copy", "--all", "--preserve-digests", layout_ref(interop, key), f"oci:{dst}:copy")
    (entry,) = json.loads((dst / "index.json").read_text())["manifests"]
    assert entry["digest"] == interop.roots[key].digest
    assert blob_digests(dst) == graph(interop, key)
    for p in (dst / "blobs" / "sha256").iterdir():
        assert sha(p.read_bytes()) == f"sha256:{p.name}"
    validate_layout(dst)


@pytest.mark.parametrize("key", SINGLE)
def test_copy_archives_to_dir(interop: Interop, key: str, tmp_path: Path) -> None:
    img = interop.built[key][0]
    d1 = tmp_path / "from-oci-archive"
    skopeo("copy", f"oci-archive:{interop.archive(key)}", f"dir:{d1}")
    assert sha((d1 / "manifest.json").read_bytes()) == img.manifest.digest
    for desc in [img.config, *img.layers]:
        assert sha((d1 / desc.digest.hex).read_bytes()) == desc.digest
    d2 = tmp_path / "from-docker-archive"
    skopeo("copy", f"docker-archive:{interop.archive(key, 'docker')}", f"dir:{d2}")
    m = json.loads((d2 / "manifest.json").read_text())
    assert m["config"]["digest"] == img.config.digest
    assert sha((d2 / img.config.digest.hex).read_bytes()) == img.config.digest
    assert [ly["digest"] for ly in m["layers"]] == [str(d) for d in img.diff_ids]
    for did in img.diff_ids:
        assert sha((d2 / did.hex).read_bytes()) == did


@pytest.mark.parametrize("key", ALL)
def test_copy_to_registry(interop: Interop, key: str, plain_registry: Registry, repo: str) -> None:
    dest = f"{plain_registry.host}/{repo}"
    root = interop.roots[key]
    skopeo(
        "copy",
        "--all",
        "--dest-tls-verify=false",
        f"oci-archive:{interop.archive(key)}",
        f"docker://{dest}:oci",
    )
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}:oci")
    assert sha(raw) == root.digest
    if key.startswith("multi"):
        want = mt.OCI_INDEX if key == "multi" else mt.DOCKER_MANIFEST_LIST
        assert json.loads(raw)["mediaType"] == want
        for img in interop.built[key]:
            child = skopeo(
                "inspect", "--raw", "--tls-verify=false", f"docker://{dest}@{img.manifest.digest}"
            )
            assert sha(child) == img.manifest.digest
        return
    # from the Docker archive: skopeo rebuilds the manifest, the config stays
    img = interop.built[key][0]
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"docker-archive:{interop.archive(key, 'docker')}",
        f"docker://{dest}:docker",
    )
    cfg = skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{dest}:docker")
    assert sha(cfg) == img.config.digest
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dest}:docker"))
    assert len(info["Layers"]) == len(img.layers)


FORMATS = [(k, "oci") for k in ALL] + [(k, "docker") for k in SINGLE]


@pytest.mark.parametrize(("key", "fmt"), FORMATS, ids=[f"{k}/{f}" for k, f in FORMATS])
def test_every_json_file_validates(interop: Interop, key: str, fmt: str) -> None:
    """index.json, oci-layout, manifest.json and every manifest, index and config pallet wrote,
    against the image-spec (and Docker schema 2) JSON schemas."""
    data = interop.archive(key, fmt).read_bytes()
    n = validate_json_blobs(data)
    images = len(interop.built[key])
    assert n == 2 + (fmt == "docker") + 2 * images + key.startswith("multi")
    assert [d.digest for d in validate_layout(data)] == [interop.roots[key].digest]
