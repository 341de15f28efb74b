"""pallet push, pull, login and logout as a user runs them, against the real registry."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from pallet.images import Image
from pallet.metadata.store import open_store
from support.images import graph, random_image
from support.registry import Registry
from support.validate import validate_image


def pallet(
    root: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pallet.cli", "--root", str(root), *args],
        input=input,
        capture_output=True,
        env=e,
        timeout=300,
    )


def test_push_then_pull_into_another_store(
    plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    db = open_store(src)
    m = random_image(db, 11, sizes=[300_000] * 3).manifest
    db.images.create(Image(name="local/img:1", target=m))
    want = graph(db, m)
    db.close()
    dest = f"{plain_registry.host}/{repo}:v1"
    p = pallet(src, "push", "local/img:1", dest, "--progress", "plain")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().strip() == dest
    assert "#1 DONE" in p.stderr.decode()
    dst = tmp_path / "dst"
    p = pallet(dst, "pull", dest, "--progress", "quiet")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().strip() == m.digest
    db2 = open_store(dst)
    assert db2.images.get(dest).target.digest == m.digest
    assert graph(db2, db2.images.get(dest).target) == want
    validate_image(db2.content, db2.images.get(dest).target)
    db2.close()
    out = json.loads(pallet(dst, "fsck", "--format", "json").stdout)
    assert out == []
    # the store's labels (containerd.io/distribution.source.<registry>) stay in the store:
    # a tarball handed to others names no registry the image came through
    p = pallet(dst, "save", dest, "-o", "-")
    assert p.returncode == 0, p.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as tf:
        index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
    assert [e["annotations"] for e in index["manifests"]] == [
        {"io.containerd.image.name": dest, "org.opencontainers.image.ref.name": "v1"}
    ]


def test_push_unknown_image_and_bad_reference(tmp_path: Path) -> None:
    p = pallet(tmp_path / "s", "push", "nope:1")
    assert p.returncode == 1 and b"nope:1" in p.stderr and b"Traceback" not in p.stderr
    p = pallet(tmp_path / "s", "pull", "UPPER/Case")
    assert p.returncode == 2 and b"UPPER/Case" in p.stderr


def test_login_logout_password_stdin(tls_registry: Registry, tmp_path: Path) -> None:
    assert tls_registry.tls is not None
    user, password = next(iter(tls_registry.users.items()))
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
    ca = str(tls_registry.tls.ca_cert)

    def login(secret: str) -> subprocess.CompletedProcess[bytes]:
        return pallet(
            tmp_path / "s",
            "login",
            tls_registry.host,
            *("-u", user, "--password-stdin", "--ca-file", ca),
            input=secret.encode() + b"\n",
            env=env,
        )

    p = login(password)
    assert p.returncode == 0, p.stderr.decode()
    cfg = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert tls_registry.host in cfg["auths"]
    p = login("wrong")
    assert p.returncode != 0 and b"Traceback" not in p.stderr
    assert password.encode() not in p.stdout + p.stderr
    p = pallet(tmp_path / "s", "logout", tls_registry.host, env=env)
    assert p.returncode == 0
    cfg = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert tls_registry.host not in cfg.get("auths", {})


def test_push_by_digest_prints_the_digest_reference(
    plain_registry: Registry, repo: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    db = open_store(src)
    m = random_image(db, 12, sizes=[1000]).manifest
    db.images.create(Image(name="local/img:1", target=m))
    db.close()
    dest = f"{plain_registry.host}/{repo}"
    p = pallet(src, "push", "--by-digest", "local/img:1", dest, "--progress", "quiet")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode() == f"{dest}@{m.digest}\n"
    p = pallet(tmp_path / "dst", "pull", f"{dest}@{m.digest}", "--progress", "quiet")
    assert p.returncode == 0 and p.stdout.decode() == f"{m.digest}\n", p.stderr.decode()
    # a tag is refused, with BuildKit's text
    p = pallet(src, "push", "--by-digest", "local/img:1", f"{dest}:v1", "--progress", "quiet")
    assert p.returncode == 2
    assert p.stderr.decode() == f"pallet: error: can't push tagged ref {dest}:v1 by digest\n"
