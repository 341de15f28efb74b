"""Fuzzing the tar reader and both of its consumers with random and mutated archives.

Seeds are valid archives from pallet's own writer and from :mod:`tarfile` (ustar, GNU and PAX
formats), the hostile-layer corpus, and a real image archive; mutations overwrite bytes, rewrite
header fields (with a fixed checksum, so parsing goes past it), insert metadata headers that
claim huge or lying sizes, duplicate, cut and splice. Whatever comes out, the reader, the layer
applier and the archive loader must either succeed or raise a :class:`pallet.errors.Error`:
never another exception, never a hang, never memory beyond a bound, never a write outside the
root.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.archive.apply import apply_tar
from pallet.archive.tar import (
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarWriter,
)
from pallet.archive.tarreader import FormatError, TarReader
from pallet.compression import Compression
from pallet.errors import Error
from pallet.layout import ArchiveImage, Format, load_archive, save
from pallet.leases import new_id
from pallet.metadata.store import Store, open_store
from support.images import build_image
from support.malicious_layers import CORPUS, build_host

pytestmark = [
    pytest.mark.timeout(300),
    # a failing example of this size is reported all the same
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

# memory the reader may use on any input: its 1 MiB buffer, one metadata payload of at most
# 1 MiB (twice, while it is copied out), one data chunk handed to the caller, and change
MEMORY_BOUND = 6 << 20
FUZZ = settings(
    deadline=timedelta(seconds=20),  # a hang fails the example; slow CI must not
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- seeds ------------------------------------------------------------------------------------

_component = st.sampled_from(["a", "b", "é", "x" * 120, ".", "..", "", ".wh.a", "dir", "\udcff"])
_names = st.lists(_component, min_size=1, max_size=4).map("/".join).filter(bool)


@st.composite
def _members(draw: st.DrawFn) -> list[tuple[str, bytes, bytes, str]]:
    """(name, typeflag, data, link) tuples, for either writer."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from([REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, FIFOTYPE, CHRTYPE]))
        data = draw(st.binary(max_size=1500)) if kind == REGTYPE else b""
        link = draw(_names) if kind in (SYMTYPE, LNKTYPE) else ""
        out.append((draw(_names), kind, data, link))
    return out


