"""Functional and interop tests of pallet.archive.apply (run as root, as in CI)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from pallet.archive.apply import ApplyResult, apply_tar
from pallet.errors import DigestMismatch, InvalidArgument, NotFound, Unsupported
from pallet.oci.digest import Digest
from support.tools import require_tool

T0 = 1_600_000_000  # a whole-second mtime used by most entries
CAP_NET_BIND = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # vfs_cap_data v2

Member = tuple[tarfile.TarInfo, bytes]


def info(name: str, typ: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = 0o644
    ti.mtime = T0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def f(name: str, data: bytes = b"data\n", **kw: object) -> Member:
    ti = info(name, tarfile.REGTYPE, **kw)
    ti.size = len(data)
    return ti, data


def d(name: str, **kw: object) -> Member:
    kw.setdefault("mode", 0o755)
    return info(name, tarfile.DIRTYPE, **kw), b""


def sym(name: str, target: str, **kw: object) -> Member:
    return info(name, tarfile.SYMTYPE, linkname=target, **kw), b""


def hard(name: str, target: str, **kw: object) -> Member:
    return info(name, tarfile.LNKTYPE, linkname=target, **kw), b""


def node(name: str, typ: bytes, **kw: object) -> Member:
    return info(name, typ, **kw), b""


def xattrs(**kv: bytes) -> dict[str, str]:
    return {
        "SCHILY.xattr." + k.replace("__", "."): v.decode("utf-8", "surrogateescape")
        for k, v in kv.items()
    }


def make_tar(members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def apply(root: Path, *members: Member, **kw: object) -> ApplyResult:
    return apply_tar(io.BytesIO(make_tar(members)), root, **kw)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


# ---------------------------------------------------------------------------------------------
# regular files, modes, owners, times


def test_regular_file_content_mode_owner_time(root: Path) -> None:
    big = os.urandom(3 << 20) + b"tail"  # larger than the read chunk, not block-aligned
    apply(
        root,
        d("etc/", mode=0o751),
        f("etc/hosts", b"127.0.0.1 localhost\n", mode=0o640, uid=12, gid=34),
        f("big.bin", big, mode=0o600),
        f("empty", b""),
    )
    st = os.lstat(root / "etc/hosts")
    assert (root / "etc/hosts").read_bytes() == b"127.0.0.1 localhost\n"
    assert stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == (12, 34)
    assert st.st_mtime_ns == T0 * 10**9
    assert (root / "big.bin").read_bytes() == big
    assert (root / "empty").read_bytes() == b""
    assert stat.S_IMODE(os.lstat(root / "etc").st_mode) == 0o751


def test_setuid_setgid_sticky_survive_chown(root: Path) -> None:
    apply(
        root,
        f("suid", b"x", mode=0o4755, uid=1000, gid=1000),
        f("sgid", b"x", mode=0o2755, uid=1000, gid=50),
        d("tmp/", mode=0o1777, uid=0, gid=0),
        d("shared/", mode=0o2775, uid=1000, gid=1000),
    )
    assert stat.S_IMODE(os.lstat(root / "suid").st_mode) == 0o4755
    assert os.lstat(root / "suid").st_uid == 1000
    assert stat.S_IMODE(os.lstat(root / "sgid").st_mode) == 0o2755
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(root / "shared").st_mode) == 0o2775


def test_mode_is_not_subject_to_umask(root: Path) -> None:
    old = os.umask(0o077)
    try:
        apply(root, f("a", mode=0o666), d("b/", mode=0o777), f("c/implicit/x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(root / "a").st_mode) == 0o666
    assert stat.S_IMODE(os.lstat(root / "b").st_mode) == 0o777
    # missing parents are created 0755
    assert stat.S_IMODE(os.lstat(root / "c").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(root / "c/implicit").st_mode) == 0o755


def test_files_created_with_their_mode_and_owner_still_end_exact(root: Path) -> None:
    """Files whose mode survives the umask are created with it, and files owned by our own
    ids skip the chown: neither shortcut may leave a mode or an owner different from the
    entry's, including under a set-group-ID directory (whose group new files inherit) and
    when a directory's owner changes after files were written into it."""
    assert os.geteuid() == 0
    me, grp = os.geteuid(), os.getegid()
    old = os.umask(0o022)
    try:
        apply(
            root,
            f("plain", mode=0o644, uid=me, gid=grp),
            f("exe", mode=0o755, uid=me, gid=grp),
            f("ro", mode=0o444, uid=me, gid=grp),
            f("group-writable", mode=0o664, uid=me, gid=grp),  # does not survive umask 022
            d("sg/", mode=0o2775, uid=me, gid=4321),
            f("sg/mine", mode=0o644, uid=me, gid=grp),  # would inherit 4321 without a chown
            f("sg/theirs", mode=0o644, uid=me, gid=4321),
            f("later/a", mode=0o644, uid=me, gid=grp),  # parent made implicitly, ours
            d("later/", mode=0o2755, uid=me, gid=777),  # now set-group-ID and someone else's
            f("later/b", mode=0o644, uid=me, gid=grp),
        )
    finally:
        os.umask(old)

    def got(name: str) -> tuple[int, int, int]:
        st = os.lstat(root / name)
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert got("plain") == (0o644, me, grp)
    assert got("exe") == (0o755, me, grp)
    assert got("ro") == (0o444, me, grp)
    assert got("group-writable") == (0o664, me, grp)
    assert got("sg") == (0o2775, me, 4321)
    assert got("sg/mine") == (0o644, me, grp)
    assert got("sg/theirs") == (0o644, me, 4321)
    assert got("later") == (0o2755, me, 777)
    assert got("later/a") == (0o644, me, grp)
    assert got("later/b") == (0o644, me, grp)


