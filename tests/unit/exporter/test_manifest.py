"""Manifests, indexes, GC labels, the pure Commit plan and the response (spec §2.2, §2.5, §5.2)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from pallet._gotime import Timestamp
from pallet.errors import InvalidArgument
from pallet.exporter import Source, export_response
from pallet.exporter.config import Layer
from pallet.exporter.manifest import (
    DOCKER_FOREIGN_LAYER_TAR,
    config_blob,
    convert_layer_media_type,
    encode_index,
    encode_manifest,
    index_blob,
    index_gc_labels,
    layer_descriptor,
    manifest_blob,
    manifest_gc_labels,
    to_distributable,
)
from pallet.exporter.options import resolve
from pallet.exporter.plan import ExportPlan, ImageGraph, assemble, parse_key, plan_export
from pallet.images import Image, walk
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, Platform
from pallet.oci.digest import canonical
from support.images import put
from support.oci_schemas import validate

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")
T0 = 1_700_000_000


def layer(i: int, media_type: str = mt.OCI_LAYER_GZIP, **ann: str) -> Layer:
    blob = f"layer-{i}".encode()
    diff = canonical(f"tar-{i}".encode())
    annotations = {"containerd.io/uncompressed": str(diff), **ann}
    return Layer(
        descriptor=Descriptor(
            media_type=media_type, digest=canonical(blob), size=len(blob), annotations=annotations
        ),
        diff_id=diff,
        created_at=Timestamp.from_unix(T0 + i),
        description=f"step {i}",
    )


def platforms(*ids: str) -> bytes:
    return json.dumps(
        {
            "Platforms": [
                {"ID": i, "Platform": {"os": i.split("/")[0], "architecture": i.split("/")[1]}}
                for i in ids
            ]
        }
    ).encode()


def multi_source(**meta: bytes) -> Source:
    return Source(
        refs={"linux/amd64": "snap-amd64", "linux/arm64": "snap-arm64"},
        metadata={"refs.platforms": platforms("linux/amd64", "linux/arm64"), **meta},
    )


def build(source: Source, attrs: dict[str, str] | None = None, nlayers: int = 2) -> ImageGraph:
    plan = plan_export(source, resolve(attrs or {}), default_platform=AMD64)
    return assemble(plan, {t.id: [layer(i) for i in range(nlayers)] for t in plan.targets})


def doc(data: bytes) -> Any:
    return json.loads(data)


# -- layer media types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "oci", "docker"),
    [
        (mt.OCI_LAYER, mt.OCI_LAYER, mt.DOCKER_LAYER),
        (mt.OCI_LAYER_GZIP, mt.OCI_LAYER_GZIP, mt.DOCKER_LAYER_GZIP),
        (mt.OCI_LAYER_ZSTD, mt.OCI_LAYER_ZSTD, mt.DOCKER_LAYER_ZSTD),
        (mt.DOCKER_LAYER, mt.OCI_LAYER, mt.DOCKER_LAYER),
        (mt.DOCKER_LAYER_GZIP, mt.OCI_LAYER_GZIP, mt.DOCKER_LAYER_GZIP),
        (mt.DOCKER_LAYER_ZSTD, mt.OCI_LAYER_ZSTD, mt.DOCKER_LAYER_ZSTD),
        (mt.OCI_ND_LAYER, mt.OCI_ND_LAYER, DOCKER_FOREIGN_LAYER_TAR),
        (mt.OCI_ND_LAYER_GZIP, mt.OCI_ND_LAYER_GZIP, mt.DOCKER_FOREIGN_LAYER),
        (DOCKER_FOREIGN_LAYER_TAR, mt.OCI_ND_LAYER, DOCKER_FOREIGN_LAYER_TAR),
        (mt.DOCKER_FOREIGN_LAYER, mt.OCI_ND_LAYER_GZIP, mt.DOCKER_FOREIGN_LAYER),
    ],
)
def test_convert_layer_media_type(src: str, oci: str, docker: str) -> None:
    assert convert_layer_media_type(src, oci=True) == (oci, None)
    assert convert_layer_media_type(src, oci=False) == (docker, None)


@pytest.mark.parametrize(
    "src", ["application/x-custom", mt.OCI_ND_LAYER_ZSTD, "application/vnd.in-toto+json"]
)
def test_unknown_layer_media_types_pass_through(src: str) -> None:
    assert convert_layer_media_type(src, oci=True) == (src, None)
    assert convert_layer_media_type(src, oci=False) == (
        src,
        f'unhandled conversion for mediatype "{src}"',
    )


@pytest.mark.parametrize(
    ("src", "dist"),
    [
        (mt.OCI_ND_LAYER, mt.OCI_LAYER),
        (mt.OCI_ND_LAYER_GZIP, mt.OCI_LAYER_GZIP),
        (mt.OCI_ND_LAYER_ZSTD, mt.OCI_LAYER_ZSTD),
        (DOCKER_FOREIGN_LAYER_TAR, mt.DOCKER_LAYER),
        (mt.DOCKER_FOREIGN_LAYER, mt.DOCKER_LAYER_GZIP),
        (mt.OCI_LAYER_GZIP, mt.OCI_LAYER_GZIP),
    ],
)
def test_non_distributable_layers(src: str, dist: str) -> None:
    assert to_distributable(src) == dist
    d = Descriptor(media_type=src, digest=canonical(b"x"), size=1, urls=("https://x/y",))
    assert (
        layer_descriptor(d, oci=True)[0].media_type == convert_layer_media_type(dist, oci=True)[0]
    )
    kept = layer_descriptor(d, oci=True, prefer_nondist=True)[0]
    assert kept.media_type == convert_layer_media_type(src, oci=True)[0]
    assert kept.urls == ("https://x/y",)


def test_layer_annotations_oci_filtered_docker_dropped() -> None:
    d = layer(
        0,
        **{
            "buildkit/createdat": "x",
            "containerd.io/distribution.source.docker.io": "library/alpine",
            "buildkit/rewritten-timestamp": "1445412480",
            "org.example": "kept",
        },
    ).descriptor
    oci, _ = layer_descriptor(d, oci=True)
    docker, _ = layer_descriptor(d, oci=False)
    assert oci.annotations == {"buildkit/rewritten-timestamp": "1445412480", "org.example": "kept"}
    assert docker.annotations == {}
    assert docker.media_type == mt.DOCKER_LAYER_GZIP


# -- manifest ------------------------------------------------------------------------------------


def manifest_inputs(oci: bool, n: int = 2) -> tuple[Descriptor, list[Descriptor]]:
    cfg = config_blob(b'{"architecture":"amd64","os":"linux"}', oci=oci).descriptor
    layers = [layer_descriptor(layer(i).descriptor, oci=oci)[0] for i in range(n)]
    return cfg, layers


@pytest.mark.parametrize("oci", [True, False])
def test_manifest_validates_and_is_deterministic(oci: bool) -> None:
    cfg, layers = manifest_inputs(oci)
    ann = {"org.opencontainers.image.title": "t"}
    data = encode_manifest(config=cfg, layers=layers, oci=oci, annotations=ann if oci else None)
    assert data == encode_manifest(
        config=cfg, layers=layers, oci=oci, annotations=ann if oci else None
    )
    m = doc(data)
    validate("oci-manifest" if oci else "docker-manifest", m)
    assert list(m)[:4] == ["schemaVersion", "mediaType", "config", "layers"]
    assert m["mediaType"] == (mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST)
    assert m["config"]["mediaType"] == (mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG)
    assert [x["mediaType"] for x in m["layers"]] == [
        mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP
    ] * 2
    assert data.startswith(b'{\n  "schemaVersion": 2,\n  "mediaType": "')
    assert not data.endswith(b"\n")


def test_manifest_exact_bytes() -> None:
    cfg = Descriptor(media_type=mt.OCI_CONFIG, digest=canonical(b"c"), size=1)
    lay = Descriptor(
        media_type=mt.OCI_LAYER, digest=canonical(b"l"), size=2, annotations={"b": "<", "a": "1"}
    )
    data = encode_manifest(config=cfg, layers=[lay], oci=True, annotations={"z": "1", "k": "&"})
    assert data.decode() == (
        "{\n"
        '  "schemaVersion": 2,\n'
        f'  "mediaType": "{mt.OCI_MANIFEST}",\n'
        '  "config": {\n'
        f'    "mediaType": "{mt.OCI_CONFIG}",\n'
        f'    "digest": "{canonical(b"c")}",\n'
        '    "size": 1\n'
        "  },\n"
        '  "layers": [\n'
        "    {\n"
        f'      "mediaType": "{mt.OCI_LAYER}",\n'
        f'      "digest": "{canonical(b"l")}",\n'
        '      "size": 2,\n'
        '      "annotations": {\n'
        '        "a": "1",\n'
        '        "b": "\\u003c"\n'
        "      }\n"
        "    }\n"
        "  ],\n"
        '  "annotations": {\n'
        '    "k": "\\u0026",\n'
        '    "z": "1"\n'
        "  }\n"
        "}"
    )


def test_manifest_without_layers_writes_null_like_go() -> None:
    cfg, _ = manifest_inputs(True)
    m = doc(encode_manifest(config=cfg, layers=[], oci=True))
    assert m["layers"] is None and "annotations" not in m


def test_manifest_gc_labels() -> None:
    cfg, layers = manifest_inputs(True, 3)
    blob = manifest_blob(config=cfg, layers=layers, oci=True)
    assert blob.labels == {
        "containerd.io/gc.ref.content.config": str(cfg.digest),
        "containerd.io/gc.ref.content.l.0": str(layers[0].digest),
        "containerd.io/gc.ref.content.l.1": str(layers[1].digest),
        "containerd.io/gc.ref.content.l.2": str(layers[2].digest),
    }
    assert blob.labels == manifest_gc_labels(cfg.digest, [x.digest for x in layers])
    assert blob.descriptor.digest == canonical(blob.data)
    assert blob.descriptor.size == len(blob.data)
    assert blob.progress == f"exporting manifest {blob.digest}"
    assert config_blob(b"{}", oci=True).labels == {}
    assert config_blob(b"{}", oci=True).progress == f"exporting config {canonical(b'{}')}"


# -- index -----------------------------------------------------------------------------------


@pytest.mark.parametrize("oci", [True, False])
def test_index_validates(oci: bool) -> None:
    cfg, layers = manifest_inputs(oci)
    mans = [
        manifest_blob(config=cfg, layers=layers[:n], oci=oci, platform=p).descriptor
        for n, p in [(1, AMD64), (2, Platform.parse("linux/arm/v7"))]
    ]
    blob = index_blob(mans, oci=oci)
    idx = doc(blob.data)
    validate("oci-index" if oci else "docker-manifest-list", idx)
    assert list(idx) == ["schemaVersion", "mediaType", "manifests"]
    assert [m["platform"] for m in idx["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm", "os": "linux", "variant": "v7"},
    ]
    assert blob.labels == {
        "containerd.io/gc.ref.content.m.0": str(mans[0].digest),
        "containerd.io/gc.ref.content.m.1": str(mans[1].digest),
    }
    assert blob.labels == index_gc_labels([m.digest for m in mans])
    assert blob.progress == f"exporting manifest list {blob.digest}"
    assert blob.descriptor.media_type == (mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST)
    assert encode_index(mans, oci=oci) == blob.data


def test_index_annotations_and_platform_fields() -> None:
    p = Platform(os="windows", architecture="amd64", os_version="10.0.1", os_features=("win32k",))
    m = Descriptor(
        media_type=mt.OCI_MANIFEST,
        digest=canonical(b"m"),
        size=3,
        platform=p,
        annotations={"d": "1"},
    )
    data = encode_index([m], oci=True, annotations={"i": "2"})
    idx = doc(data)
    validate("oci-index", idx)
    assert list(idx) == ["schemaVersion", "mediaType", "manifests", "annotations"]
    entry = idx["manifests"][0]
    assert list(entry) == ["mediaType", "digest", "size", "annotations", "platform"]
    assert list(entry["platform"]) == ["architecture", "os", "os.version", "os.features"]


# -- plan: checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "attrs", "text"),
    [
        (
            Source(refs={"linux/amd64": "a"}),
            {},
            "unable to export multiple refs, missing platforms mapping",
        ),
        (
            Source(
                refs={"linux/amd64": "a", "linux/arm64": "b"},
                metadata={"refs.platforms": platforms("linux/amd64", "linux/s390x")},
            ),
            {},
            "failed to find ref for ID linux/s390x",
        ),
        (
            Source(ref="a", metadata={"refs.platforms": platforms("linux/amd64", "linux/arm64")}),
            {},
            "cannot export multiple platforms without multi-platform enabled",
        ),
        (
            Source(ref="a"),
            {"annotation-index.k": "v"},
            "index annotations not supported for single platform export",
        ),
        (
            Source(ref="a"),
            {"annotation-index-descriptor.k": "v"},
            "index annotations not supported for single platform export",
        ),
        (
            Source(ref="a"),
            {"annotation-index[linux/amd64].k": "v"},
            "index annotations not supported for single platform export",
        ),
        (
            multi_source(),
            {"annotation[linux/s390x].k": "v"},
            "invalid annotation: no platform linux/s390x found in source",
        ),
        (
            multi_source(**{"annotation-manifest-descriptor.k": b"v"}),
            {"oci-mediatypes": "false"},
            'cannot export annotations with "oci-mediatypes=false"',
        ),
        (
            Source(refs={"linux/amd64": "a"}, metadata={"refs.platforms": b"[]"}),
            {},
            "failed to parse platforms passed to exporter: json: cannot unmarshal array into Go"
            " value of type exptypes.Platforms",
        ),
        (
            Source(ref="a", metadata={"source.date.epoch": b"x"}),
            {},
            'invalid SOURCE_DATE_EPOCH from frontend: "x": invalid : strconv.ParseInt: parsing'
            ' "x": invalid syntax: strconv.ParseInt: parsing "x": invalid syntax',
        ),
        (
            Source(ref="a", metadata={"annotation-bad.k": b"v"}),
            {},
            "unrecognized annotation type bad",
        ),
    ],
)
def test_plan_errors(source: Source, attrs: dict[str, str], text: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        plan_export(source, resolve(attrs), default_platform=AMD64)
    assert str(ei.value) == text


def test_single_ref_platform_annotation_matches_any_key() -> None:
    # BuildKit's FindRef: with no refs (or exactly one) every platform key is "found"
    plan = plan_export(
        Source(ref="a"), resolve({"annotation[linux/s390x].k": "v"}), default_platform=AMD64
    )
    assert plan.targets[0].annotations.manifest == {}
    one = Source(refs={"linux/amd64": "a"}, metadata={"refs.platforms": platforms("linux/amd64")})
    plan = plan_export(one, resolve({"annotation[linux/s390x].k": "v"}), default_platform=AMD64)
    assert plan.multi and plan.targets[0].ref == "a"


def test_plan_single() -> None:
    src = Source(
        ref="snap",
        metadata={
            "containerimage.config": b'{"os":"linux","architecture":"arm64"}',
            "containerimage.inlinecache": b"ic",
        },
    )
    plan = plan_export(src, resolve({}), default_platform=AMD64)
    assert isinstance(plan, ExportPlan) and not plan.multi and plan.oci
    (t,) = plan.targets
    assert (t.id, t.platform, t.ref, t.inline_cache) == ("linux/arm64", ARM64, "snap", b"ic")
    assert t.config == b'{"os":"linux","architecture":"arm64"}'


def test_plan_multi_config_fallback_and_epochs() -> None:
    src = multi_source(
        **{
            "containerimage.config": b"plain",
            "containerimage.config/linux/arm64": b"arm",
            "containerimage.base.config/linux/amd64": b"base",
            "source.date.epoch": b"100",
            "source.date.epoch/linux/arm64": b"200",
        }
    )
    plan = plan_export(src, resolve({}), default_platform=AMD64)
    assert plan.multi
    assert [(t.id, t.ref, t.config, t.base_config) for t in plan.targets] == [
        ("linux/amd64", "snap-amd64", b"plain", b"base"),
        ("linux/arm64", "snap-arm64", b"arm", None),
    ]
    assert [t.epoch for t in plan.targets] == [Timestamp.from_unix(100), Timestamp.from_unix(200)]
    assert plan.epoch == Timestamp.from_unix(100)
    assert parse_key(src.metadata, "containerimage.config", None) == b"plain"


def test_plan_option_metadata_overrides_frontend() -> None:
    src = Source(ref="a", metadata={"containerimage.config": b"frontend"})
    plan = plan_export(src, resolve({"containerimage.config": "{}"}), default_platform=AMD64)
    assert plan.targets[0].config == b"{}"
    assert plan.metadata["containerimage.config"] == b"{}"


# -- assemble -----------------------------------------------------------------------------


@pytest.mark.parametrize("oci", [True, False])
def test_assemble_single(oci: bool) -> None:
    attrs = {"oci-mediatypes": str(oci).lower(), "annotation.title": "t"}
    if oci:
        attrs["annotation-manifest-descriptor.d"] = "1"
    g = build(Source(ref="snap"), attrs)
    assert g.index is None
    (img,) = g.images
    assert g.root == img.manifest.descriptor
    assert g.root.platform == AMD64
    assert g.root.annotations == ({"d": "1"} if oci else {})
    assert g.config_digest == img.config.digest
    assert [b.progress.split(" ")[1] for b in g.blobs()] == ["manifest", "config"]
    m = doc(img.manifest.data)
    validate("oci-manifest" if oci else "docker-manifest", m)
    assert m["annotations"] == {"title": "t"}
    assert m["config"]["digest"] == str(img.config.digest)
    cfg = doc(img.config.data)
    validate("oci-config", cfg)
    assert cfg["rootfs"]["diff_ids"] == [str(layer(i).diff_id) for i in range(2)]
    assert img.config.descriptor.media_type == (mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG)
    assert g.warnings == ()


@pytest.mark.parametrize("oci", [True, False])
def test_assemble_multi(oci: bool) -> None:
    attrs = {"oci-mediatypes": str(oci).lower(), "annotation[linux/arm64].arch": "arm"}
    if oci:
        attrs |= {
            "annotation-index.i": "1",
            "annotation-index-descriptor.id": "2",
            "annotation-manifest-descriptor[linux/amd64].md": "3",
        }
    g = build(multi_source(), attrs, nlayers=1)
    assert g.index is not None and g.root == g.index.descriptor
    assert g.config_digest is None
    assert [b.progress.split(" ")[1] for b in g.blobs()] == ["manifest", "config"] * 2 + [
        "manifest"
    ]
    assert g.blobs()[-1].progress.startswith("exporting manifest list sha256:")
    idx = doc(g.index.data)
    validate("oci-index" if oci else "docker-manifest-list", idx)
    assert [m["platform"]["architecture"] for m in idx["manifests"]] == ["amd64", "arm64"]
    assert [m["digest"] for m in idx["manifests"]] == [str(i.manifest.digest) for i in g.images]
    amd, arm = (doc(i.manifest.data) for i in g.images)
    assert "annotations" not in amd and arm["annotations"] == {"arch": "arm"}
    if oci:
        assert idx["annotations"] == {"i": "1"}
        assert g.root.annotations == {"id": "2"}
        assert idx["manifests"][0]["annotations"] == {"md": "3"}
        assert "annotations" not in idx["manifests"][1]
    for img in g.images:
        validate("oci-manifest" if oci else "docker-manifest", doc(img.manifest.data))
        cfg = doc(img.config.data)
        validate("oci-config", cfg)
        assert cfg["architecture"] == img.platform.architecture  # default config per platform


def test_assemble_is_byte_for_byte_deterministic() -> None:
    src = multi_source(**{"source.date.epoch": b"1445412480"})
    a, b = build(src), build(src)
    assert [x.data for x in a.blobs()] == [x.data for x in b.blobs()]
    assert a.root == b.root


def test_assemble_epoch_and_base_config() -> None:
    base = json.dumps(
        {
            "os": "linux",
            "architecture": "amd64",
            "history": [{"created": "2023-01-01T00:00:00Z", "created_by": "base"}],
        }
    ).encode()
    src = Source(
        ref="a", metadata={"containerimage.config": base, "containerimage.base.config": base}
    )
    g = build(src, {"source-date-epoch": "1445412480"})
    cfg = doc(g.images[0].config.data)
    assert [h["created"] for h in cfg["history"]] == [
        "2023-01-01T00:00:00Z",
        "2015-10-21T07:28:00Z",
    ]
    # no "created" in the config: the last history time, which the epoch bounds
    assert cfg["created"] == "2015-10-21T07:28:00Z"


def test_assemble_converts_foreign_and_warns() -> None:
    plan = plan_export(
        Source(ref="a"), resolve({"oci-mediatypes": "false"}), default_platform=AMD64
    )
    g = assemble(
        plan, {"linux/amd64": [layer(0, mt.OCI_ND_LAYER_ZSTD), layer(1, "application/x-odd")]}
    )
    assert [d.media_type for d in g.images[0].layers] == [mt.DOCKER_LAYER_ZSTD, "application/x-odd"]
    assert g.warnings == ('unhandled conversion for mediatype "application/x-odd"',)


def test_assemble_without_layers() -> None:
    g = build(Source(), nlayers=0)
    assert doc(g.images[0].manifest.data)["layers"] is None
    assert doc(g.images[0].config.data)["rootfs"] == {"type": "layers", "diff_ids": None}


# -- response ------------------------------------------------------------------------------------


def test_response_single() -> None:
    g = build(Source(ref="a"), {"annotation-manifest-descriptor.k": "v"})
    resp = export_response(g.root, image_name="a,b", config_digest=g.config_digest)
    assert resp["containerimage.digest"] == str(g.root.digest)
    assert resp["containerimage.config.digest"] == str(g.images[0].config.digest)
    assert resp["image.name"] == "a,b"
    desc = json.loads(base64.b64decode(resp["containerimage.descriptor"]))
    assert desc == {
        "mediaType": mt.OCI_MANIFEST,
        "digest": str(g.root.digest),
        "size": g.root.size,
        "annotations": {"k": "v"},
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    assert list(desc) == ["mediaType", "digest", "size", "annotations", "platform"]


def test_response_multi_without_name() -> None:
    g = build(multi_source())
    resp = export_response(g.root, config_digest=g.config_digest)
    assert set(resp) == {"containerimage.digest", "containerimage.descriptor"}


# -- garbage collection: the image record alone keeps the graph ----------------------------------


def test_gc_keeps_the_whole_graph_through_the_image_record(db: Store) -> None:
    plan = plan_export(multi_source(), resolve({}), default_platform=AMD64)
    layer_blobs = {t.id: [f"{t.id}-{i}".encode() for i in range(2)] for t in plan.targets}
    layers: dict[str, list[Layer]] = {}
    for tid, blobs in layer_blobs.items():
        layers[tid] = []
        for b in blobs:
            d = put(db, b, media_type=mt.OCI_LAYER)
            layers[tid].append(Layer(descriptor=d, diff_id=d.digest))
    g = assemble(plan, layers)
    for blob in g.blobs():
        put(db, blob.data, labels=dict(blob.labels), media_type=blob.descriptor.media_type)
    everything = {d.digest for d in walk(db.content, g.root)}
    assert len(everything) == 1 + 2 * (1 + 1 + 2)

    db.images.create(Image(name="example.com/app:1", target=g.root))
    db.collect()
    for dg in everything:
        db.content.info(dg)  # still there

    db.images.delete("example.com/app:1")
    db.collect()
    for dg in everything:
        with pytest.raises(Exception):  # noqa: B017 - NotFound from the store
            db.content.info(dg)


def test_the_schemas_can_fail() -> None:
    import jsonschema

    cfg, layers = manifest_inputs(True)
    good = doc(encode_manifest(config=cfg, layers=layers, oci=True))
    bad_docs = [
        ("oci-manifest", {**good, "layers": None}),
        ("oci-manifest", {**good, "schemaVersion": 1}),
        ("oci-manifest", {**good, "mediaType": mt.DOCKER_MANIFEST}),
        ("oci-manifest", {**good, "config": {**good["config"], "digest": "sha256"}}),
        ("docker-manifest", good),
        ("oci-index", {"schemaVersion": 2, "mediaType": mt.OCI_INDEX}),
        (
            "docker-manifest-list",
            {
                "schemaVersion": 2,
                "mediaType": mt.DOCKER_MANIFEST_LIST,
                "manifests": [good["config"]],
            },
        ),
        (
            "oci-config",
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": None},
            },
        ),
        (
            "oci-config",
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "yesterday",
                "rootfs": {"type": "layers", "diff_ids": []},
            },
        ),
    ]
    for kind, bad in bad_docs:
        with pytest.raises(jsonschema.ValidationError):
            validate(kind, bad)
