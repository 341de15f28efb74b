"""Hostile layers must never touch anything outside the target root."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pallet.archive.apply import apply_tar
from pallet.errors import InvalidArgument
from support.malicious_layers import CORPUS, Host, MaliciousLayer, build_host

Snapshot = dict[str, tuple[object, ...]]


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for n in sorted(names):
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError:
            out.append((n, b"?"))
    return tuple(out)


def snapshot(base: Path, root: Path) -> Snapshot:
    """Every path under ``base`` except the inside of ``root``: type, mode, owner, links,
    size, mtime, content digest, link target, device number and xattrs."""
    snap: Snapshot = {}
    root_s = os.fspath(root)

    def record(path: str) -> None:
        st = os.lstat(path)
        rel = os.path.relpath(path, base)
        if path == root_s:
            # the root itself: its content (and so its mtime) is the apply's business
            snap[rel] = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_uid, st.st_gid, st.st_ino)
            return
        content: object = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as fh:
                content = hashlib.sha256(fh.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        snap[rel] = (
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_nlink,
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_rdev,
            content,
            _xattrs(path),
        )

    record(os.fspath(base))
    stack = [os.fspath(base)]
    while stack:
        top = stack.pop()
        with os.scandir(top) as it:
            for de in it:
                record(de.path)
                if de.path != root_s and de.is_dir(follow_symlinks=False):
                    stack.append(de.path)
    return snap


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return build_host(tmp_path / "base")


def test_corpus_is_big_and_unique() -> None:
    assert len(CORPUS) >= 25
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_malicious_layer_stays_inside_root(case: MaliciousLayer, host: Host) -> None:
    data = case.tar(host.outside)
    before = snapshot(host.base, host.root)
    root_ino = os.lstat(host.root).st_ino
    warnings: list[str] = []
    try:
        result = apply_tar(io.BytesIO(data), host.root, on_warning=warnings.append)
    except InvalidArgument as exc:
        assert case.outcome != "apply", f"{case.name} should apply, got {exc}"
        assert str(exc).startswith("layer entry "), exc
        refused = True
    else:
        assert case.outcome != "refuse", f"{case.name} should be refused"
        assert result.size == len(data)
        assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        refused = False
    after = snapshot(host.base, host.root)

    # nothing outside the root changed, appeared or disappeared
    assert after == before
    # the root is still the same real directory
    st = os.lstat(host.root)
    assert stat.S_ISDIR(st.st_mode) and st.st_ino == root_ino
    if not refused:
        for rel in case.inside(os.fspath(host.outside)):
            assert os.path.lexists(host.root / rel), f"{rel} missing inside the root"


def test_symlink_escape_lands_inside(host: Host) -> None:
    """The data written through an escaping symlink is found under the re-rooted path."""
    case = next(c for c in CORPUS if c.name == "symlink-absolute-parent")
    apply_tar(io.BytesIO(case.tar(host.outside)), host.root)
    landed = host.root / os.fspath(host.outside).lstrip("/") / "pwned.txt"
    assert landed.read_bytes() == b"pwned\n"
    assert os.readlink(host.root / "evil") == os.fspath(host.outside)


def test_hardlink_to_symlink_keeps_outside_mode(host: Host) -> None:
    case = next(c for c in CORPUS if c.name == "hardlink-to-lower-symlink-chmod")
    mode_before = os.stat(host.outside / "secret.txt").st_mode
    apply_tar(io.BytesIO(case.tar(host.outside)), host.root)
    h = host.root / "h"
    assert h.is_symlink()
    assert os.readlink(h) == os.fspath(host.outside / "secret.txt")
    assert os.lstat(h).st_uid == 1234
    assert os.stat(host.outside / "secret.txt").st_mode == mode_before


def test_dot_symlink_is_ignored(host: Host) -> None:
    case = next(c for c in CORPUS if c.name == "dot-symlink")
    apply_tar(io.BytesIO(case.tar(host.outside)), host.root)
    assert (host.root / "pwned.txt").read_bytes() == b"pwned\n"
    assert not host.root.is_symlink()


def test_whiteout_of_symlink_keeps_target(host: Host) -> None:
    case = next(c for c in CORPUS if c.name == "whiteout-of-lower-symlink")
    apply_tar(io.BytesIO(case.tar(host.outside)), host.root)
    assert not os.path.lexists(host.root / "lower_abs")
    assert not os.path.lexists(host.root / "lower_rel")
    assert (host.outside / "secret.txt").exists()