def test_mtime_seconds_and_pax_nanoseconds_and_atime(root: Path) -> None:
    apply(
        root,
        f("sec", mtime=T0 + 7),
        f("frac", pax_headers={"mtime": "1600000000.123456789"}),
        f("atime-later", pax_headers={"atime": "1700000000.5", "mtime": "1600000000"}),
        f("atime-earlier", pax_headers={"atime": "1500000000", "mtime": "1600000000"}),
        f("negative", pax_headers={"mtime": "-5"}),
    )
    assert os.lstat(root / "sec").st_mtime_ns == (T0 + 7) * 10**9
    assert os.lstat(root / "frac").st_mtime_ns == 1_600_000_000_123_456_789
    st = os.lstat(root / "atime-later")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_700_000_000_500_000_000, T0 * 10**9)
    st = os.lstat(root / "atime-earlier")
    assert st.st_atime_ns == st.st_mtime_ns == T0 * 10**9  # atime = max(atime, mtime)
    assert os.lstat(root / "negative").st_mtime_ns == 0  # out of range -> epoch


def test_directory_times_are_set_after_contents(root: Path) -> None:
    apply(
        root,
        d("a/", mtime=1000),
        d("a/b/", mtime=2000),
        f("a/b/file", mtime=3000),
        f("a/late", mtime=4000),
        sym("a/b/link", "file", mtime=5000),
    )
    assert os.lstat(root / "a").st_mtime == 1000
    assert os.lstat(root / "a/b").st_mtime == 2000
    assert os.lstat(root / "a/b/file").st_mtime == 3000
    assert os.lstat(root / "a/b/link").st_mtime == 5000  # the link's own time


def test_root_entry_is_ignored(root: Path) -> None:
    os.chmod(root, 0o755)
    apply(root, d("./", mode=0o700, uid=77, mtime=1), f("./x"), d("/", mode=0o700))
    st = os.lstat(root)
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 0
    assert (root / "x").read_bytes() == b"data\n"


# ---------------------------------------------------------------------------------------------
# links, nodes, xattrs


def test_symlinks_verbatim_with_owner_and_time(root: Path) -> None:
    apply(
        root,
        sym("abs", "/etc/passwd", uid=5, gid=6, mtime=1234),
        sym("rel", "../../x"),
        sym("dangling", "nope"),
    )
    assert os.readlink(root / "abs") == "/etc/passwd"
    assert os.readlink(root / "rel") == "../../x"
    assert os.readlink(root / "dangling") == "nope"
    st = os.lstat(root / "abs")
    assert (st.st_uid, st.st_gid, st.st_mtime) == (5, 6, 1234)


