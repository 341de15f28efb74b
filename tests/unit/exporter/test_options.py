"""Exporter options: every key, every spelling, every error text (spec §1, §5.1)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pallet._gotime import Timestamp
from pallet.errors import InvalidArgument
from pallet.exporter.annotations import AnnotationType
from pallet.exporter.options import (
    REWRITE_TIMESTAMP_CONFLICTS_WITH_UNPACK,
    REWRITE_TIMESTAMP_WITHOUT_EPOCH,
    ImageExportOptions,
    _GoCSV,
    go_parse_bool,
    go_parse_int,
    parse_output,
    resolve,
)
from pallet.oci.descriptor import Platform
from pallet.oci.digest import Digest

ROOT = Digest("sha256:" + "ab" * 32)

BOOL_OPTIONS = [
    ("push", "push", False),
    ("push-by-digest", "push_by_digest", False),
    ("registry.insecure", "insecure", False),
    ("unpack", "unpack", False),
    ("store", "store", True),
    ("danging-name-empty-only", "dangling_name_empty_only", False),
    ("name-canonical", "name_canonical", False),
    ("oci-mediatypes", "oci_mediatypes", True),
    ("oci-artifact", "oci_artifact", True),
    ("attestation-inline", "attestation_inline", True),
    ("prefer-nondist-layers", "prefer_nondist_layers", False),
    ("rewrite-timestamp", "rewrite_timestamp", False),
    ("unsafe-internal-store-allow-incomplete", "unsafe_allow_incomplete", False),
]
TRUE_SPELLINGS = ["", "1", "t", "T", "TRUE", "true", "True"]
FALSE_SPELLINGS = ["0", "f", "F", "FALSE", "false", "False"]
BAD_BOOLS = [
    ("yes", '"yes"'),
    ("no", '"no"'),
    ("tRUE", '"tRUE"'),
    (" true", '" true"'),
    ("true ", '"true "'),
    ("2", '"2"'),
    ('a"b', '"a\\"b"'),
    ("tab\t", '"tab\\t"'),
    ("\x01", '"\\x01"'),
    ("é", '"é"'),
    ("\u00a0", '"\\u00a0"'),
]


def test_defaults() -> None:
    o = resolve({})
    assert o == ImageExportOptions()
    assert (o.name, o.push, o.push_by_digest, o.insecure, o.unpack) == (
        "",
        False,
        False,
        False,
        False,
    )
    assert (o.store, o.oci_mediatypes, o.oci_artifact, o.attestation_inline) == (True,) * 4
    assert (o.compression, o.compression_level, o.force_compression) == ("gzip", None, False)
    assert (o.source_date_epoch, o.source_date_epoch_set, o.rewrite_timestamp) == (
        None,
        False,
        False,
    )
    assert not o.annotations and o.metadata == {}


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolve({}).push = True  # type: ignore[misc]


@pytest.mark.parametrize(("key", "attr", "_default"), BOOL_OPTIONS)
@pytest.mark.parametrize("value", TRUE_SPELLINGS)
def test_bool_true_spellings(key: str, attr: str, _default: bool, value: str) -> None:
    assert getattr(resolve({key: value}), attr) is True


@pytest.mark.parametrize(("key", "attr", "_default"), BOOL_OPTIONS)
@pytest.mark.parametrize("value", FALSE_SPELLINGS)
def test_bool_false_spellings(key: str, attr: str, _default: bool, value: str) -> None:
    attrs = {key: value}
    if key == "oci-artifact":
        attrs["oci-mediatypes"] = "true"
    assert getattr(resolve(attrs), attr) is False


@pytest.mark.parametrize(("key", "attr", "default"), BOOL_OPTIONS)
def test_bool_defaults(key: str, attr: str, default: bool) -> None:
    assert getattr(resolve({}), attr) is default


@pytest.mark.parametrize(("key", "_attr", "_default"), BOOL_OPTIONS)
@pytest.mark.parametrize(("value", "quoted"), BAD_BOOLS)
def test_bool_rejects_with_seed_text(
    key: str, _attr: str, _default: bool, value: str, quoted: str
) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({key: value})
    assert str(ei.value) == (
        f"non-bool value specified for {key}: strconv.ParseBool: parsing {quoted}: invalid syntax"
    )


@given(st.text(max_size=6))
def test_go_parse_bool_accepts_exactly_go_spellings(s: str) -> None:
    if s in TRUE_SPELLINGS[1:]:
        assert go_parse_bool(s) is True
    elif s in FALSE_SPELLINGS:
        assert go_parse_bool(s) is False
    else:
        with pytest.raises(InvalidArgument):
            go_parse_bool(s)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("42", 42), ("+7", 7), ("-7", -7), ("007", 7), (str(2**63 - 1), 2**63 - 1)],
)
def test_go_parse_int(text: str, value: int) -> None:
    assert go_parse_int(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "invalid syntax"),
        ("+", "invalid syntax"),
        ("1.5", "invalid syntax"),
        ("1_000", "invalid syntax"),
        (" 1", "invalid syntax"),
        ("0x10", "invalid syntax"),
        ("\u0661", "invalid syntax"),
        (str(2**63), "value out of range"),
        (str(-(2**63) - 1), "value out of range"),
    ],
)
def test_go_parse_int_errors(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        go_parse_int(text)
    assert str(ei.value).endswith(f": {why}")
    assert str(ei.value).startswith("strconv.ParseInt: parsing ")


# -- strings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", "foo", "a/b:c,d/e:f", "*", "localhost:5000/x@sha256:" + "0" * 64]
)
def test_name_is_kept_raw(value: str) -> None:
    assert resolve({"name": value}).name == value


def test_dangling_prefix_is_a_plain_string() -> None:
    assert resolve({"dangling-name-prefix": "true"}).dangling_name_prefix == "true"


# -- compression --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["uncompressed", "gzip", "zstd"])
def test_compression_types(value: str) -> None:
    assert resolve({"compression": value}).compression == value


@pytest.mark.parametrize("value", ["", "GZIP", "gz", "xz", "zstd ", "estargz2", "nydus"])
def test_compression_unsupported(value: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"compression": value})
    assert str(ei.value) == f"unsupported compression type {value}"


def test_estargz_is_refused_clearly() -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"compression": "estargz"})
    assert str(ei.value).startswith("unsupported compression type estargz: ")
    assert "not implement" in str(ei.value)


def test_estargz_with_docker_types_gives_the_conflict_text() -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"compression": "estargz", "oci-mediatypes": "false"})
    assert str(ei.value) == (
        'exporter option "compression=estargz" conflicts with "oci-mediatypes=false"'
    )


def test_zstd_with_docker_types_is_allowed() -> None:
    o = resolve({"compression": "zstd", "oci-mediatypes": "false"})
    assert (o.compression, o.oci_mediatypes) == ("zstd", False)


@pytest.mark.parametrize(
    ("comp", "level"),
    [("gzip", 0), ("gzip", 9), ("zstd", 0), ("zstd", 22), ("zstd", 3), ("uncompressed", 99)],
)
def test_compression_level_in_range(comp: str, level: int) -> None:
    o = resolve({"compression": comp, "compression-level": str(level)})
    assert o.compression_level == level


def test_compression_level_defaults_to_gzip_range() -> None:
    assert resolve({"compression-level": "+9"}).compression_level == 9


@pytest.mark.parametrize(
    ("comp", "level", "text"),
    [
        ("gzip", "10", "compression level 10: gzip levels are 0-9"),
        ("gzip", "-1", "compression level -1: gzip levels are 0-9"),
        ("zstd", "23", "compression level 23: zstd levels are 0-22"),
    ],
)
def test_compression_level_out_of_range(comp: str, level: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"compression": comp, "compression-level": level})
    assert str(ei.value) == text


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", 'parsing "": invalid syntax'),
        ("high", 'parsing "high": invalid syntax'),
        ("1.0", 'parsing "1.0": invalid syntax'),
        ("99999999999999999999", 'parsing "99999999999999999999": value out of range'),
    ],
)
def test_compression_level_not_an_integer(value: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"compression-level": value})
    assert str(ei.value) == (
        f"non-integer value {value} specified for compression-level: strconv.ParseInt: {why}"
    )


@pytest.mark.parametrize(("value", "expect"), [("", True), ("1", True), ("false", False)])
def test_force_compression(value: str, expect: bool) -> None:
    assert resolve({"force-compression": value}).force_compression is expect


@pytest.mark.parametrize("value", ["yes", "on", "2"])
def test_force_compression_error_text(value: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"force-compression": value})
    assert str(ei.value) == (
        f"non-bool value {value} specified for force-compression: "
        f'strconv.ParseBool: parsing "{value}": invalid syntax'
    )


# -- media types and conflicts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "oci", "artifact"),
    [
        ({}, True, True),
        ({"oci-mediatypes": "false"}, False, False),
        ({"oci-mediatypes": ""}, True, True),
        ({"oci-artifact": "false"}, True, False),
        ({"oci-artifact": "true"}, True, True),
        ({"oci-mediatypes": "false", "oci-artifact": "false"}, False, False),
    ],
)
def test_media_type_family(attrs: dict[str, str], oci: bool, artifact: bool) -> None:
    o = resolve(attrs)
    assert (o.oci_mediatypes, o.oci_artifact) == (oci, artifact)


@pytest.mark.parametrize("v", ["true", "1", ""])
def test_oci_artifact_conflicts_with_docker_types(v: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"oci-mediatypes": "false", "oci-artifact": v})
    assert str(ei.value) == (
        'exporter option "oci-artifact=true" conflicts with "oci-mediatypes=false"'
    )


@pytest.mark.parametrize(
    "key",
    [
        "annotation-index.a",
        "annotation-index-descriptor.a",
        "annotation-manifest-descriptor.a",
        "annotation-manifest-descriptor[linux/amd64].a",
    ],
)
def test_annotations_needing_oci_conflict_with_docker_types(key: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({"oci-mediatypes": "false", key: "v"})
    assert str(ei.value) == 'cannot export annotations with "oci-mediatypes=false"'


@pytest.mark.parametrize(
    "key", ["annotation.a", "annotation-manifest.a", "annotation[linux/arm64].a"]
)
def test_manifest_annotations_work_with_docker_types(key: str) -> None:
    o = resolve({"oci-mediatypes": "false", key: "v"})
    assert o.annotations and not o.annotations.needs_oci()


def test_rewrite_timestamp_and_unpack_resolve() -> None:
    # BuildKit refuses the pair only when an unpack actually happens; the text is exported
    o = resolve({"rewrite-timestamp": "true", "unpack": "true"})
    assert o.rewrite_timestamp and o.unpack
    assert REWRITE_TIMESTAMP_CONFLICTS_WITH_UNPACK == (
        'exporter option "rewrite-timestamp" conflicts with "unpack"'
    )
    assert REWRITE_TIMESTAMP_WITHOUT_EPOCH == (
        "rewrite-timestamp is specified, but no source-date-epoch was found"
    )


# -- annotations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "platform_key", "atype", "name"),
    [
        (
            "annotation.org.opencontainers.image.title",
            "",
            AnnotationType.MANIFEST,
            "org.opencontainers.image.title",
        ),
        ("annotation-manifest.k", "", AnnotationType.MANIFEST, "k"),
        ("annotation-manifest-descriptor.k", "", AnnotationType.MANIFEST_DESCRIPTOR, "k"),
        ("annotation-index.k", "", AnnotationType.INDEX, "k"),
        ("annotation-index-descriptor.k", "", AnnotationType.INDEX_DESCRIPTOR, "k"),
        ("annotation[linux/amd64].k", "linux/amd64", AnnotationType.MANIFEST, "k"),
        ("annotation-manifest[linux/arm/v7].k", "linux/arm/v7", AnnotationType.MANIFEST, "k"),
        ("annotation-manifest[linux/arm].k", "linux/arm/v7", AnnotationType.MANIFEST, "k"),
        ("annotation[linux/arm64/v8].k", "linux/arm64", AnnotationType.MANIFEST, "k"),
        ("annotation[linux/x86_64].k", "linux/amd64", AnnotationType.MANIFEST, "k"),
        ("annotation[arm64].k", "linux/arm64", AnnotationType.MANIFEST, "k"),
        (
            "annotation-manifest-descriptor[windows/amd64].k",
            "windows/amd64",
            AnnotationType.MANIFEST_DESCRIPTOR,
            "k",
        ),
        ("annotation.a.b[c].d", "", AnnotationType.MANIFEST, "a.b[c].d"),
    ],
)
def test_annotation_keys(key: str, platform_key: str, atype: AnnotationType, name: str) -> None:
    o = resolve({key: "value"})
    assert list(o.annotations.by_platform) == [platform_key]
    assert o.annotations.by_platform[platform_key].get(atype) == {name: "value"}
    assert key not in o.metadata


@pytest.mark.parametrize(
    "key",
    [
        "annotation",
        "annotations.k",
        "annotationk",
        "annotation.",
        "annotation. k",
        "annotation.k\n",
        "annotation-Index.k",
        "annotation-index",
        "annotation[linux/amd64]",
        "annotation[a b].k",
        "annotation[linux.amd64].k",
        "xannotation.k",
    ],
)
def test_not_annotation_keys_become_metadata(key: str) -> None:
    o = resolve({key: "v"})
    assert o.metadata == {key: b"v"}
    assert not o.annotations


@pytest.mark.parametrize(("typ"), ["indexes", "descriptor", "manifest-", "index-", "x"])
def test_unrecognized_annotation_type(typ: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({f"annotation-{typ}.k": "v"})
    assert str(ei.value) == f"unrecognized annotation type {typ}"


@pytest.mark.parametrize(
    ("plat", "text"),
    [
        (
            "linux//amd64",
            '"linux//amd64": "" is an invalid component of "linux//amd64": platform '
            'specifier component must match "^[A-Za-z0-9_.-]+$": invalid argument',
        ),
        ("a/b/c/d", '"a/b/c/d": cannot parse platform specifier: invalid argument'),
        ("nosuch", '"nosuch": unknown operating system or architecture: invalid argument'),
    ],
)
def test_annotation_platform_errors(plat: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({f"annotation[{plat}].k": "v"})
    assert str(ei.value) == text


def test_one_component_os_uses_the_default_platform() -> None:
    o = resolve({"annotation[linux].k": "v"}, default_platform=Platform.parse("linux/arm64"))
    assert list(o.annotations.by_platform) == ["linux/arm64"]


def test_annotation_scopes_merge_per_platform() -> None:
    o = resolve(
        {
            "annotation.a": "1",
            "annotation[linux/amd64].a": "2",
            "annotation[linux/amd64].b": "3",
            "annotation-index.i": "4",
        }
    )
    amd = o.annotations.for_platform(Platform.parse("linux/amd64"))
    arm = o.annotations.for_platform(Platform.parse("linux/arm64"))
    assert amd.manifest == {"a": "2", "b": "3"}
    assert arm.manifest == {"a": "1"}
    assert o.annotations.for_platform(None).index == {"i": "4"}


# -- metadata ------------------------------------------------------------------------------------


def test_unknown_keys_become_metadata() -> None:
    o = resolve(
        {
            "containerimage.config": '{"os":"linux"}',
            "image.name": "x",
            "buildinfo": "false",
            "dangling-name-empty-only": "true",  # only the misspelled key is an option
            "tar": "false",
            "type": "image",
            "é": "ü",
        }
    )
    assert o.metadata == {
        "containerimage.config": b'{"os":"linux"}',
        "image.name": b"x",
        "buildinfo": b"false",
        "dangling-name-empty-only": b"true",
        "tar": b"false",
        "type": b"image",
        "é": "ü".encode(),
    }
    assert o.dangling_name_empty_only is False


def test_option_metadata_overrides_frontend_metadata() -> None:
    o = resolve({"containerimage.config": "{}", "x": "1"})
    merged = o.merged_metadata({"containerimage.config": b"frontend", "y": b"2"})
    assert merged == {"containerimage.config": b"{}", "x": b"1", "y": b"2"}


# -- source-date-epoch ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "secs"), [("0", 0), ("1445412480", 1445412480), ("-5", -5)])
def test_source_date_epoch(value: str, secs: int) -> None:
    o = resolve({"source-date-epoch": value})
    assert (o.source_date_epoch, o.source_date_epoch_set) == (secs, True)
    assert o.epoch({}) == Timestamp.from_unix(secs)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("abc", 'parsing "abc": invalid syntax'),
        ("1.5", 'parsing "1.5": invalid syntax'),
        ("2015-10-21", 'parsing "2015-10-21": invalid syntax'),
        ("9223372036854775808", 'parsing "9223372036854775808": value out of range'),
    ],
)
def test_source_date_epoch_errors(value: str, why: str) -> None:
    # BuildKit's epoch.parseTime wraps the cause and appends it again
    with pytest.raises(InvalidArgument) as ei:
        resolve({"source-date-epoch": value})
    cause = f"strconv.ParseInt: {why}"
    assert str(ei.value) == f"invalid source-date-epoch: {cause}: {cause}"


def test_epoch_from_metadata() -> None:
    o = resolve({})
    assert o.epoch({}) is None
    assert o.epoch({"source.date.epoch": b"10"}) == Timestamp.from_unix(10)
    meta = {"source.date.epoch": b"10", "source.date.epoch/linux/arm64": b"20"}
    assert o.epoch(meta, "linux/arm64") == Timestamp.from_unix(20)
    assert o.epoch(meta, "linux/amd64") == Timestamp.from_unix(10)
    assert o.epoch({"source.date.epoch": b""}) is None


def test_epoch_attr_wins_and_empty_disables() -> None:
    meta = {"source.date.epoch": b"10"}
    assert resolve({"source-date-epoch": "30"}).epoch(meta) == Timestamp.from_unix(30)
    disabled = resolve({"source-date-epoch": ""})
    assert (disabled.source_date_epoch, disabled.source_date_epoch_set) == (None, True)
    assert disabled.epoch(meta) is None
    assert disabled.epoch({"source.date.epoch": b"garbage"}) is None


def test_epoch_from_metadata_error_text() -> None:
    with pytest.raises(InvalidArgument) as ei:
        resolve({}).epoch({"source.date.epoch": b"soon"})
    cause = 'strconv.ParseInt: parsing "soon": invalid syntax'
    assert str(ei.value) == (
        f'invalid SOURCE_DATE_EPOCH from frontend: "soon": invalid : {cause}: {cause}'
    )


# -- naming --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "meta", "full", "names"),
    [
        ({}, {}, "", ()),
        ({"name": "a"}, {}, "a", ("a",)),
        ({"name": "a,b"}, {}, "a,b", ("a", "b")),
        ({"name": "a,"}, {}, "a,", ("a", "")),
        ({"name": "*"}, {"image.name": b"x,y"}, "x,y", ("x", "y")),
        ({"name": "*"}, {}, "*", ("*",)),
        ({"name": "a"}, {"image.name": b"x"}, "a", ("a",)),
        ({"dangling-name-prefix": "dang"}, {}, f"dang@{ROOT}", (f"dang@{ROOT}",)),
        ({"name": "a", "dangling-name-prefix": "d"}, {}, f"a,d@{ROOT}", ("a", f"d@{ROOT}")),
        (
            {"name": "a", "dangling-name-prefix": "d", "danging-name-empty-only": "true"},
            {},
            "a",
            ("a",),
        ),
        (
            {"dangling-name-prefix": "d", "danging-name-empty-only": "true"},
            {},
            f"d@{ROOT}",
            (f"d@{ROOT}",),
        ),
    ],
)
def test_image_names(
    attrs: dict[str, str], meta: dict[str, bytes], full: str, names: tuple[str, ...]
) -> None:
    o = resolve(attrs)
    assert o.image_name(meta, ROOT) == full
    assert o.target_names(meta, ROOT) == names


def test_record_names() -> None:
    plain = resolve({"name": "a"})
    canon = resolve({"name": "a", "name-canonical": ""})
    assert plain.record_names("a", ROOT) == ("a",)
    assert canon.record_names("a", ROOT) == ("a", f"a@{ROOT}")
    assert canon.record_names(f"d@{ROOT}", ROOT) == (f"d@{ROOT}",)


# -- error order -----------------------------------------------------------------------------


def test_first_error_wins_in_documented_order() -> None:
    bad = {"push": "x", "compression": "lz4", "annotation-bogus.k": "v"}
    with pytest.raises(InvalidArgument, match="unrecognized annotation type bogus"):
        resolve(bad)
    del bad["annotation-bogus.k"]
    with pytest.raises(InvalidArgument, match="unsupported compression type lz4"):
        resolve(bad)
    del bad["compression"]
    with pytest.raises(InvalidArgument, match="non-bool value specified for push"):
        resolve(bad)


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=8), max_size=6))
def test_resolve_never_fails_other_than_invalid_argument(attrs: dict[str, str]) -> None:
    try:
        o = resolve(attrs)
    except InvalidArgument:
        return
    assert set(o.metadata) <= set(attrs)


# -- -o values: Go's encoding/csv, as buildx reads them ----------------------------------------

# Go's own reader tests (src/encoding/csv/reader_test.go) for the options buildx uses: § starts a
# field, ¶ starts a record, ∑ marks where Go reports the error; the markers are not input.
GO_CSV_CASES = [
    ("§a,§b,§c\n", [["a", "b", "c"]], None),
    ("§a,§b\r\n¶§c,§d\r\n", [["a", "b"], ["c", "d"]], None),
    ("§a,§b\rc,§d\r\n", [["a", "b\rc", "d"]], None),
    (
        '§"two\nline",§"one line",§"three\nline\nfield"',
        [["two\nline", "one line", "three\nline\nfield"]],
        None,
    ),
    ("§a,§b,§c\n\n¶§d,§e,§f\n\n", [["a", "b", "c"], ["d", "e", "f"]], None),
    ("§ a,§  b,§   c\n", [[" a", "  b", "   c"]], None),
    ('§a∑""b,c', [], "bare"),
    ('§a ∑"word","b"', [], "bare"),
    ('§"a word",b∑"', [], "bare"),
    ('§"a ∑"word","b"', [], "quote"),
    ("§a,§b,§c,§", [["a", "b", "c", ""]], None),
    ("§a,§b,§c,§ \n", [["a", "b", "c", " "]], None),
    ('§a,"b\nc∑"d,e', [], "quote"),
    ('§a,§b\n¶§"d\n\n,e∑', [["a", "b"]], "quote"),
    ('§A,§"Hello\r\nHi",§B\r\n', [["A", "Hello\nHi", "B"]], None),
    ("§field1,§field2\r", [["field1", "field2"]], None),
    ('§"field"\r', [["field"]], None),
    ('§"field∑"\r\r', [], "quote"),
    ("§field\r\rfield\r\r", [["field\r\rfield\r"]], None),
    ("§field\r\r\n¶§\r\rfield\r\r\n¶§\r\r", [["field\r"], ["\r\rfield\r"], ["\r"]], None),
    ('§"\n\n\n\n"', [["\n\n\n\n"]], None),
    ("\r\n\r\n\r\n\r\n", [], None),
    ('§"foo∑"bar"\r\n', [], "quote"),
    ('§"foo""bar"\r\n', [['foo"bar']], None),
    ('§""""""""', [['"""']], None),
    ('§"""""""∑', [], "quote"),
    ('§a,§"é∑"x', [], "quote"),  # columns count bytes, not characters
]
GO_ERRORS = {
    "bare": 'bare " in non-quoted-field',
    "quote": 'extraneous or missing " in quoted-field',
}


