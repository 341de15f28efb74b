"""pallet.archive.tar: header bytes, PAX rules, buffering, and what tarfile / GNU tar read back."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallet.archive.tar import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarWriter,
    encode_header,
    whiteout_name,
)
from pallet.errors import FailedPrecondition, InvalidArgument
from support.tools import require_tool


class Chunks:
    """A sink that records each write (copied: the writer reuses its buffer)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def first_member(data: bytes) -> tarfile.TarInfo:
    """The first member's header; its data need not be present."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        first = tf.next()
        assert first is not None
        return first


def reference_checksum(block: bytes) -> int:
    return sum(block[:148]) + 8 * 0x20 + sum(block[156:512])


def gnu_tar() -> str:
    return require_tool("tar")


# -- exact bytes -------------------------------------------------------------------------------


def test_plain_header_layout_matches_go_archive_tar() -> None:
    blk = encode_header(b"etc/passwd", REGTYPE, 0o644, 1000, 100, 1_700_000_000, 1234)
    assert len(blk) == 512
    assert blk[0:100] == b"etc/passwd".ljust(100, b"\0")
    assert blk[100:108] == b"0000644\0"
    assert blk[108:116] == b"0001750\0"
    assert blk[116:124] == b"0000144\0"
    assert blk[124:136] == b"00000002322\0"
    assert blk[136:148] == b"%011o\0" % 1_700_000_000
    assert blk[148:156] == b"%06o\0 " % reference_checksum(blk)
    assert blk[156:157] == b"0"
    assert blk[157:257] == bytes(100)
    assert blk[257:265] == b"ustar\x0000"
    assert blk[265:329] == bytes(64)  # uname, gname empty
    assert blk[329:345] == b"0000000\x000000000\0"  # devmajor/devminor always filled
    assert blk[345:512] == bytes(167)


def test_device_numbers_and_typeflags() -> None:
    blk = encode_header(b"dev/null", CHRTYPE, 0o666, 0, 0, 0, devmajor=1, devminor=3)
    assert blk[156:157] == b"3"
    assert blk[329:345] == b"0000001\x000000003\0"
    (m,) = members(blk + bytes(1024))
    assert m.ischr() and (m.devmajor, m.devminor) == (1, 3) and m.mode == 0o666


def test_writer_fast_path_equals_reference_encoder() -> None:
    sink = Chunks()
    tw = TarWriter(sink)
    tw.add_header(b"a/", DIRTYPE, 0o755, 0, 0, 5)
    tw.add_header(b"a/l", SYMTYPE, 0o777, 0, 0, 5, linkname=b"../x")
    tw.close()
    expected = (
        encode_header(b"a/", DIRTYPE, 0o755, 0, 0, 5)
        + encode_header(b"a/l", SYMTYPE, 0o777, 0, 0, 5, linkname=b"../x")
        + bytes(1024)
    )
    assert sink.data == expected
    assert tw.bytes_written == len(expected) == 2048
    assert tw.entries == 2


names = st.binary(min_size=1, max_size=300).filter(lambda b: b"\0" not in b)


@settings(max_examples=300, deadline=None)
@given(
    name=names,
    typeflag=st.sampled_from([REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, FIFOTYPE]),
    mode=st.integers(0, 0o7777),
    uid=st.integers(0, 1 << 32),
    gid=st.integers(0, 1 << 32),
    mtime=st.integers(-(1 << 34), 1 << 36),
    size=st.integers(0, 1 << 40),
    linkname=st.binary(max_size=200).filter(lambda b: b"\0" not in b),
)
def test_fast_path_and_reference_agree_and_tarfile_reads_them(
    name: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    mtime: int,
    size: int,
    linkname: bytes,
) -> None:
    if typeflag != REGTYPE:
        size = 0
    if typeflag in (SYMTYPE, LNKTYPE) and not linkname:
        linkname = b"t"
    ref = encode_header(name, typeflag, mode, uid, gid, mtime, size, linkname)
    sink = Chunks()
    tw = TarWriter(sink)
    tw.add_header(name, typeflag, mode, uid, gid, mtime, size, linkname)
    tw._remaining = 0  # skip the data: we only compare headers
    tw._flush()
    assert sink.data == ref
    # every block has a valid checksum
    for off in range(0, len(ref), 512):
        blk = ref[off : off + 512]
        if blk[156:157] in b"x0123456":
            assert int(blk[148:154], 8) == reference_checksum(blk)
    # tarfile agrees on every field (it does not need the data to parse the header)
    m = first_member(ref)
    # tarfile drops trailing slashes of directories and of every PAX path
    if typeflag == DIRTYPE or m.pax_headers.get("path"):
        assert os.fsencode(m.name) == name.rstrip(b"/")
    else:
        assert os.fsencode(m.name) == name
    assert m.type == typeflag
    assert (m.mode, m.uid, m.gid, m.size) == (mode, uid, gid, size)
    assert int(m.mtime) == mtime
    if typeflag in (SYMTYPE, LNKTYPE):
        assert os.fsencode(m.linkname) == linkname


# -- PAX rules ---------------------------------------------------------------------------------


def test_long_ascii_name_uses_ustar_prefix_like_go() -> None:
    name = b"p" * 120 + b"/" + b"n" * 90
    blk = encode_header(name, REGTYPE, 0o644, 0, 0, 0)
    assert len(blk) == 512  # no PAX header
    assert blk[0:90] == b"n" * 90 and blk[90] == 0
    assert blk[345:465] == b"p" * 120
    (m,) = members(blk + bytes(1024))
    assert m.name == os.fsdecode(name)


def test_unsplittable_name_gets_pax_path_with_go_style_header_name() -> None:
    name = b"dir/" + b"x" * 150
    data = encode_header(name, REGTYPE, 0o600, 0, 0, 7)
    assert data[156:157] == b"x"
    assert data[0:100].rstrip(b"\0") == b"dir/PaxHeaders.0/" + b"x" * 83
    assert data[512:1024].rstrip(b"\0") == b"164 path=" + name + b"\n"
    main = data[1024:]
    assert main[0:100] == b"dir/" + b"x" * 96  # truncated ASCII fallback
    (m,) = members(data + bytes(1024))
    assert m.name == os.fsdecode(name) and m.mtime == 7 and m.mode == 0o600


def test_non_utf8_name_is_stored_raw_in_pax() -> None:
    name = b"caf\xe9/\xff\xfe.txt"
    data = encode_header(name, REGTYPE, 0o644, 0, 0, 0)
    assert b" path=" + name + b"\n" in data[512:1024]
    assert b"hdrcharset" not in data  # GNU tar 1.34 would warn about it
    assert data[1024 : 1024 + 100].rstrip(b"\0") == b"caf/.txt"  # Go's toASCII fallback
    (m,) = members(data + bytes(1024))
    assert os.fsencode(m.name) == name


def test_utf8_name_goes_to_pax() -> None:
    name = "überall/日本.txt".encode()
    data = encode_header(name, REGTYPE, 0o644, 0, 0, 0)
    (m,) = members(data + bytes(1024))
    assert m.name == "überall/日本.txt"
    assert m.pax_headers["path"] == "überall/日本.txt"


def test_large_ids_size_and_odd_mtimes_use_pax_records() -> None:
    size = 9 << 30  # > 8 GiB: does not fit 11 octal digits
    data = encode_header(b"big", REGTYPE, 0o644, 3_000_000, 4_000_000, -5, size)
    records = data[512:1024].rstrip(b"\0")
    assert records == b"15 gid=4000000\n12 mtime=-5\n19 size=9663676416\n15 uid=3000000\n"
    assert all(len(r) == int(r.split(b" ")[0]) for r in _split_records(records))
    main = data[1024:]
    assert main[108:116] == b"0000000\0"  # overflowed fields are zero, as in Go
    assert main[124:136] == b"00000000000\0"
    m = first_member(data)
    assert (m.uid, m.gid, m.size, m.mtime) == (3_000_000, 4_000_000, size, -5)


def test_largest_ustar_values_need_no_pax() -> None:
    blk = encode_header(b"f", REGTYPE, 0o7777, 0o7777777, 0o7777777, 0o77777777777, 0o77777777777)
    assert len(blk) == 512
    assert len(encode_header(b"f", REGTYPE, 0, 0o7777777 + 1, 0, 0)) == 1536


def test_xattrs_are_sorted_schily_records_with_binary_values() -> None:
    cap = b"\x01\x00\x00\x02\x00\x04\x00\x00" + bytes(12)
    xattrs = {b"user.z": b"last", b"security.capability": cap, b"user.a": b"a=b\nc"}
    data = encode_header(b"bin/ping", REGTYPE, 0o755, 0, 0, 0, xattrs=xattrs)
    recs = data[512:1024].rstrip(b"\0")
    keys = [r.split(b"=", 1)[0].split(b" ", 1)[1] for r in _split_records(recs)]
    assert keys == [
        b"SCHILY.xattr.security.capability",
        b"SCHILY.xattr.user.a",
        b"SCHILY.xattr.user.z",
    ]
    (m,) = members(data + bytes(1024))
    assert m.name == "bin/ping"
    assert m.pax_headers["SCHILY.xattr.user.a"] == "a=b\nc"
    assert m.pax_headers["SCHILY.xattr.user.z"] == "last"
    raw = m.pax_headers["SCHILY.xattr.security.capability"]
    assert raw.encode("utf-8", "surrogateescape") == cap


def _split_records(buf: bytes) -> list[bytes]:
    out = []
    while buf:
        n = int(buf.split(b" ", 1)[0])
        out.append(buf[:n])
        assert buf[n - 1 : n] == b"\n"
        buf = buf[n:]
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1100))
def test_pax_record_length_counts_itself_across_digit_boundaries(n: int) -> None:
    value = b"v" * n
    data = encode_header(b"f", REGTYPE, 0, 0, 0, 0, xattrs={b"user.k": value})
    size = int(data[124:135], 8)
    (rec,) = _split_records(data[512 : 512 + size])
    assert rec.endswith(b" SCHILY.xattr.user.k=" + value + b"\n")


# -- writer behaviour --------------------------------------------------------------------------


def test_archive_ends_with_two_zero_blocks_and_no_record_padding() -> None:
    sink = Chunks()
    tw = TarWriter(sink)
    tw.add_file(b"f", b"abc")
    tw.close()
    data = sink.data
    assert len(data) == 512 + 512 + 1024  # header, padded data, end marker; not 10240
    assert data[512:515] == b"abc" and data[515:1024] == bytes(509)
    assert data[-1024:] == bytes(1024)
    empty = Chunks()
    TarWriter(empty).close()
    assert empty.data == bytes(1024)


def test_whiteout_entry() -> None:
    assert whiteout_name(b"a/b/c") == b"a/b/.wh.c"
    assert whiteout_name(b"top/") == b".wh.top"
    sink = Chunks()
    tw = TarWriter(sink)
    tw.add_whiteout(b"etc/gone", 42)
    tw.close()
    (m,) = members(sink.data)
    assert (m.name, m.type, m.mode, m.uid, m.gid, m.size, m.mtime) == (
        "etc/.wh.gone",
        REGTYPE,
        0,
        0,
        0,
        0,
        42,
    )
    with pytest.raises(InvalidArgument):
        whiteout_name(b"..")


@pytest.mark.parametrize("buffer_size", [2048, 4096, 5000, 1 << 20])
def test_output_independent_of_buffer_size_and_chunked(buffer_size: int, tmp_path: Path) -> None:
    payloads = [os.urandom(n) for n in (0, 1, 511, 512, 513, 4095, 10_000, 70_000)]
    files = []
    for i, p in enumerate(payloads):
        f = tmp_path / f"f{i}"
        f.write_bytes(p)
        files.append(f)
    sink = Chunks()
    tw = TarWriter(sink, buffer_size=buffer_size)
    for i, (p, f) in enumerate(zip(payloads, files, strict=True)):
        tw.add_header(b"f%d" % i, REGTYPE, 0o644, 0, 0, 0, len(p))
        fd = os.open(f, os.O_RDONLY)
        try:
            tw.copy_fd(fd)
        finally:
            os.close(fd)
        tw.add_file(b"m%d" % i, p)
        tw.add_header(b"x" * 200 + b"%d" % i, REGTYPE, 0o644, 0, 0, 0, len(p))
        tw.write(memoryview(p)[: len(p) // 2])
        tw.write(p[len(p) // 2 :])
    tw.close()
    assert all(len(c) <= buffer_size for c in sink.chunks)
    if buffer_size == 1 << 20:
        assert len(sink.chunks) == 1  # batched: one sink call for the whole small stream
    with tarfile.open(fileobj=io.BytesIO(sink.data), mode="r:") as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}  # type: ignore[union-attr]
    for i, p in enumerate(payloads):
        assert got[f"f{i}"] == p and got[f"m{i}"] == p and got["x" * 200 + str(i)] == p
    reference = Chunks()
    tw = TarWriter(reference)
    for i, p in enumerate(payloads):
        tw.add_file(b"f%d" % i, p)
        tw.add_file(b"m%d" % i, p)
        tw.add_file(b"x" * 200 + b"%d" % i, p)
    tw.close()
    assert sink.data == reference.data


def test_data_must_match_header_size(tmp_path: Path) -> None:
    tw = TarWriter(Chunks())
    tw.add_header(b"f", REGTYPE, 0o644, 0, 0, 0, 10)
    with pytest.raises(FailedPrecondition, match="tar entry 'f'"):
        tw.write(b"x" * 11)
    tw.write(b"x" * 4)
    with pytest.raises(FailedPrecondition, match="6 bytes of data missing"):
        tw.add_header(b"g", REGTYPE, 0o644, 0, 0, 0)
    with pytest.raises(FailedPrecondition):
        tw.close()
    short = tmp_path / "short"
    short.write_bytes(b"12345")
    tw = TarWriter(Chunks())
    tw.add_header(b"s", REGTYPE, 0o644, 0, 0, 0, 9)
    fd = os.open(short, os.O_RDONLY)
    try:
        with pytest.raises(FailedPrecondition, match="4 bytes before"):
            tw.copy_fd(fd)
    finally:
        os.close(fd)


def test_copy_fd_refuses_a_file_longer_than_its_header(tmp_path: Path) -> None:
    """Go's archive/tar: ErrWriteTooLong. Cutting it would store a file that never existed."""
    f = tmp_path / "f"
    f.write_bytes(b"x" * 5000)
    for size, buffer_size, reads in [(5000, 1 << 20, 1), (5000, 2048, 3), (4999, 2048, None)]:
        sink = Chunks()
        tw = TarWriter(sink, buffer_size=buffer_size)
        tw.add_header(b"f", REGTYPE, 0o644, 0, 0, 0, size)
        fd = os.open(f, os.O_RDONLY)
        try:
            if reads is None:
                with pytest.raises(FailedPrecondition, match="^tar entry 'f': file goes on past"):
                    tw.copy_fd(fd)
                continue
            assert tw.copy_fd(fd) == reads
        finally:
            os.close(fd)
        tw.close()
        with tarfile.open(fileobj=io.BytesIO(sink.data), mode="r:") as tf:
            assert tf.extractfile("f").read() == b"x" * 5000  # type: ignore[union-attr]