def test_hardlinks(root: Path) -> None:
    (root / "lower.txt").write_text("from below")
    apply(
        root,
        f("a/orig", b"content", mode=0o600),
        hard("a/link", "a/orig"),
        hard("b/deep/link", "./a/../a/orig"),
        hard("to-lower", "/lower.txt"),
        sym("s", "a"),
        hard("via-symlink", "s/orig"),
    )
    ino = os.lstat(root / "a/orig").st_ino
    for p in ("a/link", "b/deep/link", "via-symlink"):
        assert os.lstat(root / p).st_ino == ino
    assert os.lstat(root / "a/orig").st_nlink == 4
    assert (root / "a/link").read_bytes() == b"content"
    assert os.lstat(root / "to-lower").st_ino == os.lstat(root / "lower.txt").st_ino


def test_hardlink_twice_is_idempotent(root: Path) -> None:
    apply(root, f("a", b"1"), hard("b", "a"), hard("b", "a"))
    assert os.lstat(root / "a").st_nlink == 2


def test_hardlink_to_symlink_links_the_symlink(root: Path) -> None:
    apply(root, sym("s", "/etc/shadow"), hard("h", "s", mode=0o777))
    assert os.readlink(root / "h") == "/etc/shadow"
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino


def test_hardlink_keeps_capability_of_the_shared_inode(root: Path) -> None:
    # any chown of the inode would drop security.capability; an unchanged owner is not re-set
    apply(
        root,
        f("tool", b"x", mode=0o4755, pax_headers=xattrs(security__capability=CAP_NET_BIND)),
        hard("tool2", "tool", mode=0o4755),
    )
    assert os.getxattr(root / "tool2", "security.capability") == CAP_NET_BIND
    assert stat.S_IMODE(os.lstat(root / "tool").st_mode) == 0o4755


def test_hardlink_target_missing_is_refused(root: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"^layer entry h: hardlink target .* does not exist"):
        apply(root, hard("h", "missing"))


def test_replacing_a_file_breaks_old_hardlinks(root: Path) -> None:
    apply(root, f("a", b"old"), hard("b", "a"))
    apply(root, f("a", b"new"))
    assert (root / "a").read_bytes() == b"new"
    assert (root / "b").read_bytes() == b"old"
    assert os.lstat(root / "a").st_nlink == 1