def _go_positions(marked: str) -> tuple[str, int, tuple[int, int] | None]:
    """(input, line where the failing record starts, (line, column) of ∑), as Go's makePositions."""
    text, line, col, start, err = [], 1, 1, 1, None
    for ch in marked:
        if ch == "¶":
            start = line
        elif ch == "∑":
            err = (line, col)
        elif ch != "§":
            text.append(ch)
            line, col = (line + 1, 1) if ch == "\n" else (line, col + len(ch.encode()))
    return "".join(text), start, err


@pytest.mark.parametrize(("marked", "records", "error"), GO_CSV_CASES)
def test_go_csv_reader_matches_go(marked: str, records: list[list[str]], error: str | None) -> None:
    text, start, where = _go_positions(marked)
    reader = _GoCSV(text.encode())
    got: list[list[str]] = []
    if error is None:
        while (rec := reader.read()) is not None:
            got.append([f.decode() for f in rec])
        assert got == records
        return
    assert where is not None
    line, col = where
    prefix = f"record on line {start}; " if start != line else ""
    with pytest.raises(InvalidArgument) as exc:
        while (rec := reader.read()) is not None:
            got.append([f.decode() for f in rec])
    assert str(exc.value) == f"{prefix}parse error on line {line}, column {col}: {GO_ERRORS[error]}"
    assert got == records


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (
            'type=image,"name=a',
            'parse error on line 1, column 19: extraneous or missing " in quoted-field',
        ),
        ('name="a"b', 'parse error on line 1, column 6: bare " in non-quoted-field'),
        ('type=image,name="a"b', 'parse error on line 1, column 17: bare " in non-quoted-field'),
        (
            'type=image,"name=a"b',
            'parse error on line 1, column 19: extraneous or missing " in quoted-field',
        ),
        ('type=image, "name=a,b"', 'parse error on line 1, column 13: bare " in non-quoted-field'),
        (
            'type=image,"name=a\nb',
            "record on line 1; parse error on line 2, column 2: "
            'extraneous or missing " in quoted-field',
        ),
        ("type=image\nname=a", "more than one line: give one output per -o"),
        ("", "no fields"),
        ("type=image,", "invalid value '': want key=value"),
        ("type=image,,name=a", "invalid value '': want key=value"),
        ("type=image,push", "invalid value 'push': want key=value"),
        ("type=image,push=true,push=false", "duplicate key 'push'"),
    ],
)
def test_parse_output_refuses_what_buildx_refuses(spec: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_output(spec)
    assert str(exc.value) == f"output {spec!r}: {why}"


def test_parse_output_reads_what_buildx_reads() -> None:
    assert parse_output('type=image,"name=a,b",push=true') == {
        "type": "image",
        "name": "a,b",
        "push": "true",
    }
    # keys are trimmed and lower-cased, values kept; "" in quotes is a quote
    assert parse_output(' TYPE =oci, dest= x ,"annotation.k=say ""hi"""') == {
        "type": "oci",
        "dest": " x ",
        "annotation.k": 'say "hi"',
    }
    assert parse_output("name=a,name=b") == {"name": "a,b", "type": "image"}
    assert parse_output("\r\ntype=docker,dest=-\r\n\r\n") == {"type": "docker", "dest": "-"}
