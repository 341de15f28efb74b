"""Image config and history rules (spec §2.4 with today's behaviour, §5.2)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pallet._gotime import Timestamp
from pallet.errors import InvalidArgument
from pallet.exporter.config import (
    DEFAULT_PATH,
    History,
    Layer,
    build_config,
    clamp_history,
    default_config,
    normalize_history,
    parse_history,
    parse_platforms,
    patch_config,
)
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, Platform
from pallet.oci.digest import canonical
from support.oci_schemas import validate

AMD64 = Platform.parse("linux/amd64")
T0 = 1_700_000_000
EPOCH = Timestamp.from_unix(1_445_412_480)  # 2015-10-21T07:28:00Z


def ts(secs: int) -> Timestamp:
    return Timestamp.from_unix(secs)


def layer(i: int, *, created: int | None = None, desc: str = "") -> Layer:
    blob = f"blob{i}".encode()
    return Layer(
        descriptor=Descriptor(media_type=mt.OCI_LAYER_GZIP, digest=canonical(blob), size=len(blob)),
        diff_id=canonical(f"tar{i}".encode()),
        created_at=None if created is None else ts(created),
        description=desc,
    )


def cfg(**fields: Any) -> bytes:
    base: dict[str, Any] = {"architecture": "amd64", "os": "linux"}
    base.update(fields)
    return json.dumps(base, ensure_ascii=False).encode()


def decoded(data: bytes) -> Any:
    return json.loads(data)


# -- Timestamp ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical_text"),
    [
        ("2015-10-21T07:28:00Z", "2015-10-21T07:28:00Z"),
        ("2015-10-21T07:28:00.000Z", "2015-10-21T07:28:00Z"),
        ("2015-10-21T07:28:00.120Z", "2015-10-21T07:28:00.12Z"),
        ("2015-10-21T07:28:00.123456789Z", "2015-10-21T07:28:00.123456789Z"),
        ("2015-10-21T07:28:00.1234567891Z", "2015-10-21T07:28:00.123456789Z"),
        ("2015-10-21T09:28:00+02:00", "2015-10-21T09:28:00+02:00"),
        ("2015-10-21T07:28:00+00:00", "2015-10-21T07:28:00Z"),
        ("2015-10-21T02:28:00-05:00", "2015-10-21T02:28:00-05:00"),
        ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
    ],
)
def test_timestamp_roundtrip(text: str, canonical_text: str) -> None:
    t = Timestamp.parse(text)
    assert t.rfc3339() == canonical_text
    assert Timestamp.parse(canonical_text) == t


def test_timestamp_instants() -> None:
    a = Timestamp.parse("2015-10-21T09:28:00+02:00")
    b = Timestamp.parse("2015-10-21T07:28:00Z")
    assert (a.seconds, a.nanos) == (b.seconds, b.nanos) == (1_445_412_480, 0)
    assert a != b  # the offset is part of the value, as in Go
    assert not a.after(b) and not b.after(a)
    assert Timestamp.parse("2015-10-21T07:28:00.000000001Z").after(b)


@pytest.mark.parametrize(
    "text",
    [
        "2015-10-21",
        "2015-10-21 07:28:00Z",
        "2015-10-21t07:28:00Z",
        "2015-10-21T07:28:00",
        "2015-13-01T00:00:00Z",
        "2015-02-29T00:00:00Z",
        "2015-10-21T24:00:00Z",
        "2015-10-21T07:60:00Z",
        "2015-10-21T07:28:60Z",
        "2015-10-21T07:28:00+24:00",
        "2015-10-21T07:28:00.Z",
        "15-10-21T07:28:00Z",
        "",
    ],
)
def test_timestamp_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        Timestamp.parse(text)


def test_timestamp_from_datetime() -> None:
    aware = datetime(2020, 1, 2, 3, 4, 5, 600000, tzinfo=timezone(timedelta(hours=-3)))
    t = Timestamp.from_datetime(aware)
    assert t.rfc3339() == "2020-01-02T03:04:05.6-03:00"
    assert t.to_datetime() == aware
    assert Timestamp.from_datetime(datetime(2020, 1, 2)).rfc3339() == "2020-01-02T00:00:00Z"
    assert Timestamp.from_unix(-1).rfc3339() == "1969-12-31T23:59:59Z"


@given(
    st.integers(min_value=-62_000_000_000, max_value=253_000_000_000),
    st.integers(min_value=0, max_value=999_999_999),
    st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: m * 60),
)
def test_timestamp_format_parse_roundtrip(secs: int, nanos: int, offset: int) -> None:
    t = Timestamp(seconds=secs, nanos=nanos, offset=offset)
    try:
        text = t.rfc3339()
    except InvalidArgument:
        return  # year outside 0-9999
    assert Timestamp.parse(text) == t


@given(st.datetimes(timezones=st.just(UTC)))
def test_timestamp_matches_datetime(dt: datetime) -> None:
    t = Timestamp.from_datetime(dt)
    assert t.to_datetime() == dt
    assert Timestamp.parse(t.rfc3339()) == t


# -- default config --------------------------------------------------------------------------


def test_default_config_with_no_layers_is_the_spec_example() -> None:
    out = build_config(b"", [], platform=AMD64)
    assert out.data == (
        b'{"architecture":"amd64","config":{"Env":["PATH=' + DEFAULT_PATH.encode() + b'"],'
        b'"WorkingDir":"/"},"created":null,"history":null,"os":"linux",'
        b'"rootfs":{"type":"layers","diff_ids":null}}'
    )
    assert out.history is None and out.diff_ids == ()


@pytest.mark.parametrize(
    ("platform", "expect"),
    [
        (AMD64, {"architecture": "amd64", "os": "linux"}),
        (Platform.parse("linux/arm64/v8"), {"architecture": "arm64", "os": "linux"}),
        (
            Platform(os="linux", architecture="arm"),
            {"architecture": "arm", "os": "linux", "variant": "v7"},
        ),
        (Platform(os="linux", architecture="aarch64"), {"architecture": "arm64", "os": "linux"}),
        (Platform(os="linux", architecture="x86_64"), {"architecture": "amd64", "os": "linux"}),
    ],
)
def test_default_config_platform(platform: Platform, expect: dict[str, str]) -> None:
    doc = decoded(default_config(platform))
    assert {k: doc[k] for k in ("architecture", "os", "variant") if k in doc} == expect
    assert doc["config"] == {"Env": ["PATH=" + DEFAULT_PATH], "WorkingDir": "/"}
    assert doc["rootfs"] == {"type": "layers", "diff_ids": None}
    assert "created" not in doc and "history" not in doc


def test_default_config_windows_has_no_path_and_keeps_os_version() -> None:
    p = Platform(
        os="windows", architecture="amd64", os_version="10.0.20348.1", os_features=("win32k",)
    )
    doc = decoded(default_config(p))
    assert doc["config"] == {"WorkingDir": "/"}
    assert doc["os.version"] == "10.0.20348.1" and doc["os.features"] == ["win32k"]


def test_default_config_with_layers() -> None:
    layers = [layer(0, created=T0, desc="mount / from exec sh -c make"), layer(1, created=T0 + 60)]
    out = build_config(b"", layers, platform=AMD64)
    doc = decoded(out.data)
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [str(x.diff_id) for x in layers]}
    assert doc["history"] == [
        {
            "created": "2023-11-14T22:13:20Z",
            "created_by": "mount / from exec sh -c make",
            "comment": "buildkit.exporter.image.v0",
        },
        {
            "created": "2023-11-14T22:14:20Z",
            "created_by": "created by buildkit",
            "comment": "buildkit.exporter.image.v0",
        },
    ]
    assert doc["created"] == "2023-11-14T22:14:20Z"
    validate("oci-config", doc)


# -- unknown fields and encoding -----------------------------------------------------------


def test_unknown_fields_are_kept_verbatim_and_compacted() -> None:
    raw = (
        b'{ "os" : "linux", "architecture":"amd64",\n'
        b'  "zeta": { "b" : 1.0, "a" : [1e5, -0, 12345678901234567890] },\n'
        b'  "config": {"Env": ["A=\\u0041"], "Cmd": null, "Custom": {"y":1,"x":2}},\n'
        b'  "Alpha": "\\/esc\\u00e9", "moby.buildkit.buildinfo.v1": "eyJ9"\n}'
    )
    data = build_config(raw, [], platform=AMD64).data
    assert data == (
        b'{"Alpha":"\\/esc\\u00e9","architecture":"amd64",'
        b'"config":{"Env":["A=\\u0041"],"Cmd":null,"Custom":{"y":1,"x":2}},'
        b'"created":null,"history":null,"moby.buildkit.buildinfo.v1":"eyJ9","os":"linux",'
        b'"rootfs":{"type":"layers","diff_ids":null},'
        b'"zeta":{"b":1.0,"a":[1e5,-0,12345678901234567890]}}'
    )


def test_html_and_line_separators_are_escaped_like_go() -> None:
    raw = cfg(config={"Labels": {"a<b": "x>y&z\u2028\u2029é\t"}}, history=[{"created_by": "a > b"}])
    data = build_config(raw, [layer(0, created=T0)], platform=AMD64).data
    assert b'"a\\u003cb":"x\\u003ey\\u0026z\\u2028\\u2029\xc3\xa9\\t"' in data
    assert b'"created_by":"a \\u003e b"' in data
    assert b"<" not in data and b">" not in data and b"&" not in data


def test_undecodable_bytes_in_unknown_fields_are_copied() -> None:
    raw = b'{"os":"linux","architecture":"amd64","blob":"\xff\xfe"}'
    assert b'"blob":"\xff\xfe"' in build_config(raw, [], platform=AMD64).data


def test_duplicate_keys_last_wins() -> None:
    raw = b'{"os":"windows","architecture":"amd64","os":"linux"}'
    assert decoded(build_config(raw, [], platform=AMD64).data)["os"] == "linux"


def test_same_inputs_same_bytes() -> None:
    raw = cfg(config={"Env": ["A=1"]}, history=[{"created_by": "base"}])
    layers = [layer(0, created=T0), layer(1, created=T0 + 1)]
    outs = {build_config(raw, layers, platform=AMD64, epoch=EPOCH).data for _ in range(5)}
    assert len(outs) == 1


def test_inline_cache_is_base64() -> None:
    data = build_config(cfg(), [], platform=AMD64, inline_cache=b"\x00cache\xff").data
    assert decoded(data)["moby.buildkit.cache.v0"] == base64.b64encode(b"\x00cache\xff").decode()
    assert "moby.buildkit.cache.v0" not in decoded(build_config(cfg(), [], platform=AMD64).data)


def test_rootfs_is_replaced() -> None:
    raw = cfg(rootfs={"type": "something", "diff_ids": ["sha256:" + "0" * 64], "extra": 1})
    out = build_config(raw, [layer(0, created=T0)], platform=AMD64)
    assert decoded(out.data)["rootfs"] == {"type": "layers", "diff_ids": [str(layer(0).diff_id)]}


# -- created ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "epoch", "expect"),
    [
        ("absent", None, "2023-11-14T22:13:21Z"),
        ("2020-01-01T00:00:00Z", None, "2020-01-01T00:00:00Z"),
        ("2030-01-01T00:00:00.5+01:00", None, "2030-01-01T00:00:00.5+01:00"),
        (None, None, None),
        ("absent", EPOCH, "2015-10-21T07:28:00Z"),
        ("2030-01-01T00:00:00Z", EPOCH, "2015-10-21T07:28:00Z"),
        ("2010-01-01T00:00:00Z", EPOCH, "2010-01-01T00:00:00Z"),
        ("2015-10-21T09:28:00+02:00", EPOCH, "2015-10-21T09:28:00+02:00"),
        (None, EPOCH, None),
    ],
)
def test_created(created: str | None, epoch: Timestamp | None, expect: str | None) -> None:
    raw = cfg() if created == "absent" else cfg(created=created)
    layers = [layer(0, created=T0), layer(1, created=T0 + 1)]
    doc = decoded(build_config(raw, layers, platform=AMD64, epoch=epoch).data)
    assert doc["created"] == expect


def test_created_absent_without_history_is_null() -> None:
    assert decoded(build_config(cfg(), [], platform=AMD64).data)["created"] is None


# -- history normalisation ---------------------------------------------------------------


def test_history_is_parsed_like_go() -> None:
    raw = cfg(
        History=[
            {"CREATED": "2020-01-01T00:00:00Z", "Created_By": "x", "extra": 1},
            None,
            {"comment": "c", "empty_layer": True, "author": "me", "created_by": None},
        ]
    )
    assert parse_history(raw) == [
        History(created=Timestamp.parse("2020-01-01T00:00:00Z"), created_by="x"),
        History(),
        History(comment="c", empty_layer=True, author="me"),
    ]
    assert parse_history(cfg()) is None
    assert parse_history(cfg(history=None)) is None
    assert parse_history(cfg(history=[])) == []
    assert parse_history(b"null") is None


def test_unknown_history_fields_are_dropped_and_key_order_is_go() -> None:
    raw = cfg(
        history=[
            {
                "empty_layer": False,
                "comment": "c",
                "author": "a",
                "created_by": "b",
                "created": "2020-01-01T00:00:00Z",
                "x": 1,
            }
        ]
    )
    data = build_config(raw, [layer(0)], platform=AMD64).data
    assert (
        b'"history":[{"created":"2020-01-01T00:00:00Z","created_by":"b","author":"a","comment":"c"}]'
        in data
    )


def test_empty_history_array_stays_an_array() -> None:
    assert decoded(build_config(cfg(history=[]), [], platform=AMD64).data)["history"] == []


def test_missing_history_entries_come_from_layers() -> None:
    hist, warnings = normalize_history(
        [History(created=ts(1), created_by="FROM base")],
        [layer(0, created=T0), layer(1, created=T0 + 1, desc="COPY x"), layer(2)],
    )
    assert warnings == ()
    assert hist == [
        History(created=ts(1), created_by="FROM base"),
        History(created=ts(T0 + 1), created_by="COPY x", comment="buildkit.exporter.image.v0"),
        # no layer time: filled from the previous time
        History(
            created=ts(T0 + 1),
            created_by="created by buildkit",
            comment="buildkit.exporter.image.v0",
        ),
    ]


def test_history_without_created_takes_its_layers_time() -> None:
    hist, _ = normalize_history(
        [
            History(created_by="a"),
            History(created_by="meta", empty_layer=True),
            History(created_by="b"),
        ],
        [layer(0, created=10), layer(1, created=20)],
    )
    assert [h.created for h in hist or ()] == [ts(10), ts(20), ts(20)]
    # the empty entry had no time: it got the first time after the first gap (20)


@pytest.mark.parametrize(
    ("times", "expect"),
    [
        ([None, None], [None, None]),
        ([5, None], [5, 5]),
        ([None, 5], [5, 5]),
        ([1, None, 3, None, 4], [1, 3, 3, 3, 4]),
        ([None, 2, None, 7, None], [2, 2, 2, 7, 7]),
        ([1, 2, None], [1, 2, 2]),
        ([3, 1, None, None], [3, 1, 1, 1]),
    ],
)
def test_created_gaps_are_filled_like_buildkit(
    times: list[int | None], expect: list[int | None]
) -> None:
    history = [History(created=None if t is None else ts(t), empty_layer=True) for t in times]
    hist, _ = normalize_history(history, [])
    assert [None if h.created is None else h.created.seconds for h in hist or ()] == expect


def test_more_history_than_layers() -> None:
    history = [
        History(created=ts(1), created_by="a"),
        History(created=ts(2), created_by="meta", empty_layer=True),
        History(created=ts(3), created_by="b"),
        History(created=ts(4), created_by="c"),
    ]
    hist, warnings = normalize_history(history, [layer(0)])
    assert warnings == ("invalid image config with unaccounted layers",)
    assert [h.empty_layer for h in hist or ()] == [False, True, True, True]
    assert [h.created_by for h in hist or ()] == ["a", "meta", "b", "c"]


def test_more_history_than_layers_in_build_config() -> None:
    raw = cfg(history=[{"created_by": "a"}, {"created_by": "b"}])
    out = build_config(raw, [], platform=AMD64)
    assert out.warnings == ("invalid image config with unaccounted layers",)
    assert [h["empty_layer"] for h in decoded(out.data)["history"]] == [True, True]


def test_empty_layers_are_kept() -> None:
    # the seed's worked example with today's rule: 3 layers, the middle one an empty diff
    empty = Layer(
        descriptor=Descriptor(
            media_type=mt.OCI_LAYER_GZIP,
            digest=canonical(
                bytes.fromhex("1f8b08000000000000ff621805a360148c5800080000ffff2eafb5ef00040000")
            ),
            size=32,
        ),
        diff_id=canonical(b"\0" * 1024),
        created_at=ts(T0 + 1),
        description="mount /wd from exec true",
    )
    layers = [
        layer(0, created=T0, desc="mkdir foo/sub/bar"),
        empty,
        layer(2, created=T0 + 2, desc="foo/sub/baz"),
    ]
    doc = decoded(build_config(b"", layers, platform=AMD64).data)
    assert len(doc["rootfs"]["diff_ids"]) == 3
    assert [h.get("empty_layer", False) for h in doc["history"]] == [False, False, False]
    assert [h["comment"] for h in doc["history"]] == ["buildkit.exporter.image.v0"] * 3


# -- SOURCE_DATE_EPOCH -----------------------------------------------------------------------


def test_epoch_clamps_later_history_only() -> None:
    raw = cfg(
        history=[
            {"created": "2010-01-01T00:00:00Z", "created_by": "old"},
            {"created": "2020-01-01T00:00:00Z", "created_by": "new"},
        ]
    )
    doc = decoded(
        build_config(
            raw, [layer(0), layer(1), layer(2, created=T0)], platform=AMD64, epoch=EPOCH
        ).data
    )
    assert [h["created"] for h in doc["history"]] == [
        "2010-01-01T00:00:00Z",
        "2015-10-21T07:28:00Z",
        "2015-10-21T07:28:00Z",
    ]
    assert doc["created"] == "2015-10-21T07:28:00Z"
    validate("oci-config", doc)


def test_epoch_sets_missing_history_times() -> None:
    assert clamp_history([History(created_by="x")], EPOCH) == [
        History(created=EPOCH, created_by="x")
    ]
    assert clamp_history(None, EPOCH) is None
    hist = [History(created=ts(T0))]
    assert clamp_history(hist, None) == hist


def test_epoch_keeps_the_base_image_history_prefix() -> None:
    base = [
        History(created=ts(T0), created_by="ADD rootfs"),
        History(created=ts(T0), created_by="CMD", empty_layer=True),
    ]
    mine = [*base, History(created=ts(T0 + 5), created_by="RUN x")]
    assert clamp_history(mine, EPOCH, base) == [*base, History(created=EPOCH, created_by="RUN x")]
    # a difference ends the prefix: everything after it is clamped
    changed = [base[0], History(created=ts(T0), created_by="CMD other", empty_layer=True), base[1]]
    assert clamp_history(changed, EPOCH, base) == [
        base[0],
        History(created=EPOCH, created_by="CMD other", empty_layer=True),
        History(created=EPOCH, created_by="CMD", empty_layer=True),
    ]


def test_epoch_base_config_in_build_config() -> None:
    base_hist = [{"created": "2023-01-01T00:00:00Z", "created_by": "ADD rootfs"}]
    base = cfg(history=base_hist)
    raw = cfg(history=base_hist)
    layers = [layer(0), layer(1, created=T0)]
    kept = decoded(build_config(raw, layers, platform=AMD64, epoch=EPOCH, base_config=base).data)
    clamped = decoded(build_config(raw, layers, platform=AMD64, epoch=EPOCH).data)
    assert [h["created"] for h in kept["history"]] == [
        "2023-01-01T00:00:00Z",
        "2015-10-21T07:28:00Z",
    ]
    assert [h["created"] for h in clamped["history"]] == ["2015-10-21T07:28:00Z"] * 2


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"{", "failed to unmarshal history from config: "),
        (
            b"[]",
            "failed to unmarshal history from config: json: cannot unmarshal array into Go value"
            " of type struct { History []v1.History }",
        ),
        (
            b'"x"',
            "failed to unmarshal history from config: json: cannot unmarshal string into Go value"
            " of type struct { History []v1.History }",
        ),
        (
            b'{"history":{}}',
            "failed to unmarshal history from config: json: cannot unmarshal object into Go"
            " struct field .History of type []v1.History",
        ),
        (
            b'{"history":[{"created_by":1}]}',
            "failed to unmarshal history from config: json: cannot unmarshal number into Go"
            " struct field History.History.created_by of type string",
        ),
        (
            b'{"history":[{"empty_layer":"yes"}]}',
            "failed to unmarshal history from config: json: cannot unmarshal string into Go"
            " struct field History.History.empty_layer of type bool",
        ),
        (
            b'{"history":[{"created":"yesterday"}]}',
            'failed to unmarshal history from config: parsing time "yesterday": not an RFC 3339'
            " time",
        ),
        (
            b'{"history":[{"created":5}]}',
            "failed to unmarshal history from config: Time.UnmarshalJSON: input is not a JSON"
            " string",
        ),
        (
            b'{"os":"linux","architecture":"amd64","x":NaN}',
            "failed to unmarshal history from config: ",
        ),
        (b"null", "invalid null image config for export"),
        (b"{}", "invalid image config for export: missing os"),
        (b'{"os":""}', "invalid image config for export: missing os"),
        (b'{"os":"linux"}', "invalid image config for export: missing architecture"),
        (
            b'{"os":"linux","architecture":null}',
            "invalid image config for export: missing architecture",
        ),
        (
            b'{"os":5,"architecture":"amd64"}',
            "invalid image config for export: json: cannot unmarshal number into Go struct field"
            " Image.os of type string",
        ),
        (
            b'{"os":"linux","architecture":"amd64","config":[]}',
            "invalid image config for export: json: cannot unmarshal array into Go struct field"
            " Image.config of type v1.ImageConfig",
        ),
        (
            b'{"os":"linux","architecture":"amd64","config":{"Env":"A=1"}}',
            "invalid image config for export: json: cannot unmarshal string into Go struct field"
            " ImageConfig.config.Env of type []string",
        ),
        (
            b'{"os":"linux","architecture":"amd64","config":{"Labels":{"a":1}}}',
            "invalid image config for export: json: cannot unmarshal number into Go struct field"
            " ImageConfig.config.Labels of type string",
        ),
        (
            b'{"os":"linux","architecture":"amd64","created":"now"}',
            'invalid image config for export: parsing time "now": not an RFC 3339 time',
        ),
        (
            b'{"os":"linux","architecture":"amd64","rootfs":{"diff_ids":[1]}}',
            "invalid image config for export: json: cannot unmarshal number into Go struct field"
            " RootFS.rootfs.diff_ids of type digest.Digest",
        ),
    ],
)
def test_config_errors(raw: bytes, text: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        build_config(raw, [], platform=AMD64)
    assert str(ei.value).startswith(text)
    if not text.endswith(": "):
        assert str(ei.value) == text


def test_case_insensitive_os_field_satisfies_go() -> None:
    data = build_config(b'{"OS":"linux","Architecture":"amd64"}', [], platform=AMD64).data
    doc = decoded(data)
    assert doc["OS"] == "linux" and "os" not in doc  # Go keeps the map key as written


def test_patch_config_directly() -> None:
    d = canonical(b"t")
    data = patch_config(cfg(), diff_ids=[d], history=[History(created=ts(5), created_by="x")])
    assert data == (
        b'{"architecture":"amd64","created":"1970-01-01T00:00:05Z",'
        b'"history":[{"created":"1970-01-01T00:00:05Z","created_by":"x"}],"os":"linux",'
        b'"rootfs":{"type":"layers","diff_ids":["' + d.encode() + b'"]}}'
    )


# -- refs.platforms ----------------------------------------------------------------------------


def platforms_meta(items: Any) -> dict[str, bytes]:
    return {"refs.platforms": json.dumps(items).encode()}


def test_platforms_from_metadata_are_normalised() -> None:
    meta = platforms_meta(
        {
            "Platforms": [
                {"ID": "linux/amd64", "Platform": {"architecture": "x86_64", "os": "Linux"}},
                {"ID": "arm", "Platform": {"architecture": "arm", "os": "linux"}},
                {
                    "ID": "win",
                    "Platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0"},
                },
            ]
        }
    )
    entries = parse_platforms(meta, default_platform=AMD64)
    assert [(e.id, str(e.platform)) for e in entries] == [
        ("linux/amd64", "linux/amd64"),
        ("arm", "linux/arm/v7"),
        ("win", "windows/amd64"),
    ]
    assert entries[2].platform.os_version == "10.0"


@pytest.mark.parametrize(
    ("meta", "text"),
    [
        (b"{", "failed to parse platforms passed to exporter: "),
        (
            b'{"Platforms":{}}',
            "failed to parse platforms passed to exporter: json: cannot unmarshal object into Go"
            " struct field Platforms.Platforms of type []exptypes.Platform",
        ),
        (
            b'{"Platforms":[{"ID":1}]}',
            "failed to parse platforms passed to exporter: json: cannot unmarshal number into Go"
            " struct field Platform.Platforms.ID of type string",
        ),
        (b"", "invalid empty platforms index for exporter"),
        (b"null", "invalid empty platforms index for exporter"),
        (b"{}", "invalid empty platforms index for exporter"),
        (b'{"Platforms":[]}', "invalid empty platforms index for exporter"),
        (
            b'{"Platforms":[{"Platform":{"os":"linux","architecture":"amd64"}}]}',
            "invalid empty platform key for exporter",
        ),
        (
            b'{"Platforms":[{"ID":"x","Platform":{"architecture":"amd64"}}]}',
            "invalid platform value {amd64   [] } for exporter",
        ),
        (
            b'{"Platforms":[{"ID":"x","Platform":{"os":"linux","os.features":["a","b"],"variant":"v2"}}]}',
            "invalid platform value { linux  [a b] v2} for exporter",
        ),
        (b'{"Platforms":[{"ID":"x"}]}', "invalid platform value {   [] } for exporter"),
    ],
)
def test_platforms_errors(meta: bytes, text: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        parse_platforms({"refs.platforms": meta}, default_platform=AMD64)
    assert str(ei.value).startswith(text)
    if not text.endswith(": "):
        assert str(ei.value) == text


@pytest.mark.parametrize(
    ("config", "expect"),
    [
        (None, "linux/amd64"),
        (b"", "linux/amd64"),
        (b"null", "linux/amd64"),
        (b"{}", "linux/amd64"),
        (cfg(architecture="arm64", variant="v8"), "linux/arm64"),
        (cfg(architecture="arm"), "linux/arm/v7"),
        (
            json.dumps({"os": "windows", "architecture": "amd64", "os.version": "10.0.1"}).encode(),
            "windows(10.0.1)/amd64",
        ),
    ],
)
def test_single_platform_from_config_or_default(config: bytes | None, expect: str) -> None:
    meta = {} if config is None else {"containerimage.config": config}
    (entry,) = parse_platforms(meta, default_platform=AMD64)
    assert entry.id == expect


@pytest.mark.parametrize("config", [{"os": "linux"}, {"architecture": "amd64"}])
def test_single_platform_needs_os_and_arch_together(config: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as ei:
        parse_platforms(
            {"containerimage.config": json.dumps(config).encode()}, default_platform=AMD64
        )
    assert str(ei.value) == "invalid image config: os and architecture must be specified together"


def test_single_platform_bad_config_json() -> None:
    with pytest.raises(
        InvalidArgument, match="cannot unmarshal array into Go value of type v1.Image"
    ):
        parse_platforms({"containerimage.config": b"[]"}, default_platform=AMD64)