def test_closed_writer_refuses_entries() -> None:
    tw = TarWriter(Chunks())
    tw.close()
    tw.close()  # idempotent
    with pytest.raises(FailedPrecondition, match="closed"):
        tw.add_header(b"f", REGTYPE, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": b""}, "empty or contains NUL"),
        ({"name": b"a\0b"}, "empty or contains NUL"),
        ({"typeflag": b"x"}, "unsupported typeflag"),
        ({"typeflag": b"7" * 2}, "unsupported typeflag"),
        ({"mode": 0o10000}, "mode"),
        ({"uid": -1}, "negative"),
        ({"typeflag": DIRTYPE, "size": 1}, "size 1 not allowed"),
        ({"typeflag": SYMTYPE}, "link without a target"),
        ({"typeflag": BLKTYPE, "devmajor": 1 << 21}, "device number"),
        ({"xattrs": {b"user.a=b": b""}}, "cannot be stored in PAX"),
    ],
)
def test_unrepresentable_headers_are_refused(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "name": b"f",
        "typeflag": REGTYPE,
        "mode": 0o644,
        "uid": 0,
        "gid": 0,
        "mtime": 0,
    }
    args.update(kwargs)
    with pytest.raises(InvalidArgument, match=match):
        encode_header(**args)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=match):
        TarWriter(Chunks()).add_header(**args)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        TarWriter(Chunks(), buffer_size=100)


