"""``pallet export`` as a user runs it: the README's first command, inputs, outputs, errors that
leave nothing behind, reproducibility across processes, bases and pushes with a real registry."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pallet.metadata.store import open_store
from pallet.oci.digest import Digest
from support import oci_schemas
from support.registry import Registry
from support.tools import require_tool
from support.validate import validate_image, validate_layout

EPOCH = "1700000000"


def pallet(
    root: Path, *args: str, env: dict[str, str] | None = None, stdout: Any = None
) -> subprocess.CompletedProcess[bytes]:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        capture_output=stdout is None,
        stdout=stdout,
        stderr=subprocess.PIPE if stdout is not None else None,
        env=e,
        timeout=300,
    )


def ok(p: subprocess.CompletedProcess[bytes]) -> str:
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode() if p.stdout is not None else ""


def tree(root: Path, files: dict[str, bytes], mtime: int | None = None) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if mtime is not None:
            os.utime(p, (mtime, mtime))
    if mtime is not None:
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            os.utime(d, (mtime, mtime))
    return root


def read(root: Path, dgst: str) -> bytes:
    db = open_store(root)
    try:
        with db.content.open(Digest.parse(dgst)) as f:
            return f.read()
    finally:
        db.close()


def valid(root: Path, digest: str) -> None:
    """The image ``digest`` in the store at ``root`` passes the graph check."""
    db = open_store(root)
    try:
        validate_image(db.content, digest)
    finally:
        db.close()


def layer_names(root: Path, desc: dict[str, Any]) -> set[str]:
    data = gzip.decompress(read(root, desc["digest"]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return set(tf.getnames())


def assert_untouched(root: Path) -> None:
    """No image, no lease, and (after a collection) no blob."""
    ok(pallet(root, "gc"))
    db = open_store(root)
    try:
        assert db.images.list() == []
        assert db.leases.list() == []
        assert list(db.content.walk()) == []
    finally:
        db.close()


def test_readme_first_command(tmp_path: Path) -> None:
    src = tree(tmp_path / "app", {"hello.txt": b"hello\n", "bin/run": b"#!/bin/sh\n"})
    root = tmp_path / "store"
    out = ok(
        pallet(
            root,
            "export",
            "--layer",
            f"{src}:/app",
            "-t",
            "example/hello:1",
            "--cmd",
            '["/app/bin/run"]',
            "--progress",
            "plain",
        )
    )
    digest = out.strip()
    assert digest.startswith("sha256:") and len(digest) == 71
    ls = ok(pallet(root, "images", "ls"))
    assert "example/hello:1" in ls and digest in ls
    man = json.loads(read(root, digest))
    oci_schemas.validate("oci-manifest", man)
    assert layer_names(root, man["layers"][0]) == {"app", "app/hello.txt", "app/bin", "app/bin/run"}
    cfg = json.loads(read(root, man["config"]["digest"]))
    assert cfg["config"]["Cmd"] == ["/app/bin/run"]
    fsck = json.loads(ok(pallet(root, "fsck", "--format", "json")))
    assert fsck == []
    valid(root, digest)


def test_plain_progress_lines(tmp_path: Path) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    p = pallet(tmp_path / "s", "export", "--layer", str(src), "-t", "p:1", "--progress", "plain")
    err = ok(p) and p.stderr.decode()
    lines = err.splitlines()
    assert lines[0] == "#1 exporting to image"
    assert any(x.startswith("#1 exporting layers ") and x.endswith(" done") for x in lines)
    assert any(x.startswith("#1 naming to p:1 ") for x in lines)
    assert lines[-1].startswith("#1 DONE ")
    raw = pallet(tmp_path / "s", "export", "--layer", str(src), "--progress", "rawjson")
    events = [json.loads(x) for x in raw.stderr.decode().splitlines()]
    assert {e["id"] for e in events} >= {"exporting layers"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "type=image,push=maybe"], "non-bool value specified for push"),
        (["-o", "type=image,compression=lz4"], "unsupported compression type lz4"),
        (["-o", "type=tarball"], "output type 'tarball'"),
        (["-t", "Bad Name"], "failed to parse Bad Name"),
        (["--env", "NOVALUE"], "env 'NOVALUE'"),
        (["--expose", "70000"], "port '70000'"),
        (["--base", "missing/image:1"], "missing/image:1"),
        (["--platform", "linux"], "platform 'linux'"),
        (["-o", "type=image,annotation-index.x=1"], "index annotations not supported"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    root = tmp_path / "s"
    p = pallet(root, "export", "--layer", str(src), *args, "--progress", "quiet")
    err = p.stderr.decode()
    assert p.returncode in (1, 2), err
    assert len(err.strip().splitlines()) == 1 and err.startswith("pallet: error:"), err
    assert message in err and "Traceback" not in err
    assert_untouched(root)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ('type=image,"name=a', 'column 19: extraneous or missing " in quoted-field'),
        ('type=image,name="a"b', 'column 17: bare " in non-quoted-field'),
    ],
)
def test_output_quotes_are_as_strict_as_buildx(tmp_path: Path, spec: str, why: str) -> None:
    """buildx reads -o with Go's encoding/csv: a stray quote is an error, not an image."""
    src = tree(tmp_path / "d", {"f": b"1"})
    root = tmp_path / "s"
    p = pallet(root, "export", "--layer", str(src), "-o", spec, "--progress", "quiet")
    assert p.returncode == 2
    assert p.stderr.decode() == f"pallet: error: output {spec!r}: parse error on line 1, {why}\n"
    assert p.stdout == b""
    assert_untouched(root)


