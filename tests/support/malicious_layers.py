"""Hand-made hostile layer tars, for the applier's escape tests.

Every case is built in memory with :mod:`tarfile` (or raw ustar headers where tarfile cannot
produce the oddity) from the absolute path of an "outside" directory, because several attacks
name that path literally. The host layout the cases assume is made by :func:`build_host`::

    <base>/outside/                   secret.txt, passwd, sub/inner.txt     (absolute target)
    <base>/host/host_sentinel.txt
    <base>/host/parent/parent_sentinel.txt
    <base>/host/parent/sibling/sib.txt
    <base>/host/parent/root/          the target; "lower layer" content:
        lower_abs    -> <base>/outside            (absolute symlink)
        lower_rel    -> ../../..                  (relative symlink escaping to <base>)
        lower_secret -> <base>/outside/secret.txt
        lower_dir/f.txt, lower_file.txt

so ``UP`` (``../../..``) from the root names ``<base>``. A case's ``outcome`` says what a correct
applier does: ``"apply"`` (must succeed), ``"refuse"`` (must raise InvalidArgument) or
``"either"``; ``inside`` lists root-relative paths that must exist after a successful apply.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["CORPUS", "UP", "Host", "MaliciousLayer", "build_host"]

UP = "../../.."  # from the root to <base>


@dataclass(frozen=True)
class Host:
    base: Path
    outside: Path
    root: Path


def build_host(base: Path) -> Host:
    """Create the sentinel tree of the module docstring under ``base``."""
    outside = base / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text("top secret\n")
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (outside / "sub" / "inner.txt").write_text("inner\n")
    os.chmod(outside / "secret.txt", 0o600)
    parent = base / "host" / "parent"
    (parent / "sibling").mkdir(parents=True)
    (base / "host" / "host_sentinel.txt").write_text("host\n")
    (parent / "parent_sentinel.txt").write_text("parent\n")
    (parent / "sibling" / "sib.txt").write_text("sibling\n")
    root = parent / "root"
    root.mkdir()
    os.symlink(outside, root / "lower_abs")
    os.symlink(UP, root / "lower_rel")
    os.symlink(outside / "secret.txt", root / "lower_secret")
    (root / "lower_dir").mkdir()
    (root / "lower_dir" / "f.txt").write_text("lower\n")
    (root / "lower_file.txt").write_text("lower file\n")
    return Host(base=base, outside=outside, root=root)


@dataclass(frozen=True)
class MaliciousLayer:
    name: str
    description: str
    build: Callable[[str], bytes]  # absolute "outside" path -> uncompressed tar bytes
    outcome: Literal["apply", "refuse", "either"] = "either"
    inside: Callable[[str], tuple[str, ...]] = field(default=lambda outside: ())

    def tar(self, outside: str | os.PathLike[str]) -> bytes:
        return self.build(os.fspath(outside))


# ---------------------------------------------------------------------------------------------
# builders

Member = tuple[tarfile.TarInfo, bytes]


def _info(name: str, typ: bytes, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = 0o644
    ti.mtime = 1_600_000_000
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def f(name: str, data: bytes = b"pwned\n", **kw: object) -> Member:
    ti = _info(name, tarfile.REGTYPE, **kw)
    ti.size = len(data)
    return ti, data


def d(name: str, **kw: object) -> Member:
    kw.setdefault("mode", 0o755)
    return _info(name, tarfile.DIRTYPE, **kw), b""


def sym(name: str, target: str, **kw: object) -> Member:
    return _info(name, tarfile.SYMTYPE, linkname=target, **kw), b""


def hard(name: str, target: str, **kw: object) -> Member:
    return _info(name, tarfile.LNKTYPE, linkname=target, **kw), b""


def dev(name: str, typ: bytes, major: int, minor: int) -> Member:
    return _info(name, typ, devmajor=major, devminor=minor, mode=0o666), b""


def tar(members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def raw_header(
    name: bytes,
    typ: bytes = b"0",
    *,
    size: int = 0,
    mode: int = 0o644,
    linkname: bytes = b"",
    prefix: bytes = b"",
    uid_field: bytes | None = None,
) -> bytes:
    """A ustar header built by hand (tarfile refuses some of what attackers send)."""
    h = bytearray(512)

    def put(off: int, width: int, value: bytes) -> None:
        h[off : off + len(value)] = value[:width]

    put(0, 100, name)
    put(100, 8, b"%07o\0" % mode)
    put(108, 8, uid_field if uid_field is not None else b"0000000\0")
    put(116, 8, b"0000000\0")
    put(124, 12, b"%011o\0" % size)
    put(136, 12, b"%011o\0" % 1_600_000_000)
    h[156:157] = typ
    put(157, 100, linkname)
    put(257, 8, b"ustar\x0000")
    put(345, 155, prefix)
    h[148:156] = b" " * 8
    put(148, 8, b"%06o\0 " % sum(h))
    return bytes(h)


def raw_tar(*blocks: bytes) -> bytes:
    return b"".join(blocks) + bytes(1024)


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def _pax(**records: str | bytes) -> dict[str, str]:
    # tarfile wants str; binary values travel as surrogate escapes (it emits hdrcharset=BINARY)
    return {
        k: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
        for k, v in records.items()
    }


def _deep_abs(outside: str, leaf: str) -> str:
    return "../" * 8 + outside.lstrip("/") + "/" + leaf


def _chain(n: int) -> list[Member]:
    links = [sym(f"c{i}", f"c{i + 1}") for i in range(n)]
    return [*links, sym(f"c{n}", UP + "/outside"), f("c0/chain.txt")]


def _r(outside: str) -> str:
    """``outside`` as it lands inside the root when an absolute path is re-rooted."""
    return outside.lstrip("/")


# ---------------------------------------------------------------------------------------------
# the corpus

CORPUS: tuple[MaliciousLayer, ...] = (
    MaliciousLayer(
        "dotdot-file",
        "regular file named ../escape.txt",
        lambda o: tar([f("../escape.txt")]),
        "either",
        lambda o: ("escape.txt",),
    ),
    MaliciousLayer(
        "dotdot-deep-absolute",
        "../../../../../../../..<outside>/dotdot.txt (containerd's own hostile test)",
        lambda o: tar([f(_deep_abs(o, "dotdot.txt"))]),
        "either",
        lambda o: (_r(o) + "/dotdot.txt",),
    ),
    MaliciousLayer(
        "absolute-name",
        "regular file with an absolute name <outside>/abs.txt",
        lambda o: tar([f(o + "/abs.txt")]),
        "either",
        lambda o: (_r(o) + "/abs.txt",),
    ),
    MaliciousLayer(
        "absolute-dir-then-file",
        "absolute directory <outside>/newdir/ (mode 0777) then a file in it",
        lambda o: tar([d(o + "/newdir/", mode=0o777), f(o + "/newdir/x.txt")]),
        "either",
        lambda o: (_r(o) + "/newdir/x.txt",),
    ),
    MaliciousLayer(
        "dotdot-in-middle",
        "a/../../../escape2.txt",
        lambda o: tar([f("a/../../../escape2.txt")]),
        "either",
        lambda o: ("escape2.txt",),
    ),
    MaliciousLayer(
        "symlink-absolute-parent",
        "evil -> <outside>, then evil/pwned.txt (write through an absolute symlink)",
        lambda o: tar([sym("evil", o), f("evil/pwned.txt")]),
        "either",
        lambda o: (_r(o) + "/pwned.txt",),
    ),
    MaliciousLayer(
        "symlink-relative-parent",
        "evil -> ../../.., then evil/outside/pwned.txt",
        lambda o: tar([sym("evil", UP), f("evil/outside/pwned.txt")]),
        "either",
        lambda o: ("outside/pwned.txt",),
    ),
    MaliciousLayer(
        "symlink-relative-deep",
        "a/b/evil -> ../../../../../../../../outside deep in the tree, then a write through it",
        lambda o: tar(
            [d("a/"), d("a/b/"), sym("a/b/evil", "../" * 8 + "outside"), f("a/b/evil/p")]
        ),
        "either",
        lambda o: ("outside/p",),
    ),
    MaliciousLayer(
        "symlink-chain",
        "l1 -> l2 -> ../../../outside, then l1/chain.txt",
        lambda o: tar([sym("l1", "l2"), sym("l2", UP + "/outside"), f("l1/chain.txt")]),
        "either",
        lambda o: ("outside/chain.txt",),
    ),
    MaliciousLayer(
        "symlink-to-slash",
        "s -> /, then s<outside>/viaroot.txt",
        lambda o: tar([sym("s", "/"), f("s" + o + "/viaroot.txt")]),
        "either",
        lambda o: (_r(o) + "/viaroot.txt",),
    ),
    MaliciousLayer(
        "symlink-then-dir-entry",
        "evil -> <outside>, then directory entry evil/ (0777, uid 1234), then evil/x",
        lambda o: tar([sym("evil", o), d("evil/", mode=0o777, uid=1234), f("evil/x")]),
        "either",
        lambda o: ("evil/x",),
    ),
    MaliciousLayer(
        "symlink-then-file-replace",
        "evil -> <outside>/secret.txt, then a regular file evil (must replace, not write through)",
        lambda o: tar([sym("evil", o + "/secret.txt"), f("evil", b"overwritten\n", mode=0o777)]),
        "either",
        lambda o: ("evil",),
    ),
    MaliciousLayer(
        "symlink-to-file-as-parent",
        "evil -> <outside>/secret.txt, then evil/x",
        lambda o: tar([sym("evil", o + "/secret.txt"), f("evil/x")]),
        "either",
        lambda o: (_r(o) + "/secret.txt/x",),
    ),
    MaliciousLayer(
        "symlink-over-lower-dir-then-write",
        "directory d/, file d/a, then d -> <outside> replaces it, then d/b (resolver cache)",
        lambda o: tar([d("d/"), f("d/a"), sym("d", o), f("d/b")]),
        "either",
        lambda o: (_r(o) + "/b",),
    ),
    MaliciousLayer(
        "hardlink-dotdot",
        "hardlink hl -> ../../../outside/secret.txt",
        lambda o: tar([hard("hl", UP + "/outside/secret.txt")]),
        "refuse",
    ),
    MaliciousLayer(
        "hardlink-absolute",
        "hardlink hl -> <outside>/secret.txt",
        lambda o: tar([hard("hl", o + "/secret.txt")]),
        "refuse",
    ),
    MaliciousLayer(
        "hardlink-via-symlinked-dir",
        "s -> <outside>, then hardlink hl -> s/secret.txt",
        lambda o: tar([sym("s", o), hard("hl", "s/secret.txt")]),
        "refuse",
    ),
    MaliciousLayer(
        "hardlink-via-lower-symlink",
        "hardlink hl -> lower_abs/secret.txt (lower_abs is a lower-layer symlink to outside)",
        lambda o: tar([hard("hl", "lower_abs/secret.txt")]),
        "refuse",
    ),
    MaliciousLayer(
        "hardlink-via-relative-lower-symlink",
        "hardlink hl -> lower_rel/outside/passwd",
        lambda o: tar([hard("hl", "lower_rel/outside/passwd")]),
        "refuse",
    ),
    MaliciousLayer(
        "hardlink-to-symlink-then-write",
        "s -> <outside>/secret.txt; hl links s; then regular file hl, and hl2 links s with mode "
        "0777 and uid 1234 (chmod/chown must not follow)",
        lambda o: tar(
            [
                sym("s", o + "/secret.txt"),
                hard("hl", "s"),
                f("hl", b"overwritten\n"),
                hard("hl2", "s", mode=0o777, uid=1234, gid=1234),
            ]
        ),
        "apply",
        lambda o: ("hl", "hl2"),
    ),
    MaliciousLayer(
        "hardlink-to-lower-symlink-chmod",
        "CVE-2021-32760 class: hardlink h -> lower_secret (a symlink to outside) with mode 0777, "
        "uid 1234, mtime 0",
        lambda o: tar([hard("h", "lower_secret", mode=0o777, uid=1234, mtime=0)]),
        "apply",
        lambda o: ("h",),
    ),
    MaliciousLayer(
        "hardlink-to-symlink-as-parent",
        "s -> <outside>; hl links s; then hl/pwned.txt",
        lambda o: tar([sym("s", o), hard("hl", "s"), f("hl/pwned.txt")]),
        "either",
        lambda o: (_r(o) + "/pwned.txt",),
    ),
    MaliciousLayer(
        "hardlink-to-root",
        "hardlinks whose target cleans to the root: '/', '..', '.'",
        lambda o: tar([hard("h1", "/"), hard("h2", ".."), hard("h3", ".")]),
        "refuse",
    ),
    MaliciousLayer(
        "hardlink-to-directory",
        "hardlink to a directory (lower_dir)",
        lambda o: tar([hard("h", "lower_dir")]),
        "refuse",
    ),
    MaliciousLayer(
        "whiteout-dotdot",
        "whiteout .wh.. in a subdirectory (names the parent)",
        lambda o: tar([d("a/"), f("a/.wh..")]),
        "refuse",
    ),
    MaliciousLayer(
        "whiteout-dot-at-root",
        "whiteout .wh.. at the root (would name the root's parent)",
        lambda o: tar([f(".wh..")]),
        "refuse",
    ),
    MaliciousLayer(
        "whiteout-dotdotdot",
        "whiteout .wh... (names '..')",
        lambda o: tar([f("lower_dir/.wh...")]),
        "refuse",
    ),
    MaliciousLayer(
        "whiteout-empty",
        "whiteout .wh. (names the directory itself)",
        lambda o: tar([f("lower_dir/.wh.")]),
        "refuse",
    ),
    MaliciousLayer(
        "whiteout-escaping-names",
        "whiteouts ../.wh.parent_sentinel.txt, ../../.wh.host_sentinel.txt, "
        "/<outside>/.wh.secret.txt",
        lambda o: tar(
            [
                f("../.wh.parent_sentinel.txt", b""),
                f("../../.wh.host_sentinel.txt", b""),
                f(o + "/.wh.secret.txt", b""),
            ]
        ),
        "either",
    ),
    MaliciousLayer(
        "whiteout-through-symlinks",
        "whiteouts lower_abs/.wh.secret.txt, lower_rel/outside/.wh.passwd, "
        "s/.wh.sub (s -> outside)",
        lambda o: tar(
            [
                f("lower_abs/.wh.secret.txt", b""),
                f("lower_rel/outside/.wh.passwd", b""),
                sym("s", o),
                f("s/.wh.sub", b""),
            ]
        ),
        "either",
    ),
    MaliciousLayer(
        "whiteout-of-lower-symlink",
        "whiteout .wh.lower_abs removes the symlink, never the directory it points to",
        lambda o: tar([f(".wh.lower_abs", b""), f(".wh.lower_rel", b"")]),
        "apply",
    ),
    MaliciousLayer(
        "opaque-through-symlinks",
        "opaque markers lower_rel/.wh..wh..opq, lower_abs/.wh..wh..opq and s/.wh..wh..opq (s -> /)",
        lambda o: tar(
            [
                f("keep.txt"),
                f("lower_abs/.wh..wh..opq", b""),
                f("lower_rel/.wh..wh..opq", b""),
                sym("s", "/"),
                f("s/.wh..wh..opq", b""),
            ]
        ),
        "either",
    ),
    MaliciousLayer(
        "opaque-escaping-name",
        "opaque marker named ../../.wh..wh..opq",
        lambda o: tar([f("../../.wh..wh..opq", b"")]),
        "either",
    ),
    MaliciousLayer(
        "dot-symlink",
        "umoci CVE-2021-29136: a symlink named '.' -> <outside>, then pwned.txt",
        lambda o: tar([sym(".", o), f("pwned.txt")]),
        "either",
        lambda o: ("pwned.txt",),
    ),
    MaliciousLayer(
        "dotslash-symlink",
        "symlink named './' -> / and one named '' -> ../../.., then x.txt",
        lambda o: tar([sym("./", "/"), sym("", UP), f("x.txt")]),
        "either",
        lambda o: ("x.txt",),
    ),
    MaliciousLayer(
        "root-replacement",
        "entries replacing the root: '.' regular file, '..' symlink, '/' dir 0777 uid 1234",
        lambda o: tar([f(".", b"root is a file now"), sym("..", o), d("/", mode=0o777, uid=1234)]),
        "either",
    ),
    MaliciousLayer(
        "device-nodes-escaping",
        "char/block devices and a FIFO named ../../../outside/null, /<outside>/blk, "
        "lower_abs/dev, ../fifo",
        lambda o: tar(
            [
                dev(UP + "/outside/null", tarfile.CHRTYPE, 1, 3),
                dev(o + "/blk", tarfile.BLKTYPE, 7, 0),
                dev("lower_abs/dev", tarfile.CHRTYPE, 1, 5),
                dev("../fifo", tarfile.FIFOTYPE, 0, 0),
            ]
        ),
        "either",
    ),
    MaliciousLayer(
        "device-over-lower-symlink",
        "a device node named lower_secret (a symlink to outside) replaces the link",
        lambda o: tar([dev("lower_secret", tarfile.CHRTYPE, 1, 3)]),
        "apply",
        lambda o: ("lower_secret",),
    ),
    MaliciousLayer(
        "gnu-longname-escape",
        "GNU ././@LongLink name ../ x40 + <outside>/long.txt",
        lambda o: tar([f("../" * 40 + o.lstrip("/") + "/long.txt")], tarfile.GNU_FORMAT),
        "either",
        lambda o: (_r(o) + "/long.txt",),
    ),
    MaliciousLayer(
        "gnu-longlink-hardlink",
        "GNU long link name: hardlink to ../ x40 + <outside>/secret.txt",
        lambda o: tar([hard("hl", "../" * 40 + o.lstrip("/") + "/secret.txt")], tarfile.GNU_FORMAT),
        "refuse",
    ),
    MaliciousLayer(
        "pax-path-escape",
        "innocent ustar name, PAX path=../../../outside/pax.txt",
        lambda o: tar(
            [
                (
                    _info(
                        "innocent.txt",
                        tarfile.REGTYPE,
                        size=4,
                        pax_headers=_pax(path=UP + "/outside/pax.txt"),
                    ),
                    b"pax\n",
                )
            ]
        ),
        "either",
        lambda o: ("outside/pax.txt",),
    ),
    MaliciousLayer(
        "pax-linkpath-escape",
        "hardlink with PAX linkpath=<outside>/secret.txt",
        lambda o: tar(
            [
                (
                    _info(
                        "hl",
                        tarfile.LNKTYPE,
                        linkname="innocent",
                        pax_headers=_pax(linkpath=o + "/secret.txt"),
                    ),
                    b"",
                )
            ]
        ),
        "refuse",
    ),
    MaliciousLayer(
        "ustar-prefix-escape",
        "raw ustar header with prefix '../../..' and name outside/prefix.txt",
        lambda o: raw_tar(
            raw_header(b"outside/prefix.txt", size=3, prefix=b"../../.."), _pad(b"hi\n")
        ),
        "either",
        lambda o: ("outside/prefix.txt",),
    ),
    MaliciousLayer(
        "base256-fields",
        "raw header with a base-256 uid, named ../b256.txt",
        lambda o: raw_tar(
            raw_header(b"../b256.txt", size=1, uid_field=b"\x80" + (4242).to_bytes(7, "big")),
            _pad(b"x"),
        ),
        "either",
        lambda o: ("b256.txt",),
    ),
    MaliciousLayer(
        "symlink-loop",
        "a -> b, b -> a, then a/x",
        lambda o: tar([sym("a", "b"), sym("b", "a"), f("a/x")]),
        "refuse",
    ),
    MaliciousLayer(
        "symlink-too-many-hops",
        "a chain of 300 symlinks ending outside, then a write through its head",
        lambda o: tar(_chain(300)),
        "refuse",
    ),
    MaliciousLayer(
        "symlink-chain-within-limit",
        "a chain of 100 symlinks ending at ../../../outside, then a write through its head",
        lambda o: tar(_chain(100)),
        "either",
        lambda o: ("outside/chain.txt",),
    ),
    MaliciousLayer(
        "lower-symlink-write-through",
        "writes through the lower layer's symlinks: lower_abs/x.txt, lower_rel/outside/y.txt",
        lambda o: tar([f("lower_abs/x.txt"), f("lower_rel/outside/y.txt")]),
        "either",
        lambda o: (_r(o) + "/x.txt", "outside/y.txt"),
    ),
    MaliciousLayer(
        "lower-symlink-file-overwrite",
        "regular file lower_secret (a lower symlink to outside/secret.txt) replaces the link",
        lambda o: tar([f("lower_secret", b"overwritten\n", mode=0o777)]),
        "apply",
        lambda o: ("lower_secret",),
    ),
    MaliciousLayer(
        "dir-over-lower-symlink",
        "directory entry lower_abs/ (0700, uid 99) over a symlink to outside (chmod/chown class)",
        lambda o: tar([d("lower_abs/", mode=0o700, uid=99, gid=99, mtime=0)]),
        "apply",
        lambda o: ("lower_abs",),
    ),
    MaliciousLayer(
        "metadata-on-symlink-to-outside",
        "symlink s -> <outside>/secret.txt with uid 4242, mtime 0 and a user xattr",
        lambda o: tar(
            [
                (
                    _info(
                        "s",
                        tarfile.SYMTYPE,
                        linkname=o + "/secret.txt",
                        uid=4242,
                        mtime=0,
                        pax_headers=_pax(**{"SCHILY.xattr.user.evil": "1"}),
                    ),
                    b"",
                )
            ]
        ),
        "either",
        lambda o: ("s",),
    ),
    MaliciousLayer(
        "lexical-dotdot-via-symlink",
        "lower_dir/../lower_abs/z.txt: '..' is lexical, then lower_abs is followed in the root",
        lambda o: tar([f("lower_dir/../lower_abs/z.txt")]),
        "either",
        lambda o: (_r(o) + "/z.txt",),
    ),
    MaliciousLayer(
        "unknown-type-escape",
        "an entry of unknown type 'Z' named ../z",
        lambda o: raw_tar(raw_header(b"../z", b"Z")),
        "refuse",
    ),
    MaliciousLayer(
        "nul-in-pax-path",
        "PAX path with an embedded NUL (ok\\0../../x)",
        lambda o: tar(
            [(_info("ok", tarfile.REGTYPE, size=0, pax_headers=_pax(path="ok\0../../x")), b"")]
        ),
        "refuse",
    ),
    MaliciousLayer(
        "symlink-dotdot-name",
        "symlinks named '..' and 'a/..' -> <outside> (both clean to the root)",
        lambda o: tar([sym("..", o), d("a/"), sym("a/..", o), f("after.txt")]),
        "either",
        lambda o: ("after.txt",),
    ),
    MaliciousLayer(
        "hardlink-replacing-itself-via-symlink",
        "file a.txt; h1 links a.txt; a.txt replaced by symlink to outside; h2 links h1 and "
        "is then overwritten",
        lambda o: tar(
            [
                f("a.txt", b"a\n"),
                hard("h1", "a.txt"),
                sym("a.txt", o + "/secret.txt"),
                hard("h2", "a.txt"),
                f("h2", b"overwritten\n"),
            ]
        ),
        "apply",
        lambda o: ("h1", "h2", "a.txt"),
    ),
)
