"""pallet.archive.diff: layer contents, order, determinism, change detection, GNU tar round trips.

These tests run as root (as CI does): device nodes, chown and security.capability need it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.archive.diff import DiffOptions, DiffStats, write_diff
from pallet.errors import FailedPrecondition, InvalidArgument, NotFound
from support.tools import require_tool

T0 = 1_600_000_000  # a whole-second timestamp in the past
CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # vfs_cap_data v2: cap_net_bind_service

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


# -- helpers -----------------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.calls = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buf += data
        self.calls += 1
        return len(data)


def layer(lower: Path | None, upper: Path, **opts: object) -> bytes:
    sink = Sink()
    stats = write_diff(lower, upper, sink, DiffOptions(**opts))  # type: ignore[arg-type]
    assert stats.bytes_written == len(sink.buf)
    assert stats.entries == len(members(bytes(sink.buf)))
    return bytes(sink.buf)


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def names(data: bytes) -> list[str]:
    """Entry names as written (directories keep their trailing slash)."""
    out = []
    for m in members(data):
        out.append(m.name + "/" if m.isdir() else m.name)
    return out


def content(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


def write(path: Path, data: bytes | str = b"", *, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mtime is not None:
        os.utime(path, ns=(int(mtime * 1e9), int(mtime * 1e9)))
    return path


def set_mtime_ns(path: str | Path | bytes, ns: int) -> None:
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def cp_a(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def carried_xattrs(path: bytes) -> dict[str, bytes]:
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {
        k: os.getxattr(path, k, follow_symlinks=False)
        for k in sorted(keys)
        if k.startswith("user.") or k == "security.capability"
    }


def snapshot(root: Path, *, dir_mtimes: bool = True) -> dict[bytes, tuple[object, ...]]:
    """Everything a layer can carry about a tree, keyed by relative path (bytes)."""
    base = os.fsencode(root)
    inodes: dict[int, list[bytes]] = {}
    out: dict[bytes, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, base)
            st = os.lstat(p)
            fmt = stat.S_IFMT(st.st_mode)
            if fmt == stat.S_IFSOCK:
                continue
            body: object = None
            if fmt == stat.S_IFREG:
                with open(p, "rb") as f:
                    body = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif fmt == stat.S_IFLNK:
                body = os.readlink(p)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                body = (os.major(st.st_rdev), os.minor(st.st_rdev))
            mtime: int | None = st.st_mtime_ns // 1_000_000_000
            if fmt == stat.S_IFLNK or (fmt == stat.S_IFDIR and not dir_mtimes):
                mtime = None
            out[rel] = (
                fmt,
                st.st_mode & 0o7777,
                st.st_uid,
                st.st_gid,
                mtime,
                body,
                carried_xattrs(p) if fmt != stat.S_IFLNK else {},
                st.st_ino,
            )
    # replace inode numbers by the hard-link group (paths sharing the inode inside the tree)
    final = {}
    for rel, v in out.items():
        group = tuple(sorted(inodes.get(v[7], []))) if v[0] == stat.S_IFREG else ()  # type: ignore[call-overload]
        final[rel] = (*v[:7], group if len(group) > 1 else ())
    return final


def gnu_extract(data: bytes, dest: Path, tmp: Path) -> None:
    tar = require_tool("tar")
    archive = tmp / "layer.tar"
    archive.write_bytes(data)
    dest.mkdir()
    proc = subprocess.run(
        [
            tar,
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-xpf",
            str(archive),
            "-C",
            str(dest),
        ],
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""


def apply_layer(data: bytes, root: Path) -> None:
    """A minimal whiteout-aware applier for the round-trip tests (not pallet's applier)."""
    base = os.fsencode(root)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for m in tf:
            rel = os.fsencode(m.name)
            target = os.path.join(base, rel)
            parent, leaf = os.path.split(target)
            if leaf.startswith(b".wh."):
                victim = os.path.join(parent, leaf[4:])
                if os.path.isdir(victim) and not os.path.islink(victim):
                    shutil.rmtree(victim)
                elif os.path.lexists(victim):
                    os.unlink(victim)
                continue
            if os.path.lexists(target):
                is_dir = os.path.isdir(target) and not os.path.islink(target)
                if not (is_dir and m.isdir()):
                    if is_dir:
                        shutil.rmtree(target)
                    else:
                        os.unlink(target)
            tf.extract(m, os.fsdecode(base), numeric_owner=True, filter="fully_trusted")
            want = {
                k.removeprefix("SCHILY.xattr."): v.encode("utf-8", "surrogateescape")
                for k, v in m.pax_headers.items()
                if k.startswith("SCHILY.xattr.")
            }
            if not m.issym():
                for k in set(carried_xattrs(target)) - set(want):
                    os.removexattr(target, k)
                for k, v in want.items():
                    os.setxattr(target, k, v)
                if m.isreg() or m.islnk() or m.isdir():
                    os.chmod(target, m.mode)  # setxattr/chown may have cleared setuid bits
                os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)