def _encode(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _writer_archive(members: list[tuple[str, bytes, bytes, str]], xattr: bool) -> bytes:
    out = bytearray()

    class Sink:
        def write(self, data: memoryview) -> None:
            out.extend(data)

    w = TarWriter(Sink())
    for name, kind, data, link in members:
        w.add_header(
            _encode(name),
            kind,
            0o4755 if kind == REGTYPE else 0o755,
            1000,
            3_000_000 if xattr else 0,  # beyond ustar: a PAX record
            1_700_000_000,
            size=len(data),
            linkname=_encode(link),
            devmajor=1 if kind == CHRTYPE else 0,
            devminor=3 if kind == CHRTYPE else 0,
            xattrs={b"user.fuzz": b"\0\xff"} if xattr else None,
        )
        if data:
            w.write(data)
    w.close()
    return bytes(out)


def _tarfile_archive(members: list[tuple[str, bytes, bytes, str]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as tf:
        for name, kind, data, link in members:
            ti = tarfile.TarInfo(name)
            ti.type, ti.size, ti.linkname, ti.mode = kind, len(data), link, 0o644
            ti.uid = 9_000_000 if fmt == tarfile.GNU_FORMAT else 7  # GNU: base-256
            if fmt == tarfile.PAX_FORMAT:
                ti.pax_headers = {"SCHILY.xattr.user.k": "v", "atime": "1700000000.5"}
            try:
                tf.addfile(ti, io.BytesIO(data) if data else None)
            except (ValueError, UnicodeError):
                continue  # ustar cannot hold this name; the others still make a seed
    return buf.getvalue()


_formats = st.sampled_from(["writer", "writer+xattr", "ustar", "gnu", "pax"])


@st.composite
def valid_archives(draw: st.DrawFn) -> bytes:
    members, fmt = draw(_members()), draw(_formats)
    if fmt.startswith("writer"):
        return _writer_archive(members, fmt.endswith("xattr"))
    return _tarfile_archive(
        members,
        {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[fmt],
    )


# -- mutations --------------------------------------------------------------------------------

# header fields: offset, width
_FIELDS = [(0, 100), (100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (156, 1), (157, 100),
           (257, 8), (329, 8), (337, 8), (345, 155), (345, 12)]  # fmt: skip
_NUMBERS = [0, 1, 511, 512, (1 << 20) + 1, (1 << 33) - 1, 1 << 40, 1 << 62, (1 << 63) + 5]
_TYPES = b"0123456789xgLKSAVMND\0"


def _number(n: int, width: int) -> bytes:
    """``n`` in a numeric field: octal when it fits, else GNU base-256 (two's complement)."""
    if 0 <= n < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, n)
    return bytes([0xC0 if n < 0 else 0x80]) + (n % (1 << (8 * width - 8))).to_bytes(width - 1)


def _fix_checksum(data: bytearray, off: int) -> None:
    h = data[off : off + 512]
    if len(h) == 512:
        h[148:156] = b" " * 8
        h[148:156] = b"%06o\0 " % sum(h)
        data[off : off + 512] = h


def _header(typ: bytes, size: int, name: bytes = b"m") -> bytes:
    h = bytearray(512)
    h[0 : len(name)] = name[:100]
    h[100:108] = b"0000644\0"
    h[124:136] = _number(size, 12)
    h[156:157] = typ
    h[257:265] = b"ustar\x0000"
    _fix_checksum(h, 0)
    return bytes(h)


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


@st.composite
def _value(draw: st.DrawFn, width: int) -> bytes:
    n = draw(st.sampled_from(_NUMBERS)) * draw(st.sampled_from([1, -1]))
    choice = draw(st.integers(0, 4))
    if choice == 0 and width == 1:
        return bytes([draw(st.sampled_from(_TYPES))])
    if choice in (1, 2) and width >= 8:
        return _number(n, width)
    if choice == 3:
        return b"../../" * 3 + b"x"
    return draw(st.binary(min_size=width, max_size=width))


_PAX_KEYS = [b"path", b"linkpath", b"size", b"uid", b"gid", b"mtime", b"atime", b"hdrcharset",
             b"GNU.sparse.major", b"SCHILY.xattr.user.x", b"SCHILY.xattr.trusted.x",
             b""]  # fmt: skip
_PAX_VALUES = [b"1", b"-1", b"9" * 23, b"9" * 5000, b"1.5", b"-2.5", b"x", b"../../../etc",
               b"/abs", b""]  # fmt: skip


@st.composite
def _pax_payload(draw: st.DrawFn) -> bytes:
    records = []
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(_PAX_KEYS))
        value = draw(st.sampled_from(_PAX_VALUES))
        rec = b" " + key + b"=" + value + b"\n"
        n = len(rec) + len(str(len(rec) + 3))
        length = draw(st.sampled_from([n, n - 1, n + 1, 0, 1 << 40]))
        records.append(b"%d" % length + rec)
    return b"".join(records)


def _header_offsets(data: bytes | bytearray) -> list[int]:
    """Offsets of blocks that carry a valid checksum (the headers, most likely)."""
    out = []
    for off in range(0, len(data) - 511, 512):
        h = bytes(data[off : off + 512])
        try:
            want = int(h[148:154].strip(b" \0") or b"-1", 8)
        except ValueError:
            continue
        if want == sum(h) - sum(h[148:156]) + 256:
            out.append(off)
    return out


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["byte", "field", "meta", "pax", "cut", "splice", "repeat"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        heads = _header_offsets(data) or [0]
        head = draw(st.sampled_from(heads))
        if op == "byte" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "field" and len(data) >= head + 512:
            off, width = draw(st.sampled_from(_FIELDS))
            data[head + off : head + off + width] = draw(_value(width))
            _fix_checksum(data, head)
        elif op == "meta":
            # a metadata header that claims more than anyone should allocate, or lies
            typ = draw(st.sampled_from([b"x", b"g", b"L", b"K", b"0", b"5"]))
            data[head:head] = _header(typ, draw(st.sampled_from(_NUMBERS)))
        elif op == "pax":
            payload = draw(_pax_payload())
            data[head:head] = _header(b"x", len(payload)) + _pad(payload)
        elif op == "cut":
            del data[pos:]
        elif op == "splice":
            data[pos:pos] = draw(st.binary(max_size=600))
        elif op == "repeat" and len(data) >= head + 512:
            data[head:head] = bytes(data[head : head + 512]) * draw(st.integers(2, 50))
    return bytes(data)


archives = st.one_of(valid_archives(), mutated(valid_archives()))


# -- the reader -------------------------------------------------------------------------------


def _read_all(data: bytes, how: int) -> tuple[list[tuple[bytes, bytes, int]], TarReader]:
    """Every entry (name, type, data length read); ``how`` picks read(), skip, or copy_to()."""
    tr = TarReader(io.BytesIO(data) if how != 2 else _NoReadinto(data), hasher=hashlib.sha256())
    out = []
    while (e := tr.next()) is not None:
        assert e.size >= 0 and len(e.type) == 1 and 0 <= e.mode <= 0o7777
        assert 0 <= e.uid < 1 << 32 and 0 <= e.gid < 1 << 32
        got = 0
        if how == 1:
            while chunk := tr.read(1000):
                got += len(chunk)
            assert got == e.size
        elif how == 3 and e.size < 1 << 20:
            with tempfile.TemporaryFile() as f:
                tr.copy_to(f.fileno())
                got = os.fstat(f.fileno()).st_size
            assert got == e.size
        out.append((e.name, e.type, got))
    tr.drain()
    return out, tr


class _NoReadinto:
    """A stream with ``read`` only (the reader's other input path), in odd-sized pieces."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(min(n, 777) if n >= 0 else 777)


def _outcome(data: bytes, how: int) -> tuple[object, int]:
    """What reading ``data`` gave (entries and reader, or the pallet error), and the peak bytes
    Python allocated meanwhile."""
    tracemalloc.start()
    try:
        try:
            got: object = _read_all(data, how)
        except Error as exc:
            got = exc
        return got, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@settings(FUZZ, max_examples=400)
@given(data=archives, how=st.integers(0, 3))
def test_reader_parses_or_refuses(data: bytes, how: int) -> None:
    got, peak = _outcome(data, how)
    assert peak < MEMORY_BOUND
    if isinstance(got, tuple):
        _, tr = got
        # a parse consumed and hashed every byte, once
        assert tr.size == len(data)
        assert tr._hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    else:
        assert str(got) and "\n" not in str(got)


HOSTILE: list[tuple[str, bytes]] = [
    ("pax-8GiB", _header(b"x", 8 << 30)),
    ("pax-2^62", _header(b"x", 1 << 62)),
    ("longname-1TiB", _header(b"L", 1 << 40)),
    ("longlink-just-over", _header(b"K", (1 << 20) + 1) + bytes((1 << 20) + 512)),
    ("pax-5MiB-all-there", _header(b"x", 5 << 20) + b"9" * (5 << 20)),
    ("global-pax-8GiB", _header(b"g", 8 << 30)),
    ("file-2^62", _header(b"0", 1 << 62) + b"data"),
    ("size-beyond-int64", _header(b"0", 1 << 80)),
    ("size-negative", _header(b"0", -5)),
    ("pax-record-length-huge", _header(b"x", 512) + _pad(b"99999999999999999999 path=x\n")),
    ("pax-digits-5000", _header(b"x", 5013) + _pad(b"5013 size=" + b"9" * 5000 + b"\n")),
]


@pytest.mark.parametrize(("name", "data"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_sizes_are_refused_not_allocated(name: str, data: bytes) -> None:
    for how in range(4):
        got, peak = _outcome(data, how)
        assert peak < MEMORY_BOUND, name
        assert isinstance(got, FormatError), (name, got)


def test_one_pax_header_is_held_at_a_time() -> None:
    """Twenty PAX headers of 1 MiB each before one entry: Go keeps only the last, and so do we
    (merging them would hold 20 MiB)."""
    records = [b"1048576 SCHILY.xattr.user.%02d=" % i for i in range(20)]
    data = (
        b"".join(
            _header(b"x", 1 << 20) + r + b"v" * ((1 << 20) - len(r) - 1) + b"\n" for r in records
        )
        + _header(b"0", 0)
        + bytes(1024)
    )
    for how in range(4):
        got, peak = _outcome(data, how)
        assert peak < MEMORY_BOUND
        assert isinstance(got, tuple)
        entries, tr = got
        assert entries == [(b"m", b"0", 0)] and tr.end_marker
    tr = TarReader(io.BytesIO(data))
    e = tr.next()
    assert e is not None and [k for k, _ in e.xattrs] == [b"user.19"]


# -- the layer applier ------------------------------------------------------------------------


def _outside(base: Path, root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``base`` but the inside of ``root``: type, mode, owner, size, content."""
    snap: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(base):
        if Path(top) == root:
            dirs[:] = []
            files = []
        for n in dirs + files:
            p = os.path.join(top, n)
            st_ = os.lstat(p)
            if Path(p) == root:  # its content, and so its mtime, is the apply's business
                snap[p] = (st_.st_mode, st_.st_uid, st_.st_gid, st_.st_ino)
                continue
            content: object = None
            if stat.S_ISREG(st_.st_mode):
                content = Path(p).read_bytes()
            elif stat.S_ISLNK(st_.st_mode):
                content = os.readlink(p)
            snap[p] = (st_.st_mode, st_.st_uid, st_.st_gid, st_.st_mtime_ns, content)
    return snap


_HOST_OUTSIDE = "/__fuzz_outside__"  # the corpus is built for a fixed outside path
layer_seeds = st.one_of(
    valid_archives(), st.sampled_from(CORPUS).map(lambda c: c.tar(_HOST_OUTSIDE))
)


@settings(FUZZ, max_examples=150)
@given(data=st.one_of(layer_seeds, mutated(layer_seeds)))
def test_apply_stays_inside_root(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = build_host(Path(tmp) / "base")
        before = _outside(host.base, host.root)
        try:
            res = apply_tar(io.BytesIO(data), host.root)
        except Error as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert res.size == len(data)
            assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        assert _outside(host.base, host.root) == before
        assert stat.S_ISDIR(os.lstat(host.root).st_mode)


# -- the archive loader -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, list[bytes]]]:
    """A store, and image archives (OCI and Docker) of one small image made in it."""
    db = open_store(tmp_path_factory.mktemp("fuzz-store"))
    layer = _writer_archive(
        [("etc/hello", REGTYPE, b"hi\n", ""), ("l", SYMTYPE, b"", "etc")], False
    )
    img = build_image(db, [layer], compression=Compression.UNCOMPRESSED)
    seeds = []
    for fmt in (Format.OCI, Format.DOCKER):
        out = io.BytesIO()
        save(out, db.content, [ArchiveImage(target=img.manifest, names=("fuzz:1",))], format=fmt)
        seeds.append(out.getvalue())
    yield db, seeds
    db.close()


@settings(FUZZ, max_examples=80)
@given(pick=st.integers(0, 1), data=st.data())
def test_load_refuses_or_imports(
    store: tuple[Store, list[bytes]], pick: int, data: st.DataObject
) -> None:
    db, seeds = store
    archive = data.draw(st.one_of(mutated(st.just(seeds[pick])), archives))
    lease = db.leases.create(new_id("fuzz-load")).id
    ok = False
    try:
        load_archive(io.BytesIO(archive), db.content, db.images, lease=lease)
        ok = True
    except Error as exc:
        assert str(exc) and "\n" not in str(exc)
    finally:
        db.leases.delete(lease, sync=not ok)
