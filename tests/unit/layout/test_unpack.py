"""``unpack``: an image's root filesystem in a directory, and hostile images kept inside it."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.archive.diff import write_diff
from pallet.errors import DigestMismatch, InvalidArgument
from pallet.images import Image
from pallet.layout import unpack
from pallet.metadata.store import Store, open_store
from pallet.oci.descriptor import Platform
from support.images import build_image, build_index, make_tree, tree_state
from support.malicious_layers import CORPUS, MaliciousLayer, build_host


def outside_state(base: Path, root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``base`` except the inside of ``root``."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == root:
            dirnames[:] = []
            continue
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if Path(p) == root:  # its content (so its mtime and links) is the unpack's business
                out[os.path.relpath(p, base)] = (st.st_mode, st.st_uid, st.st_ino)
                continue
            content: object = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            out[os.path.relpath(p, base)] = (
                st.st_mode,
                st.st_uid,
                st.st_nlink,
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
                content,
            )
    return out


def test_unpack_layers_in_order(db: Store, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t1", 1)
    upper = tmp_path / "t2"
    shutil.copytree(tree, upper, symlinks=True)
    (upper / "etc" / "hostname").write_text("changed\n")
    shutil.rmtree(upper / "deep")
    (upper / "new").mkdir()
    (upper / "new" / "file").write_text("new\n")
    buf = io.BytesIO()
    write_diff(tree, upper, buf)
    img = build_image(db, [tree, buf.getvalue()])
    res = unpack(db.content, img.manifest, tmp_path / "out" / "rootfs")
    assert res.manifest == img.manifest and list(res.diff_ids) == img.diff_ids
    assert tree_state(tmp_path / "out" / "rootfs") == tree_state(upper)


def test_unpack_index_picks_the_platform(db: Store, tmp_path: Path) -> None:
    a = build_image(db, [make_tree(tmp_path / "a", 1)], platform="linux/amd64")
    b = build_image(db, [make_tree(tmp_path / "b", 2)], platform="linux/arm64", oci=False)
    idx = build_index(db, [a, b])
    res = unpack(db.content, idx, tmp_path / "o1", platform=Platform.parse("linux/arm64"))
    assert res.manifest.digest == b.manifest.digest
    assert tree_state(tmp_path / "o1") == tree_state(tmp_path / "b")


def test_unpack_destination_rules(db: Store, tmp_path: Path) -> None:
    img = build_image(db, [make_tree(tmp_path / "t", 1)])
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(InvalidArgument, match="not empty"):
        unpack(db.content, img.manifest, full)
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgument, match="not a directory"):
        unpack(db.content, img.manifest, tmp_path / "file")
    os.symlink(tmp_path / "empty", tmp_path / "link")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="symbolic link"):
        unpack(db.content, img.manifest, tmp_path / "link")
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_layer_that_is_not_its_diff_id_removes_the_new_destination(
    db: Store, tmp_path: Path
) -> None:
    import json

    from support.images import put

    img = build_image(db, [make_tree(tmp_path / "t", 1)])
    with db.content.open(img.config) as f:
        cfg = json.loads(f.read())
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    c = put(db, json.dumps(cfg).encode(), media_type=img.config.media_type)
    with db.content.open(img.manifest) as f:
        m = json.loads(f.read())
    m["config"] = c.to_json()
    bad = put(db, json.dumps(m).encode(), media_type=img.manifest.media_type)
    with pytest.raises(DigestMismatch):
        unpack(db.content, bad, tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_image_writes_nothing_outside(
    db: Store, tmp_path: Path, case: MaliciousLayer
) -> None:
    host = build_host(tmp_path / "base")
    # the "lower layer" of the corpus (symlinks to outside and up) becomes the image's first layer
    lower = io.BytesIO()
    write_diff(None, host.root, lower)
    for p in host.root.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    img = build_image(db, [lower.getvalue(), case.tar(host.outside)])
    before = outside_state(host.base, host.root)
    try:
        unpack(db.content, img.manifest, host.root)
    except InvalidArgument as exc:
        assert case.outcome != "apply", f"{case.name} should apply, got {exc}"
        assert "\n" not in str(exc)
    else:
        assert case.outcome != "refuse", f"{case.name} should be refused"
        for rel in case.inside(os.fspath(host.outside)):
            assert os.path.lexists(host.root / rel), f"{rel} missing inside the root"
    assert outside_state(host.base, host.root) == before
    assert stat.S_ISDIR(os.lstat(host.root).st_mode)


def test_cli_unpack(tmp_path: Path) -> None:
    root = tmp_path / "store"
    db = open_store(root)
    try:
        img = build_image(db, [make_tree(tmp_path / "t", 1)])
        db.images.create(Image(name="example.com/u:v1", target=img.manifest))
    finally:
        db.close()
    argv = [sys.executable, "-m", "pallet.cli", "--root", str(root), "unpack"]
    r = subprocess.run(
        [*argv, "example.com/u:v1", str(tmp_path / "out")], capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == f"{img.manifest.digest} -> {tmp_path / 'out'} (1 layer)\n"
    assert tree_state(tmp_path / "out") == tree_state(tmp_path / "t")
    r = subprocess.run(
        [*argv, "example.com/u:v1", str(tmp_path / "out")], capture_output=True, timeout=60
    )
    assert (
        r.returncode == 2
        and r.stderr.decode()
        == f"pallet: error: unpack destination {tmp_path / 'out'}: not empty\n"
    )