def test_gnu_tar_lists_and_extracts_writer_output(tmp_path: Path) -> None:
    tar = gnu_tar()
    long_dir = b"d" * 130
    entries = [
        (b"caf\xe9/", DIRTYPE, 0o755, b"", b""),
        (b"caf\xe9/\xff.txt", REGTYPE, 0o4755, b"", b"raw name"),
        (long_dir + b"/", DIRTYPE, 0o1777, b"", b""),
        (long_dir + b"/" + b"f" * 140, REGTYPE, 0o2644, b"", b"long"),
        (b"ln", LNKTYPE, 0o4755, b"caf\xe9/\xff.txt", b""),
        (b"sym", SYMTYPE, 0o777, b"caf\xe9/" + b"t" * 200, b""),
    ]
    sink = Chunks()
    tw = TarWriter(sink)
    for name, tf, mode, link, data in entries:
        tw.add_header(name, tf, mode, 1234, 5678, 1_600_000_000, len(data), link)
        tw.write(data)
    tw.close()
    archive = tmp_path / "a.tar"
    archive.write_bytes(sink.data)
    listing = subprocess.run(
        [tar, "-tvf", str(archive)], check=True, capture_output=True
    ).stdout.decode()
    assert subprocess.run([tar, "-tf", str(archive)], capture_output=True).stderr == b""
    assert "caf\\351/\\377.txt" in listing
    assert "-rwsr-xr-x 1234/5678         8 2020-09-13" in listing
    assert "f" * 140 in listing
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([tar, "-xpf", str(archive), "-C", str(out), "--numeric-owner"], check=True)
    o = os.fsencode(out)
    st = os.lstat(o + b"/caf\xe9/\xff.txt")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime) == (0o4755, 1234, 5678, 1.6e9)
    assert Path(os.fsdecode(o + b"/caf\xe9/\xff.txt")).read_bytes() == b"raw name"
    assert os.lstat(o + b"/ln").st_ino == st.st_ino
    assert os.readlink(o + b"/sym") == b"caf\xe9/" + b"t" * 200
    assert Path(os.fsdecode(o + b"/" + long_dir + b"/" + b"f" * 140)).read_bytes() == b"long"
    assert os.lstat(o + b"/" + long_dir).st_mode & 0o7777 == 0o1777
