"""The scripts in ``examples/`` run as a user runs them (``python examples/X.py …``, in a child
process), against the fixture registry; what they made is then read back from the registry or
the tarball and checked byte for byte.

The registry is the documentation's (``conftest.doc_registry``): it holds ``base:1``, a
two-platform base image, which the third example pulls.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support.docs import REPO, DocRegistry, make_trees

pytestmark = pytest.mark.integration

OCI_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def run_example(name: str, *args: str, cwd: Path) -> list[str]:
    """``python examples/NAME ARGS…``; its standard output's lines."""
    res = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, f"{name} exited {res.returncode}:\n{res.stderr}"
    return res.stdout.splitlines()


def get(reg: DocRegistry, path: str, accept: str = "*/*") -> bytes:
    req = urllib.request.Request(f"http://{reg.host}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body: bytes = resp.read()
        return body


def blob(reg: DocRegistry, repo: str, digest: str) -> bytes:
    data = get(reg, f"{repo}/blobs/{digest}")
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def layer_files(data: bytes) -> dict[str, bytes]:
    """The regular files of a layer (gzip or uncompressed), by path without a leading ``/``."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for member in tf:
            f = tf.extractfile(member) if member.isfile() else None
            if f is not None:
                out[member.name.lstrip("./")] = f.read()
    return out


def manifest(reg: DocRegistry, repo: str, ref: str) -> tuple[str, dict[str, Any]]:
    body = get(reg, f"{repo}/manifests/{ref}", OCI_ACCEPT)
    return "sha256:" + hashlib.sha256(body).hexdigest(), json.loads(body)


def test_export_and_push(doc_registry: DocRegistry, tmp_path: Path) -> None:
    make_trees(tmp_path)
    name = f"{doc_registry.host}/examples/app:1"
    out = run_example(
        "export_and_push.py", "dist", name, "--root", str(tmp_path / "store"), cwd=tmp_path
    )
    digest, m = manifest(doc_registry, "examples/app", "1")
    assert out == [digest]
    config = json.loads(blob(doc_registry, "examples/app", m["config"]["digest"]))
    assert config["config"]["Cmd"] == ["/app/run"]
    [layer] = m["layers"]
    files = layer_files(blob(doc_registry, "examples/app", layer["digest"]))
    assert files == {
        "app/run": (tmp_path / "dist" / "run").read_bytes(),
        "app/VERSION": (tmp_path / "dist" / "VERSION").read_bytes(),
    }


def test_two_platforms(doc_registry: DocRegistry, tmp_path: Path) -> None:
    make_trees(tmp_path)
    name = f"{doc_registry.host}/examples/multi:1"
    root = str(tmp_path / "store")
    out = run_example(
        "two_platforms.py", "amd64", "arm64", name, "--push", "--root", root, cwd=tmp_path
    )
    digest, index = manifest(doc_registry, "examples/multi", "1")
    assert out == [digest]
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = {
        f"{d['platform']['os']}/{d['platform']['architecture']}": d["digest"]
        for d in index["manifests"]
    }
    assert sorted(platforms) == ["linux/amd64", "linux/arm64"]
    for platform, mdigest in platforms.items():
        arch = platform.split("/")[1]
        got, m = manifest(doc_registry, "examples/multi", mdigest)
        assert got == mdigest
        config = json.loads(blob(doc_registry, "examples/multi", m["config"]["digest"]))
        assert config["architecture"] == arch
        [layer] = m["layers"]
        files = layer_files(blob(doc_registry, "examples/multi", layer["digest"]))
        assert files == {"etc/arch": f"{arch}\n".encode()}


def test_base_layer_docker_tar(doc_registry: DocRegistry, tmp_path: Path) -> None:
    make_trees(tmp_path)
    base = f"{doc_registry.host}/base:1"
    out = run_example(
        "base_layer_docker_tar.py",
        base,
        "dist",
        "app.tar",
        "--name",
        "example.com/app:1",
        "--platform",
        "linux/arm64",
        "--root",
        str(tmp_path / "store"),
        cwd=tmp_path,
    )
    base_digest, base_index = manifest(doc_registry, "base", "1")
    assert out[0] == base_digest
    [arm64] = [d for d in base_index["manifests"] if d["platform"]["architecture"] == "arm64"]
    _, base_manifest = manifest(doc_registry, "base", arm64["digest"])

    with tarfile.open(tmp_path / "app.tar") as tf:
        members = {m.name: m for m in tf}

        def read(name: str) -> bytes:
            f = tf.extractfile(members[name])
            assert f is not None
            return f.read()

        [entry] = json.loads(read("manifest.json"))
        assert entry["RepoTags"] == ["example.com/app:1"]
        layers = [read(path) for path in entry["Layers"]]
        config = json.loads(read(entry["Config"]))
        # the root the tarball holds is the image the script printed
        index = json.loads(read("index.json"))
        assert [d["digest"] for d in index["manifests"]] == [out[1]]

    # the base's layers, byte for byte, then the directory's
    assert len(layers) == len(base_manifest["layers"]) + 1
    for data, desc in zip(layers, base_manifest["layers"], strict=False):
        assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
    assert layer_files(layers[-1]) == {
        "app/run": (tmp_path / "dist" / "run").read_bytes(),
        "app/VERSION": (tmp_path / "dist" / "VERSION").read_bytes(),
    }
    assert config["architecture"] == "arm64"
    assert config["config"]["Env"] == ["PATH=/usr/local/bin:/usr/bin:/bin"]  # the base's
    assert config["config"]["Cmd"] == ["/bin/sh"]