def assert_links_internal(data: bytes) -> None:
    seen: set[str] = set()
    for m in members(data):
        if m.islnk():
            assert m.linkname in seen, f"{m.name} links to {m.linkname} outside the layer"
        if m.isreg():
            seen.add(m.name)


def rich_tree(root: Path, *, special: bool) -> None:
    """Files of every kind the layer format carries."""
    write(root / "etc/hostname", "pallet\n", mtime=T0 + 0.25)
    write(root / "empty")
    write(root / "bin/ping", b"\x7fELF" + os.urandom(3000))
    os.chmod(root / "bin/ping", 0o4755)
    os.setxattr(root / "bin/ping", "security.capability", CAP)
    os.setxattr(root / "bin/ping", "user.note", b"with\0nul")
    os.setxattr(root / "etc", "user.dir", b"yes")
    write(root / "srv/data.bin", os.urandom(200_000))
    os.chown(root / "srv/data.bin", 1000, 1001)
    os.chown(root / "srv", 3_000_000, 3_000_001)  # ids too large for octal -> PAX
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "sgid").mkdir()
    os.chmod(root / "sgid", 0o2775)
    os.symlink("../etc/hostname", root / "bin/link")
    os.symlink("/nonexistent/" + "t" * 150, root / "bin/dangling")
    os.link(root / "bin/ping", root / "bin/ping-hard")
    long_dir = root / ("d" * 120) / ("e" * 120)
    write(long_dir / ("f" * 200), "long names")
    b = os.fsencode(root)
    os.mkdir(b + b"/caf\xe9")
    with open(b + b"/caf\xe9/\xff\xfe.txt", "wb") as f:
        f.write(b"latin-1 and garbage bytes")
    write(root / "unicode/日本語.txt", "utf-8 name")
    os.mkfifo(root / "fifo")
    if special:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chmod(root / "null", 0o666)  # past the umask
        os.mknod(root / "loop0", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    rnd = random.Random(7)
    for dirpath, dirnames, filenames in os.walk(b):
        for n in dirnames + filenames:
            # sub-second mtimes on everything (GNU tar and the layer keep whole seconds)
            set_mtime_ns(os.path.join(dirpath, n), (T0 + rnd.randint(0, 10**6)) * 10**9 + 123)


# -- layer from a directory --------------------------------------------------------------------


@requires_root
def test_gnu_tar_extracts_full_layer_identically(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rich_tree(src, special=True)
    data = layer(None, src)
    out = tmp_path / "out"
    gnu_extract(data, out, tmp_path)
    assert snapshot(out) == snapshot(src)
    listing = subprocess.run(
        ["tar", "-tvf", str(tmp_path / "layer.tar")], check=True, capture_output=True
    )
    assert listing.stderr == b""
    text = listing.stdout.decode()
    assert "caf\\351/\\377\\376.txt" in text
    assert "crw-rw-rw- 0/0             1,3" in text
    assert "brw-r----- 0/0             7,0" in text
    assert "-rwsr-xr-x 0/0" in text and "drwxrwxrwt 0/0" in text
    assert "bin/ping-hard link to bin/ping" in text


@requires_root
def test_tarfile_agrees_with_lstat_on_every_member(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rich_tree(src, special=True)
    data = layer(None, src)
    base = os.fsencode(src)
    seen = []
    first_of_inode: dict[int, str] = {}
    for m in members(data):
        rel = os.fsencode(m.name)
        p = os.path.join(base, rel)
        st = os.lstat(p)
        seen.append(rel)
        assert m.mode == st.st_mode & 0o7777
        assert (m.uid, m.gid) == (st.st_uid, st.st_gid)
        assert m.mtime == st.st_mtime_ns // 10**9
        assert (m.uname, m.gname) == ("", "")
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFDIR:
            assert m.isdir() and m.size == 0
        elif fmt == stat.S_IFLNK:
            assert m.issym() and os.fsencode(m.linkname) == os.readlink(p)
        elif fmt == stat.S_IFREG and st.st_ino in first_of_inode:
            assert m.islnk() and m.linkname == first_of_inode[st.st_ino] and m.size == 0
        elif fmt == stat.S_IFREG:
            assert m.isreg() and m.size == st.st_size
            first_of_inode[st.st_ino] = m.name
            with open(p, "rb") as f:
                assert content(data, m.name) == f.read()
        elif fmt == stat.S_IFIFO:
            assert m.isfifo()
        else:
            assert m.ischr() if fmt == stat.S_IFCHR else m.isblk()
            assert (m.devmajor, m.devminor) == (os.major(st.st_rdev), os.minor(st.st_rdev))
        xattrs = {
            k.removeprefix("SCHILY.xattr."): v.encode("utf-8", "surrogateescape")
            for k, v in m.pax_headers.items()
            if k.startswith("SCHILY.xattr.")
        }
        assert xattrs == (carried_xattrs(p) if fmt in (stat.S_IFREG, stat.S_IFDIR) else {})
    # every path once, in containerd's order: children by byte order of names, depth first
    all_paths = sorted(snapshot(src))
    assert sorted(seen) == all_paths
    assert seen == sorted(seen, key=lambda r: r.split(b"/"))
    # the hard link carries the capability too (an applier's chown would strip it otherwise)
    hard = next(m for m in members(data) if m.name == "bin/ping-hard")
    assert (
        hard.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
        == CAP
    )


def test_directory_entries_and_order(tmp_path: Path) -> None:
    up = tmp_path / "up"
    for rel in ["a/b", "a.b", "a/c/d", "a-", "b", "A"]:
        write(up / rel, rel)
    (up / "z").mkdir()
    assert names(layer(None, up)) == ["A", "a/", "a/b", "a/c/", "a/c/d", "a-", "a.b", "b", "z/"]
    raw = layer(None, up)
    assert raw[:100].rstrip(b"\0") == b"A"
    assert b"a/c/\0" in raw  # directories carry the trailing slash in the header itself


def test_empty_tree_is_an_empty_archive(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    sink = Sink()
    assert write_diff(None, tmp_path / "up", sink) == DiffStats(entries=0, bytes_written=1024)
    assert bytes(sink.buf) == bytes(1024)


def test_small_entries_are_batched_into_large_sink_writes(tmp_path: Path) -> None:
    up = tmp_path / "up"
    for i in range(2000):
        write(up / f"d{i % 10}" / f"f{i}", b"x" * (i % 700))
    sink = Sink()
    write_diff(None, up, sink)
    assert len(sink.buf) > 2 << 20
    assert sink.calls <= len(sink.buf) // (1 << 20) + 1


def test_socket_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up = tmp_path / "up"
    write(up / "keep", "k")
    monkeypatch.chdir(up)  # AF_UNIX paths are limited to 108 bytes
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("control.sock")
        warnings: list[str] = []
        data = layer(None, up, on_warning=warnings.append)
        assert names(data) == ["keep"]
        assert warnings == ["socket control.sock: skipped, a layer cannot store it"]
        assert names(layer(None, up)) == ["keep"]  # no callback: silently skipped


def test_dest_places_tree_under_synthesized_parents(tmp_path: Path) -> None:
    up = tmp_path / "up"
    write(up / "bin/tool", "#!/bin/sh\n", mtime=T0)
    os.chmod(up, 0o750)
    os.chown(up, 123, 456)
    set_mtime_ns(up, T0 * 10**9)
    data = layer(None, up, dest="/opt//app/", source_date_epoch=T0 + 100)
    ms = members(data)
    assert names(data) == ["opt/", "opt/app/", "opt/app/bin/", "opt/app/bin/tool"]
    opt, app = ms[0], ms[1]
    assert (opt.mode, opt.uid, opt.gid, opt.mtime) == (0o755, 0, 0, T0 + 100)  # synthesized
    assert (app.mode, app.uid, app.gid, app.mtime) == (0o750, 123, 456, T0)  # the upper root
    assert layer(None, up, dest="/")[:1024] == layer(None, up)[:1024]
    assert members(layer(None, up, dest="x/y"))[0].mtime == 0  # fixed, never "now"
    with pytest.raises(InvalidArgument, match="destination"):
        layer(None, up, dest="/a/../etc")


# -- determinism -------------------------------------------------------------------------------


def _digest_in_subprocess(lower: Path | None, upper: Path) -> str:
    code = (
        "import hashlib, sys\n"
        "from pallet.archive.diff import write_diff\n"
        "h = hashlib.sha256()\n"
        "class S:\n"
        "    write = h.update\n"
        "lower = sys.argv[1] or None\n"
        "write_diff(lower, sys.argv[2], S())\n"
        "print(h.hexdigest())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(lower or ""), str(upper)],
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


@requires_root
def test_same_tree_gives_same_bytes_across_runs_processes_and_copies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rich_tree(src, special=False)
    first = layer(None, src)
    assert layer(None, src) == first
    digest = hashlib.sha256(first).hexdigest()
    assert _digest_in_subprocess(None, src) == digest
    assert _digest_in_subprocess(None, src) == digest
    copy = tmp_path / "elsewhere" / "copy"
    copy.parent.mkdir()
    cp_a(src, copy)  # other inode numbers, other readdir order
    assert layer(None, copy) == first


def test_creation_order_does_not_matter(tmp_path: Path) -> None:
    files = [f"d{i % 7}/f{i:03d}" for i in range(300)]
    trees = []
    for k, order in enumerate([files, files[::-1]]):
        root = tmp_path / f"t{k}"
        for rel in order:
            write(root / rel, rel, mtime=T0)
        for d in root.iterdir():
            set_mtime_ns(d, T0 * 10**9)
        trees.append(layer(None, root))
    assert trees[0] == trees[1]


def test_mtimes_truncated_and_clamped_to_source_date_epoch(tmp_path: Path) -> None:
    up = tmp_path / "up"
    write(up / "old", "o")
    set_mtime_ns(up / "old", T0 * 10**9 + 999_999_999)
    write(up / "new", "n")
    set_mtime_ns(up / "new", (T0 + 10_000) * 10**9 + 5)
    by_name = {m.name: m for m in members(layer(None, up))}
    assert (by_name["old"].mtime, by_name["new"].mtime) == (T0, T0 + 10_000)
    by_name = {m.name: m for m in members(layer(None, up, source_date_epoch=T0 + 60))}
    assert (by_name["old"].mtime, by_name["new"].mtime) == (T0, T0 + 60)
    assert not any(
        k in m.pax_headers for m in by_name.values() for k in ("atime", "ctime", "mtime")
    )
    with pytest.raises(InvalidArgument, match="source date epoch"):
        layer(None, up, source_date_epoch=-1)


# -- diff cases --------------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """lower with a few entries, and upper as an exact copy (cp -a) to be mutated."""
    lower = tmp_path / "lower"
    write(lower / "etc/hosts", "127.0.0.1 localhost\n")
    write(lower / "etc/os-release", "ID=test\n")
    write(lower / "usr/lib/a/1.so", "one")
    write(lower / "usr/lib/a/2.so", "two")
    write(lower / "usr/lib/b/3.so", "three")
    os.symlink("hosts", lower / "etc/hosts.link")
    write(lower / "keep", "k")
    for dirpath, dirnames, filenames in os.walk(lower):
        for n in dirnames + filenames:
            set_mtime_ns(os.path.join(dirpath, n), T0 * 10**9 + 500)
    upper = tmp_path / "upper"
    cp_a(lower, upper)
    yield lower, upper


def test_identical_trees_give_an_empty_layer(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    assert layer(lower, upper) == bytes(1024)
    assert layer(lower, upper, dest="/app") == bytes(1024)


def test_new_file_comes_with_its_parents(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    write(upper / "usr/lib/a/new.so", "new")
    write(upper / "newdir/sub/x", "x")
    data = layer(lower, upper)
    assert names(data) == [
        "newdir/",
        "newdir/sub/",
        "newdir/sub/x",
        "usr/",
        "usr/lib/",
        "usr/lib/a/",
        "usr/lib/a/new.so",
    ]
    assert content(data, "usr/lib/a/new.so") == b"new"
    usr = members(data)[3]
    assert usr.mtime == T0  # parents carry their real (truncated) metadata


def test_removed_file_and_removed_directory_are_single_whiteouts(
    pair: tuple[Path, Path],
) -> None:
    lower, upper = pair
    (upper / "etc/os-release").unlink()
    shutil.rmtree(upper / "usr/lib")
    (upper / "etc/hosts.link").unlink()
    data = layer(lower, upper)
    assert names(data) == [
        "etc/",
        "etc/.wh.hosts.link",
        "etc/.wh.os-release",
        "usr/",
        "usr/.wh.lib",
    ]
    for m in members(data):
        if "/.wh." in m.name:
            assert (m.type, m.size, m.mode, m.uid, m.gid, m.mtime) == (b"0", 0, 0, 0, 0, 0)
    assert not any(".wh..wh..opq" in n for n in names(data))
    stamped = members(layer(lower, upper, source_date_epoch=T0 + 7))
    assert [m.mtime for m in stamped if "/.wh." in m.name] == [T0 + 7] * 3


def test_same_size_same_whole_second_mtime_content_change_is_detected(
    pair: tuple[Path, Path],
) -> None:
    lower, upper = pair
    for root in (lower, upper):
        set_mtime_ns(root / "keep", T0 * 10**9)  # whole seconds on both sides
    write(upper / "keep", "K")  # same size
    set_mtime_ns(upper / "keep", T0 * 10**9)
    data = layer(lower, upper)
    assert names(data) == ["keep"]
    assert content(data, "keep") == b"K"
    # the same for a symlink retargeted to a same-length name
    os.unlink(upper / "etc/hosts.link")
    os.symlink("HOSTS", upper / "etc/hosts.link")
    for root in (lower, upper):
        set_mtime_ns(root / "etc/hosts.link", T0 * 10**9)
    assert names(layer(lower, upper)) == ["etc/", "etc/hosts.link", "keep"]


def test_byte_identical_rewrite_is_not_emitted(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    for root in (lower, upper):
        set_mtime_ns(root / "etc/hosts", T0 * 10**9)
    write(upper / "etc/hosts", "127.0.0.1 localhost\n")  # new inode content, same bytes
    set_mtime_ns(upper / "etc/hosts", T0 * 10**9)
    assert layer(lower, upper) == bytes(1024)


def test_nanosecond_mtime_difference_is_a_change(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    set_mtime_ns(upper / "keep", T0 * 10**9 + 501)  # same second, same content
    assert names(layer(lower, upper)) == ["keep"]


def test_chmod_chown_and_xattr_changes_re_emit_whole_file(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    os.chmod(upper / "etc/hosts", 0o4711)
    os.chown(upper / "usr/lib/a/1.so", 0, 42)
    os.setxattr(upper / "keep", "user.origin", b"test")
    data = layer(lower, upper)
    assert names(data) == [
        "etc/",
        "etc/hosts",
        "keep",
        "usr/",
        "usr/lib/",
        "usr/lib/a/",
        "usr/lib/a/1.so",
    ]
    by_name = {m.name: m for m in members(data)}
    assert by_name["etc/hosts"].mode == 0o4711
    assert content(data, "etc/hosts") == b"127.0.0.1 localhost\n"
    assert by_name["usr/lib/a/1.so"].gid == 42
    assert by_name["keep"].pax_headers["SCHILY.xattr.user.origin"] == "test"


def test_directory_metadata_change_re_emits_only_the_directory(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    os.chmod(upper / "usr/lib/b", 0o700)
    os.chown(upper / "etc", 5, 5)
    data = layer(lower, upper)
    assert names(data) == ["etc/", "usr/", "usr/lib/", "usr/lib/b/"]
    ms = members(data)
    assert (ms[0].uid, ms[3].mode) == (5, 0o700)


def test_type_changes(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    shutil.rmtree(upper / "usr/lib/b")
    write(upper / "usr/lib/b", "now a file")
    (upper / "keep").unlink()
    write(upper / "keep/inside", "now a dir")
    data = layer(lower, upper)
    assert names(data) == ["keep/", "keep/inside", "usr/", "usr/lib/", "usr/lib/b"]


@requires_root
def test_socket_replacing_a_file_whites_it_out(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    lower, upper = pair
    (upper / "keep").unlink()
    monkeypatch.chdir(upper)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("keep")
        with socket.socket(socket.AF_UNIX) as s2:
            s2.bind("fresh.sock")
            warnings: list[str] = []
            data = layer(lower, upper, on_warning=warnings.append)
    assert names(data) == [".wh.keep"]
    assert warnings == [
        "socket fresh.sock: skipped, a layer cannot store it",
        "socket keep: skipped, a layer cannot store it",
    ]


def test_new_hardlink_pair_first_carries_data(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    write(upper / "opt/a", "shared")
    os.link(upper / "opt/a", upper / "opt/b")
    data = layer(lower, upper)
    a, b = members(data)[1:]
    assert (a.name, a.isreg(), a.size) == ("opt/a", True, 6)
    assert (b.name, b.islnk(), b.linkname, b.size) == ("opt/b", True, "opt/a", 0)
    assert_links_internal(data)


def test_unchanged_file_gaining_a_link_is_relinked_inside_the_layer(
    pair: tuple[Path, Path],
) -> None:
    lower, upper = pair
    for root in (lower, upper):
        set_mtime_ns(root / "usr/lib/b/3.so", T0 * 10**9)
    # 3.so is unchanged, but now has a second name in another directory: the layer must not
    # link to the lower layer's copy, so the new name carries the data and 3.so links to it.
    os.link(upper / "usr/lib/b/3.so", upper / "etc/3.so")
    data = layer(lower, upper)
    assert names(data) == ["etc/", "etc/3.so", "usr/", "usr/lib/", "usr/lib/b/", "usr/lib/b/3.so"]
    ms = {m.name: m for m in members(data)}
    assert ms["etc/3.so"].isreg() and content(data, "etc/3.so") == b"three"
    assert ms["usr/lib/b/3.so"].islnk() and ms["usr/lib/b/3.so"].linkname == "etc/3.so"
    assert_links_internal(data)


def test_dest_in_diff_mode(pair: tuple[Path, Path]) -> None:
    lower, upper = pair
    write(upper / "etc/new", "n")
    assert names(layer(lower, upper, dest="/srv/root")) == [
        "srv/",
        "srv/root/",
        "srv/root/etc/",
        "srv/root/etc/new",
    ]
    os.chmod(upper, 0o700)  # the root's own metadata only matters when it is a real entry
    assert names(layer(lower, upper)) == ["etc/", "etc/new"]
    ms = members(layer(lower, upper, dest="/r"))
    assert [(m.name, m.mode) for m in ms[:2]] == [("r", 0o700), ("r/etc", 0o755)]


# -- randomized round trip ---------------------------------------------------------------------


def _random_tree(root: Path, rnd: random.Random) -> None:
    root.mkdir()
    dirs = [root]
    for i in range(rnd.randint(5, 12)):
        d = rnd.choice(dirs) / f"dir{i}"
        d.mkdir()
        dirs.append(d)
    files = []
    for i in range(rnd.randint(10, 40)):
        f = write(rnd.choice(dirs) / f"file{i}", rnd.randbytes(rnd.choice([0, 1, 100, 3000])))
        files.append(f)
        if rnd.random() < 0.2:
            os.setxattr(f, "user.k", rnd.randbytes(4))
        if rnd.random() < 0.2:
            os.chmod(f, rnd.choice([0o600, 0o755, 0o4755, 0o2711]))
    for i in range(rnd.randint(0, 4)):
        os.symlink(f"target{i}", rnd.choice(dirs) / f"sym{i}")
    for i in range(rnd.randint(0, 3)):
        os.link(rnd.choice(files), rnd.choice(dirs) / f"hard{i}")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            ns = (T0 + rnd.randint(0, 1000)) * 10**9
            if rnd.random() < 0.5:
                ns += rnd.randint(1, 10**9 - 1)
            set_mtime_ns(os.path.join(dirpath, n), ns)


def _mutate(upper: Path, lower: Path, rnd: random.Random) -> None:
    def pick(kind: str) -> Path | None:
        found = []
        for dirpath, dirnames, filenames in os.walk(upper):
            for n in dirnames if kind == "dir" else filenames:
                p = Path(dirpath) / n
                if kind == "dir" or (not p.is_symlink() and p.is_file()) == (kind == "file"):
                    found.append(p)
        return rnd.choice(found) if found else None

    for _ in range(rnd.randint(1, 8)):
        op = rnd.choice(
            ["rm", "rmdir", "add", "adddir", "edit", "sneaky", "chmod", "chown", "xattr",
             "link", "retype", "symlink"]
        )  # fmt: skip
        f, d = pick("file"), pick("dir")
        if op == "rm" and f:
            f.unlink()
        elif op == "rmdir" and d:
            shutil.rmtree(d)
        elif op == "add":
            write((d or upper) / f"new{rnd.randint(0, 999)}", rnd.randbytes(50))
        elif op == "adddir":
            write((d or upper) / f"nd{rnd.randint(0, 999)}" / "x" / "y", b"deep")
        elif op == "edit" and f:
            with open(f, "ab") as fh:
                fh.write(b"more")
        elif op == "sneaky" and f and f.stat().st_size:
            # same size, both sides whole-second mtime: only a content compare can tell
            rel = f.relative_to(upper)
            data = bytearray(f.read_bytes())
            data[0] ^= 0xFF
            st = f.stat()
            f.unlink()  # break any hard link so lower keeps its content
            write(f, bytes(data))
            os.chmod(f, st.st_mode & 0o7777)
            for p in (f, lower / rel):
                set_mtime_ns(p, (st.st_mtime_ns // 10**9) * 10**9)
        elif op == "chmod" and f:
            os.chmod(f, 0o640)
        elif op == "chown" and d:
            os.chown(d, 77, 88)
        elif op == "xattr" and f:
            os.setxattr(f, "user.changed", b"1")
        elif op == "link" and f:
            os.link(f, (d or upper) / f"ln{rnd.randint(0, 999)}")
        elif op == "retype" and f:
            f.unlink()
            write(f / "was-a-file", b"now a dir")
        elif op == "symlink" and f:
            f.unlink()
            os.symlink("somewhere", f)


@requires_root
@pytest.mark.parametrize("seed", range(30))
def test_random_diffs_apply_back_to_upper(seed: int, tmp_path: Path) -> None:
    rnd = random.Random(seed)
    lower, upper, applied = tmp_path / "lower", tmp_path / "upper", tmp_path / "applied"
    _random_tree(lower, rnd)
    cp_a(lower, upper)
    _mutate(upper, lower, rnd)
    cp_a(lower, applied)
    data = layer(lower, upper)
    assert_links_internal(data)
    apply_layer(data, applied)
    assert snapshot(applied, dir_mtimes=False) == snapshot(upper, dir_mtimes=False)
    # and the full layer of upper extracts to upper itself
    full = tmp_path / "full"
    gnu_extract(layer(None, upper), full, tmp_path)
    assert snapshot(full) == snapshot(upper)


# -- errors ------------------------------------------------------------------------------------


def test_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"^directory .*missing: No such file or directory$"):
        write_diff(None, tmp_path / "missing", Sink())
    write(tmp_path / "file", "x")
    with pytest.raises(InvalidArgument, match=r"^directory .*file: not a directory$"):
        write_diff(None, tmp_path / "file", Sink())
    with pytest.raises(InvalidArgument):
        write_diff(tmp_path / "file", tmp_path, Sink())


def test_unreadable_file_is_translated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up = tmp_path / "up"
    write(up / "secret", "s")
    real_open = os.open

    def deny(path: bytes, flags: int, *args: object, **kwargs: object) -> int:
        if path.endswith(b"secret"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(FailedPrecondition, match=r"^path .*/up/secret: Permission denied$") as ei:
        write_diff(None, up, Sink())
    assert isinstance(ei.value.__cause__, PermissionError)


def test_sink_errors_pass_through_untranslated(tmp_path: Path) -> None:
    up = tmp_path / "up"
    write(up / "f", "x")

    class Full:
        def write(self, data: bytes | bytearray | memoryview) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as ei:
        write_diff(None, up, Full())
    assert ei.value.errno == errno.ENOSPC and not isinstance(ei.value, NotFound)


@pytest.mark.slow
def test_file_over_8_gib_gets_pax_size(tmp_path: Path) -> None:
    up = tmp_path / "up"
    up.mkdir()
    size = (8 << 30) + 1
    with open(up / "sparse", "wb") as f:
        f.truncate(size)

    class Head:
        def __init__(self) -> None:
            self.head = b""
            self.total = 0

        def write(self, data: bytes | bytearray | memoryview) -> None:
            if len(self.head) < 4096:
                self.head += bytes(data[: 4096 - len(self.head)])
            self.total += len(data)

    sink = Head()
    stats = write_diff(None, up, sink)
    assert sink.total == stats.bytes_written == 1536 + size + 511 + 1024
    assert b"%d size=%d\n" % (len(b"size=%d" % size) + 4, size) in sink.head[512:1024]
    with tarfile.open(fileobj=io.BytesIO(sink.head), mode="r:") as tf:
        first = tf.next()
        assert first is not None and first.size == size


def test_xattr_name_with_equals_sign_is_skipped_with_a_warning(tmp_path: Path) -> None:
    up = tmp_path / "up"
    write(up / "f", "x")
    os.setxattr(up / "f", "user.a=b", b"1")
    os.setxattr(up / "f", "user.ok", b"2")
    warnings: list[str] = []
    (m,) = members(layer(None, up, on_warning=warnings.append))
    assert {k: v for k, v in m.pax_headers.items() if "xattr" in k} == {"SCHILY.xattr.user.ok": "2"}
    assert len(warnings) == 1
    assert warnings[0].startswith("xattr user.a=b of ") and "PAX record" in warnings[0]


class _ChangeMidway:
    """A sink that changes ``path`` when the writer hands over its first full buffer: the
    writer's buffer is 1 MiB, so a larger file is then half read (no timing involved)."""

    def __init__(self, path: Path, change: str) -> None:
        self.path, self.change, self.done = path, change, False
        self.buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data
        if self.done:
            return
        self.done = True
        if self.change == "grow":
            with open(self.path, "ab") as f:
                f.write(b"g" * (1 << 20))
        elif self.change == "shrink":
            os.truncate(self.path, 1 << 20)
        else:  # same size, new bytes: only the mtime tells
            with open(self.path, "r+b") as f:
                f.write(b"r" * 4096)


@pytest.mark.parametrize("change", ["grow", "shrink", "rewrite"])
@pytest.mark.parametrize("mode", ["layer", "diff"])
def test_file_changed_while_read_fails_naming_it(tmp_path: Path, change: str, mode: str) -> None:
    """GNU tar: "file changed as we read it"; containerd's writer fails. A layer never holds a
    file cut at its first size, or half old and half new."""
    low, up = tmp_path / "low", tmp_path / "up"
    write(low / "other", "o")
    big = up / "big"
    write(big, "b" * (3 << 20))
    os.utime(big, (T0, T0))
    sink = _ChangeMidway(big, change)
    with pytest.raises(FailedPrecondition) as ei:
        write_diff(low if mode == "diff" else None, up, sink)
    assert sink.done
    assert str(ei.value).startswith(f"file {big}: changed while being read (")
    assert "\n" not in str(ei.value)
    # the stream stops before the end-of-archive marker: no reader takes it for a whole layer
    assert not sink.buf.endswith(b"\0" * 1024)


def test_file_replaced_between_listing_and_reading_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size and mtime, another inode: the header describes a file that is not read. (A
    file read in one call is not checked: what it gives is one whole version of a file.)"""
    up = tmp_path / "up"
    big = up / "big"
    write(big, "b" * (3 << 20))
    os.utime(big, (T0, T0))
    real_open = os.open

    def swap(path: bytes, flags: int, *args: object, **kwargs: object) -> int:
        if path == os.fsencode(big):
            tmp = big.with_name("new")
            tmp.write_bytes(b"n" * (3 << 20))
            os.utime(tmp, (T0, T0))
            os.replace(tmp, big)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", swap)
    with pytest.raises(
        FailedPrecondition, match=rf"^file {big}: changed while being read \(replaced"
    ):
        write_diff(None, up, Sink())