def test_fifo_and_device_nodes(root: Path) -> None:
    apply(
        root,
        node("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666, uid=0),
        node("dev/loop0", tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o660, gid=6),
        node("run/fifo", tarfile.FIFOTYPE, mode=0o620, uid=3, mtime=99),
    )
    st = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(root / "dev/loop0")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 0) and st.st_gid == 6
    st = os.lstat(root / "run/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    assert (st.st_uid, st.st_mtime) == (3, 99)


def test_xattrs_user_and_capability(root: Path) -> None:
    warnings: list[str] = []
    result = apply(
        root,
        f(
            "bin/ping",
            b"\x7fELF",
            mode=0o755,
            uid=0,
            pax_headers=xattrs(
                user__mime=b"application/x-elf",
                user__bin=b"\x00\xff\xfe",
                security__capability=CAP_NET_BIND,
                trusted__evil=b"1",
            ),
        ),
        d("dir/", pax_headers=xattrs(user__d=b"dv")),
        on_warning=warnings.append,
    )
    p = root / "bin/ping"
    assert os.getxattr(p, "user.mime") == b"application/x-elf"
    assert os.getxattr(p, "user.bin") == b"\x00\xff\xfe"
    assert os.getxattr(p, "security.capability") == CAP_NET_BIND
    assert "trusted.evil" not in os.listxattr(p)
    assert os.getxattr(root / "dir", "user.d") == b"dv"
    assert [w for w in result.warnings if "trusted.evil" in w]
    assert warnings == list(result.warnings)


def test_user_xattr_on_symlink_is_skipped_with_warning(root: Path) -> None:
    result = apply(root, sym("s", "x", pax_headers=xattrs(user__a=b"1")))
    assert os.path.islink(root / "s")
    assert any("user.a" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------
# replacement rules


def test_dir_over_file_and_file_over_dir(root: Path) -> None:
    (root / "was-file").write_text("x")
    (root / "was-dir" / "sub").mkdir(parents=True)
    (root / "was-dir" / "sub" / "f").write_text("y")
    apply(root, d("was-file/", mode=0o700), f("was-file/inner"), f("was-dir", b"now a file"))
    assert stat.S_ISDIR(os.lstat(root / "was-file").st_mode)
    assert (root / "was-file/inner").exists()
    assert (root / "was-dir").read_bytes() == b"now a file"


def test_dir_over_dir_merges(root: Path) -> None:
    (root / "d").mkdir(mode=0o700)
    (root / "d" / "kept").write_text("kept")
    apply(root, d("d/", mode=0o755, uid=9), f("d/new"))
    assert (root / "d/kept").read_text() == "kept"
    assert (root / "d/new").exists()
    st = os.lstat(root / "d")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 9


def test_symlink_and_dir_replace_each_other_without_following(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(target, root / "link")
    (root / "dir").mkdir()
    (root / "dir" / "f").write_text("x")
    apply(root, d("link/", mode=0o700), sym("dir", "/somewhere"), f("link/inside"))
    assert stat.S_ISDIR(os.lstat(root / "link").st_mode)
    assert (root / "link/inside").exists()
    assert os.readlink(root / "dir") == "/somewhere"
    assert list(target.iterdir()) == []


def test_resolution_follows_replacements_within_a_layer(root: Path) -> None:
    apply(
        root,
        d("d/"),
        f("d/a", b"a"),
        d("e/"),
        sym("d", "e"),  # replaces the directory d (and its cached descriptor)
        f("d/b", b"b"),  # so this goes to e/b
        d("d/"),  # and d is a directory again
        f("d/c", b"c"),
    )
    assert (root / "e/b").read_bytes() == b"b"
    assert stat.S_ISDIR(os.lstat(root / "d").st_mode)
    assert sorted(os.listdir(root / "d")) == ["c"]


def test_symlinked_parent_directory_is_followed_inside_root(root: Path) -> None:
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("/usr/lib", root / "lib64")
    apply(root, f("lib/a.so", b"a"), f("lib64/b.so", b"b"), f("lib/../c", b"c"))
    assert (root / "usr/lib/a.so").read_bytes() == b"a"
    assert (root / "usr/lib/b.so").read_bytes() == b"b"
    assert (root / "c").read_bytes() == b"c"  # '..' is lexical, as in containerd


def test_non_directory_parent_is_refused(root: Path) -> None:
    (root / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="^layer entry file/x: .*not a directory"):
        apply(root, f("file/x"))


# ---------------------------------------------------------------------------------------------
# whiteouts


def test_whiteouts_remove_lower_entries(root: Path) -> None:
    (root / "etc" / "old.d").mkdir(parents=True)
    (root / "etc" / "old.d" / "x").write_text("x")
    (root / "etc" / "gone").write_text("x")
    (root / "etc" / "stays").write_text("x")
    os.symlink("/etc", root / "etc" / "link")
    result = apply(
        root,
        f("etc/.wh.gone", b""),
        f("etc/.wh.old.d", b""),
        f("etc/.wh.link", b""),
        f("etc/.wh.never-existed", b""),
        f("nodir/.wh.x", b""),
    )
    assert sorted(os.listdir(root / "etc")) == ["stays"]
    assert not (root / "nodir").exists()  # a whiteout creates nothing
    assert result.warnings == ()


def test_opaque_keeps_same_layer_entries_before_and_after_marker(root: Path) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "old").write_text("lower")
    (root / "d" / "sub" / "old2").write_text("lower")
    (root / "d" / "lowerdir" / "x").mkdir(parents=True)
    (root / "d" / "implicit").mkdir()
    (root / "d" / "implicit" / "old3").write_text("lower")
    (root / "other").write_text("untouched")
    apply(
        root,
        d("d/"),
        f("d/before", b"1"),
        d("d/sub/"),
        f("d/sub/new", b"2"),
        f("d/implicit/new3", b"3"),  # parent not in the layer, but it holds a layer entry
        f("d/.wh..wh..opq", b""),
        f("d/after", b"4"),
    )
    names = sorted(str(p.relative_to(root / "d")) for p in (root / "d").rglob("*"))
    assert names == ["after", "before", "implicit", "implicit/new3", "sub", "sub/new"]
    assert (root / "other").read_text() == "untouched"
    assert not (root / "d/.wh..wh..opq").exists()


def test_opaque_in_missing_dir_creates_it(root: Path) -> None:
    apply(root, f("newdir/.wh..wh..opq", b""))
    assert os.listdir(root / "newdir") == []


@pytest.mark.parametrize("name", ["a/.wh..", "a/.wh...", "a/.wh.", ".wh.."])
def test_invalid_whiteout_names_are_refused(root: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^layer entry .*: invalid whiteout name"):
        apply(root, d("a/"), f(name, b""))


def test_reserved_whiteout_names_are_skipped_with_warning(root: Path) -> None:
    (root / ".wh.plnk").mkdir()
    result = apply(root, f(".wh..wh.plnk", b""), f("x"))
    assert (root / ".wh.plnk").is_dir()
    assert not (root / ".wh..wh.plnk").exists()
    assert any("reserved whiteout" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------
# stream, digest and format handling


def test_diff_id_covers_the_whole_stream(root: Path) -> None:
    data = make_tar([f("a", b"x" * 1000)]) + bytes(8192) + b"junk after the end marker"
    result = apply_tar(io.BytesIO(data), root)
    assert result.size == len(data)
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (root / "a").read_bytes() == b"x" * 1000


@pytest.mark.parametrize("trailer", [b"", bytes(512)])
def test_archive_without_full_end_marker(root: Path, trailer: bytes) -> None:
    data = make_tar([f("a", b"x")])
    body = data[: 512 + 512] + trailer  # header + one data block, then 0 or 1 zero blocks
    result = apply_tar(io.BytesIO(body), root)
    assert (root / "a").read_bytes() == b"x"
    assert result.size == len(body)


def test_expected_diff_id(root: Path, tmp_path: Path) -> None:
    data = make_tar([f("a")])
    good = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    assert apply_tar(io.BytesIO(data), root, expected_diff_id=good).diff_id == good
    bad = Digest("sha256:" + "0" * 64)
    with pytest.raises(DigestMismatch, match=str(bad)):
        apply_tar(io.BytesIO(data), tmp_path / "root", expected_diff_id=bad)
    sha512 = Digest("sha512:" + hashlib.sha512(data).hexdigest())
    assert apply_tar(io.BytesIO(data), root, expected_diff_id=sha512).diff_id == sha512


def test_stream_without_readinto_and_short_reads(root: Path) -> None:
    data = make_tar([f("a", os.urandom(100_000)), f("b", b"bee")])

    class Trickle:
        def __init__(self) -> None:
            self.buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.buf.read(min(n, 777) if n > 0 else 777)

    result = apply_tar(Trickle(), root)  # type: ignore[arg-type]
    assert result.size == len(data)
    assert (root / "b").read_bytes() == b"bee"


def test_gnu_long_names_and_links(root: Path) -> None:
    long_dir = "/".join(["d" * 60] * 4)
    long_name = long_dir + "/" + "f" * 120
    apply_tar(
        io.BytesIO(
            make_tar(
                [d(long_dir + "/"), f(long_name, b"long"), hard("short", long_name)],
                tarfile.GNU_FORMAT,
            )
        ),
        root,
    )
    assert (root / long_name).read_bytes() == b"long"
    assert os.lstat(root / "short").st_ino == os.lstat(root / long_name).st_ino


def test_pax_long_and_non_utf8_names(root: Path) -> None:
    weird = "caf\udce9"  # the byte 0xE9, not UTF-8
    long_name = "p" * 200 + "/" + "q" * 200
    apply(root, f(long_name, b"pax"), f("ünïcödé", b"u"), f(weird, b"w"), sym("l" * 200, "t" * 300))
    assert (root / long_name).read_bytes() == b"pax"
    assert (root / "ünïcödé").read_bytes() == b"u"
    assert os.path.exists(os.path.join(os.fsencode(root), b"caf\xe9"))
    assert os.readlink(root / ("l" * 200)) == "t" * 300


def test_ustar_prefix_field(root: Path) -> None:
    name = "a" * 90 + "/" + "b" * 90  # ustar splits this into prefix + name
    apply_tar(io.BytesIO(make_tar([f(name, b"prefixed")], tarfile.USTAR_FORMAT)), root)
    assert (root / name).read_bytes() == b"prefixed"


def test_base256_numbers(root: Path) -> None:
    # tarfile writes ids >= 8**7 in GNU base-256
    apply_tar(io.BytesIO(make_tar([f("big-ids", uid=8**8 + 5, gid=3)], tarfile.GNU_FORMAT)), root)
    assert os.lstat(root / "big-ids").st_uid == 8**8 + 5


def test_corrupt_archives_are_refused(root: Path) -> None:
    data = bytearray(make_tar([f("a", b"x" * 600), f("b")]))
    bad_checksum = bytes(data)[:100] + b"X" + bytes(data)[101:]
    with pytest.raises(InvalidArgument, match="checksum"):
        apply_tar(io.BytesIO(bad_checksum), root)
    with pytest.raises(InvalidArgument, match="^layer entry a: unexpected end of stream"):
        apply_tar(io.BytesIO(bytes(data[:800])), root)
    unknown = make_tar([node("odd", b"Q")])
    with pytest.raises(InvalidArgument, match="^layer entry odd: unsupported entry type"):
        apply_tar(io.BytesIO(unknown), root)


def test_sparse_is_unsupported(root: Path) -> None:
    sparse = make_tar([node("s", b"S")])
    with pytest.raises(Unsupported):
        apply_tar(io.BytesIO(sparse), root)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        apply_tar(io.BytesIO(make_tar([f("a")])), tmp_path / "nope")


def test_unprivileged_skips_devices_and_owners(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    seen: list[str] = []
    result = apply(
        root,
        f("a", uid=55),
        node("null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        node("fifo", tarfile.FIFOTYPE),
        d("ro/", mode=0o555, mtime=42),
        f("ro/inside"),
        on_warning=seen.append,
    )
    assert os.lstat(root / "a").st_uid == 0  # not chowned
    assert not os.path.lexists(root / "null")
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    assert (root / "ro/inside").exists()
    st = os.lstat(root / "ro")
    assert stat.S_IMODE(st.st_mode) == 0o555 and st.st_mtime == 42
    assert sum("ownership not applied" in w for w in result.warnings) == 1
    assert any("device node skipped" in w for w in result.warnings)
    assert seen == list(result.warnings)


# ---------------------------------------------------------------------------------------------
# interop: GNU tar and umoci layers reproduce the source tree


def tree(top: Path) -> dict[str, tuple[object, ...]]:
    """path -> comparable metadata of every entry below ``top`` (hard links by group)."""
    out: dict[str, tuple[object, ...]] = {}
    groups: dict[tuple[int, int], str] = {}
    topb = os.fsencode(top)
    for dirpath, dirnames, filenames in os.walk(topb):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, topb)
            st = os.lstat(p)
            content: object = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    content = hashlib.sha256(fh.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            link_group = None
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                link_group = groups.setdefault(
                    (st.st_dev, st.st_ino), rel.decode("utf-8", "replace")
                )
            try:
                xa = {
                    n: os.getxattr(p, n, follow_symlinks=False)
                    for n in os.listxattr(p, follow_symlinks=False)
                }
            except OSError:
                xa = {}
            out[rel.decode("utf-8", "surrogateescape")] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                int(st.st_mtime),
                st.st_rdev,
                content,
                link_group,
                sorted(xa.items()),
            )
    return out


def populate(src: Path) -> None:
    """A tree that exercises every entry type and attribute a layer carries."""
    (src / "etc" / "conf.d").mkdir(parents=True)
    (src / "etc" / "hostname").write_text("box\n")
    (src / "etc" / "conf.d" / "a.conf").write_bytes(os.urandom(70_000))
    (src / "bin").mkdir()
    (src / "bin" / "tool").write_bytes(b"\x7fELF" + os.urandom(2 << 20))
    os.chmod(src / "bin" / "tool", 0o4755)
    os.link(src / "bin" / "tool", src / "bin" / "tool-hardlink")
    os.setxattr(src / "bin" / "tool", "security.capability", CAP_NET_BIND)
    (src / "bin" / "sgid").write_text("g")
    os.chown(src / "bin" / "sgid", 0, 50)
    os.chmod(src / "bin" / "sgid", 0o2711)
    (src / "tmp").mkdir()
    os.chmod(src / "tmp", 0o1777)
    (src / "home" / "user").mkdir(parents=True)
    (src / "home" / "user" / "notes.txt").write_text("mine")
    os.chown(src / "home" / "user", 1000, 1000)
    os.chown(src / "home" / "user" / "notes.txt", 1000, 1000)
    os.setxattr(src / "home" / "user" / "notes.txt", "user.tag", b"important")
    os.symlink("/etc/hostname", src / "abs-link")
    os.symlink("../etc/conf.d", src / "home" / "rel-link")
    os.symlink("dangling-target", src / "dangling")
    os.lchown(src / "dangling", 7, 8)
    (src / "dev").mkdir()
    os.mknod(src / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(src / "dev" / "fifo", 0o600)
    deep = src / ("long-" + "x" * 80) / ("y" * 90)
    deep.mkdir(parents=True)
    (deep / ("z" * 110)).write_text("deep")
    (src / "empty").write_bytes(b"")
    (src / "ünï").write_text("utf8")
    os.close(os.open(os.path.join(os.fsencode(src), b"latin1-\xe9"), os.O_CREAT | os.O_WRONLY))
    for dirpath, dirnames, filenames in os.walk(src, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (T0 + 5, T0), follow_symlinks=False)
    os.utime(src, (T0, T0))


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["posix", "gnu"])
def test_gnu_tar_layer_roundtrip(tmp_path: Path, fmt: str) -> None:
    tar = require_tool("tar")
    src = tmp_path / "src"
    src.mkdir()
    populate(src)
    layer = tmp_path / "layer.tar"
    extra = ["--xattrs", "--xattrs-include=*"] if fmt == "posix" else []
    subprocess.run(
        [tar, f"--format={fmt}", *extra, "-C", str(src), "-cf", str(layer), "."], check=True
    )
    out = tmp_path / "out"
    out.mkdir()
    with open(layer, "rb") as fh:
        result = apply_tar(fh, out)
    assert result.size == layer.stat().st_size
    assert result.diff_id == "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()
    expected = tree(src)
    if fmt == "gnu":  # the gnu format has no xattrs
        expected = {k: (*v[:-1], []) for k, v in expected.items()}
    assert tree(out) == expected


@pytest.mark.integration
def test_umoci_layer_roundtrip(tmp_path: Path) -> None:
    umoci = require_tool("umoci")

    def run(*args: str) -> None:
        subprocess.run([umoci, *args], check=True, cwd=tmp_path, capture_output=True)

    run("init", "--layout", "L")
    run("new", "--image", "L:t")
    run("unpack", "--image", "L:t", "B")
    rootfs = tmp_path / "B" / "rootfs"
    populate(rootfs)
    run("repack", "--image", "L:t", "B")

    blobs = tmp_path / "L" / "blobs" / "sha256"
    index = json.loads((tmp_path / "L" / "index.json").read_text())
    (desc,) = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "t"
    ]
    manifest = json.loads((blobs / desc["digest"].split(":")[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    layer_desc = manifest["layers"][-1]
    assert layer_desc["mediaType"].endswith("tar+gzip")
    compressed = (blobs / layer_desc["digest"].split(":")[1]).read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    with gzip.open(io.BytesIO(compressed)) as stream:
        result = apply_tar(
            stream,  # type: ignore[arg-type]
            out,
            expected_diff_id=Digest(config["rootfs"]["diff_ids"][-1]),
        )
    assert result.diff_id == config["rootfs"]["diff_ids"][-1]
    assert tree(out) == tree(rootfs)