def test_bad_inputs_exit_2(tmp_path: Path) -> None:
    root = tmp_path / "s"
    p = pallet(root, "export", "--layer", str(tmp_path / "nope"))
    assert p.returncode == 2 and b"not a directory" in p.stderr
    d = tree(tmp_path / "d", {"f": b"1"})
    p = pallet(root, "export", "--layer", str(d), "--rootfs", str(d))
    assert p.returncode == 2 and b"give every --rootfs before" in p.stderr
    cfg = tmp_path / "c.json"
    cfg.write_text("[1]")
    p = pallet(root, "export", "--layer", str(d), "--config", str(cfg))
    assert p.returncode == 2 and b"not a JSON object" in p.stderr
    assert_untouched(root)


def test_file_growing_while_exported_fails_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that grows while --rootfs reads it is an error naming it, not a file cut at its
    first size. The file grows after its first read (a hook on the read, no timing involved);
    it is larger than the tar writer's 1 MiB buffer, so it takes several reads."""
    from pallet.cli.main import main

    src = tree(tmp_path / "r", {"etc/a": b"a", "var/log/big": b"x" * 3_000_000})
    big = os.fsencode(src / "var/log/big")
    real_readv = os.readv
    grown = []

    def readv(fd: int, buffers: Any) -> int:
        n = real_readv(fd, buffers)
        if not grown and os.readlink(f"/proc/self/fd/{fd}").encode() == big:
            grown.append(n)
            with open(big, "ab") as f:
                f.write(b"y" * 500_000)
        return n

    monkeypatch.setattr(os, "readv", readv)
    root = tmp_path / "s"
    rc = main(
        ["--root", str(root), "export", "--rootfs", str(src), "-t", "g:1", "--progress", "quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 1 and grown
    assert err == (
        f"pallet: error: file {src}/var/log/big: changed while being read "
        "(3000000 bytes when listed, 3500000 after reading)\n"
    )
    monkeypatch.undo()
    assert_untouched(root)


def test_rootfs_chain_gives_minimal_layers_with_whiteouts(tmp_path: Path) -> None:
    r1 = tree(tmp_path / "r1", {"etc/a": b"a", "etc/b": b"b", "usr/x": b"x" * 1000}, 1_600_000_000)
    r2 = tree(tmp_path / "r2", {"etc/a": b"a", "usr/x": b"y" * 1000}, 1_600_000_000)
    root = tmp_path / "s"
    digest = ok(
        pallet(
            root,
            "export",
            "--rootfs",
            str(r1),
            "--rootfs",
            str(r2),
            "-t",
            "r:1",
            "--progress",
            "quiet",
        )
    ).strip()
    man = json.loads(read(root, digest))
    assert len(man["layers"]) == 2
    assert layer_names(root, man["layers"][1]) == {"etc", "etc/.wh.b", "usr", "usr/x"}
    # on top of a stored base: the unchanged tree gives an empty layer, a change a small one
    r3 = tree(tmp_path / "r3", {"etc/a": b"a", "usr/x": b"y" * 1000, "new": b"n"}, 1_600_000_000)
    digest2 = ok(
        pallet(
            root, "export", "--base", "r:1", "--rootfs", str(r3), "-t", "r:2", "--progress", "quiet"
        )
    ).strip()
    man2 = json.loads(read(root, digest2))
    assert [x["digest"] for x in man2["layers"][:2]] == [x["digest"] for x in man["layers"]]
    assert layer_names(root, man2["layers"][2]) == {"new"}
    cfg2 = json.loads(read(root, man2["config"]["digest"]))
    cfg1 = json.loads(read(root, man["config"]["digest"]))
    assert cfg2["history"][:2] == cfg1["history"]
    # --layer on a base: no unpack needed, the base's blobs are reused as they are
    d = tree(tmp_path / "d", {"f": b"1"})
    digest3 = ok(
        pallet(
            root,
            "export",
            "--base",
            "r:2",
            "--layer",
            f"{d}:/srv",
            "-t",
            "r:3",
            "--progress",
            "quiet",
        )
    ).strip()
    man3 = json.loads(read(root, digest3))
    assert [x["digest"] for x in man3["layers"][:3]] == [x["digest"] for x in man2["layers"]]
    assert layer_names(root, man3["layers"][3]) == {"srv", "srv/f"}
    for dg in (digest, digest2, digest3):
        valid(root, dg)


def test_multi_platform_index_and_metadata_file(tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"arch": b"amd64"})
    b = tree(tmp_path / "b", {"arch": b"arm64"})
    root = tmp_path / "s"
    md = tmp_path / "md.json"
    digest = ok(
        pallet(
            root,
            "export",
            "--rootfs",
            f"linux/amd64={a}",
            "--rootfs",
            f"linux/arm64={b}",
            "-o",
            "type=image,name=m:1,oci-mediatypes=false",
            "--metadata-file",
            str(md),
            "--progress",
            "quiet",
        )
    ).strip()
    index = json.loads(read(root, digest))
    oci_schemas.validate("docker-manifest-list", index)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    meta = json.loads(md.read_text())
    assert meta["containerimage.digest"] == digest and meta["image.name"] == "m:1"
    assert meta["containerimage.descriptor"]["digest"] == digest
    assert meta["containerimage.descriptor"]["mediaType"] == index["mediaType"]
    valid(root, digest)


def test_reproducible_across_processes_and_stores(tmp_path: Path) -> None:
    digests = []
    for i in range(2):
        src = tree(tmp_path / f"src{i}", {"a": b"1", "d/b": b"2"}, 1_900_000_000 + i * 77)
        p = pallet(
            tmp_path / f"store{i}",
            "export",
            "--layer",
            str(src),
            "-o",
            "type=image,name=r:1,rewrite-timestamp=true",
            "--progress",
            "quiet",
            env={"SOURCE_DATE_EPOCH": EPOCH},
        )
        digests.append(ok(p).strip())
    assert digests[0] == digests[1]
    db = open_store(tmp_path / "store0")
    try:
        assert int(db.images.get("r:1").created_at.timestamp()) == int(EPOCH)  # type: ignore[union-attr]
    finally:
        db.close()


def test_oci_tarball_to_stdout_reads_in_skopeo(tmp_path: Path) -> None:
    src = tree(tmp_path / "d", {"f": b"1"})
    out = tmp_path / "img.tar"
    with out.open("wb") as f:
        p = pallet(
            tmp_path / "s",
            "export",
            "--layer",
            str(src),
            "-o",
            "type=oci,dest=-,name=example.com/x:2",
            "--progress",
            "quiet",
            stdout=f,
        )
    assert p.returncode == 0, p.stderr
    r = subprocess.run(
        [require_tool("skopeo"), "inspect", f"oci-archive:{out}"], capture_output=True, timeout=120
    )
    assert r.returncode == 0, r.stderr.decode()
    info = json.loads(r.stdout)
    assert info["Architecture"] and len(info["Layers"]) == 1
    validate_layout(out.read_bytes())


def test_push_to_registry_and_base_from_registry(
    plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    src = tree(tmp_path / "d", {"base.txt": b"base"})
    ref = f"{plain_registry.host}/{repo}:base"
    root = tmp_path / "s"
    p = pallet(
        root,
        "export",
        "--layer",
        str(src),
        "-o",
        f"type=image,name={ref},push=true,registry.insecure=true",
        "--progress",
        "plain",
    )
    digest = ok(p).strip()
    err = p.stderr.decode()
    assert "#1 pushing layers" in err and f"pushing manifest for {ref}@{digest}" in err
    r = subprocess.run(
        [require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert Digest.parse("sha256:" + __import__("hashlib").sha256(r.stdout).hexdigest()) == digest
    # a fresh store: --base pulls it, the new image reuses its layer blob
    root2 = tmp_path / "s2"
    d2 = tree(tmp_path / "d2", {"top.txt": b"top"})
    digest2 = ok(
        pallet(
            root2,
            "export",
            "--base",
            ref,
            "--insecure-registry",
            "--layer",
            str(d2),
            "-t",
            "child:1",
            "--progress",
            "quiet",
        )
    ).strip()
    man = json.loads(read(root2, digest2))
    base_man = json.loads(read(root, digest))
    assert man["layers"][0]["digest"] == base_man["layers"][0]["digest"]
    assert layer_names(root2, man["layers"][1]) == {"top.txt"}
    valid(root, digest)
    valid(root2, digest2)
    # push-by-digest refuses a tag, with BuildKit's text
    p = pallet(
        root,
        "export",
        "--layer",
        str(src),
        "-o",
        f"type=image,name={ref},push=true,push-by-digest=true,registry.insecure=true",
        "--progress",
        "quiet",
    )
    assert p.returncode != 0 and b"can't push tagged ref" in p.stderr


def test_push_only_export_never_downloads_the_base_layers(
    plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    src = tree(tmp_path / "d", {"big.bin": os.urandom(300_000)})
    base = f"{plain_registry.host}/{repo}:base"
    root = tmp_path / "s"
    ok(
        pallet(
            root,
            "export",
            "--layer",
            str(src),
            "-o",
            f"type=image,name={base},push=true,registry.insecure=true",
            "--progress",
            "quiet",
        )
    )
    base_layer = json.loads(
        subprocess.run(
            [require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false", f"docker://{base}"],
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout
    )["layers"][0]["digest"]
    # a fresh store, push only (store=false): the base's layer is mounted, never fetched
    root2 = tmp_path / "s2"
    top = tree(tmp_path / "top", {"top.txt": b"top"})
    child = f"{plain_registry.host}/{repo}-child:1"
    digest = ok(
        pallet(
            root2,
            "export",
            "--base",
            base,
            "--insecure-registry",
            "--layer",
            str(top),
            "-o",
            f"type=image,name={child},push=true,store=false,registry.insecure=true",
            "--progress",
            "quiet",
        )
    ).strip()
    db = open_store(root2)
    try:
        present = {str(i.digest) for i in db.content.walk()}
        assert base_layer not in present
        assert db.images.list() == []
    finally:
        db.close()
    out = tmp_path / "copy"
    r = subprocess.run(
        [
            require_tool("skopeo"),
            "copy",
            "--src-tls-verify=false",
            f"docker://{child}",
            f"oci:{out}:x",
        ],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    assert (out / "blobs/sha256" / base_layer.split(":")[1]).stat().st_size > 300_000
    validate_layout(out)  # what the registry holds is whole, base layer included
