"""The image-store and lease suites (containerd's ``core/metadata`` tests in spirit).

A subclass provides one fixture, ``store``: an empty store with ``.images``, ``.leases`` and
``.content`` (:class:`MetadataStore`), such as pallet's embedded store or a containerd client
in a fresh namespace. Garbage collection is not part of these suites: pallet's collector and
containerd's are tested on their own.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

import pytest

from pallet.content import Store as ContentStore
from pallet.errors import AlreadyExists, InvalidArgument, NotFound, Unsupported
from pallet.images import Image, ImageStore
from pallet.leases import LeaseManager, Resource, temporary
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from support.images import put

__all__ = ["ZERO", "ImageSuite", "LeaseSuite", "MetadataStore"]

ZERO = Digest("sha256:" + "0" * 64)


class MetadataStore(Protocol):
    @property
    def content(self) -> ContentStore: ...
    @property
    def images(self) -> ImageStore: ...
    @property
    def leases(self) -> LeaseManager: ...


class _Abstract:
    @pytest.fixture
    def store(self) -> MetadataStore:
        raise NotImplementedError("a subclass of these suites provides the store fixture")


class ImageSuite(_Abstract):
    """Tests of an image store (``store.images``)."""

    def test_image_create_get_list_update_delete(self, store: MetadataStore) -> None:
        images = store.images
        t = Descriptor(media_type=mt.OCI_MANIFEST, digest=ZERO, size=10)
        img = images.create(Image(name="docker.io/library/a:1", target=t, labels={"x": "1"}))
        assert img.created_at is not None and img.created_at == img.updated_at
        with pytest.raises(AlreadyExists, match="docker.io/library/a:1"):
            images.create(Image(name="docker.io/library/a:1", target=t))
        got = images.get("docker.io/library/a:1")
        assert got.target == t and got.labels == {"x": "1"}
        images.create(Image(name="b", target=t))
        assert [i.name for i in images.list()] == ["b", "docker.io/library/a:1"]
        assert [i.name for i in images.list(["name~=^docker"])] == ["docker.io/library/a:1"]
        assert [i.name for i in images.list(["labels.x==1"])] == ["docker.io/library/a:1"]
        t2 = replace(t, size=20, annotations={"k": "v"})
        up = images.update(Image(name="b", target=t2, labels={"y": "2"}), ["target"])
        assert up.target.size == 20 and up.labels == {}
        up = images.update(Image(name="b", target=t, labels={"y": "2"}), ["labels.y"])
        assert up.labels == {"y": "2"} and up.target.size == 20
        up = images.update(
            Image(name="b", target=replace(t, annotations={"k": ""}), labels={}),
            ["annotations.k"],
        )
        assert dict(up.target.annotations) == {}
        with pytest.raises(InvalidArgument, match="field path"):
            images.update(Image(name="b", target=t), ["name"])
        with pytest.raises(NotFound, match="nope"):
            images.update(Image(name="nope", target=t))
        assert images.get("b").created_at == images.list(["name==b"])[0].created_at
        images.delete("b")
        with pytest.raises(NotFound):
            images.get("b")
        with pytest.raises(NotFound):
            images.delete("b")

    def test_image_update_replaces_everything_without_fieldpaths(
        self, store: MetadataStore
    ) -> None:
        images = store.images
        t = replace(
            Descriptor(media_type=mt.OCI_MANIFEST, digest=ZERO, size=10),
            annotations={"a": "1"},
        )
        images.create(Image(name="r", target=t, labels={"x": "1"}))
        created = images.get("r").created_at
        up = images.update(Image(name="r", target=replace(t, size=11), labels={"y": "2"}))
        assert (up.target.size, dict(up.labels), up.created_at) == (11, {"y": "2"}, created)
        assert up.target.annotations == {"a": "1"}
        images.delete("r", sync=True)
        assert images.list() == []

    @pytest.mark.parametrize(
        "target,match",
        [
            (Descriptor(media_type="", digest=ZERO, size=1), "media type"),
            (Descriptor(media_type=mt.OCI_MANIFEST, digest=ZERO, size=0), "size"),
            (Descriptor(media_type=mt.OCI_MANIFEST, digest=Digest(""), size=1), "digest"),
        ],
    )
    def test_image_target_validation(
        self, store: MetadataStore, target: Descriptor, match: str
    ) -> None:
        with pytest.raises(InvalidArgument, match=match):
            store.images.create(Image(name="x", target=target))
        assert store.images.list() == []


class LeaseSuite(_Abstract):
    """Tests of a lease manager (``store.leases``) and of content written under a lease."""

    def test_leases(self, store: MetadataStore) -> None:
        lm = store.leases
        lease = lm.create("l1", {"a": "b"})
        assert lease.id == "l1"
        with pytest.raises(AlreadyExists):
            lm.create("l1")
        assert [x.id for x in lm.list()] == ["l1"]
        assert [x.id for x in lm.list(["labels.a==c"])] == []
        lm.add_resource("l1", Resource("content", ZERO))
        lm.add_resource("l1", Resource("snapshots/native", "k1"))
        assert lm.list_resources("l1") == [
            Resource("content", ZERO),
            Resource("snapshots/native", "k1"),
        ]
        lm.delete_resource("l1", Resource("content", ZERO))
        assert lm.list_resources("l1") == [Resource("snapshots/native", "k1")]
        with pytest.raises(Unsupported):
            lm.add_resource("l1", Resource("containers", "x"))
        with pytest.raises(NotFound, match="lease does not exist"):
            lm.add_resource("nope", Resource("content", ZERO))
        lm.delete("l1")
        with pytest.raises(NotFound):
            lm.delete("l1")

    def test_lease_delete_sync_and_expiry_label(self, store: MetadataStore) -> None:
        lm = store.leases
        lease = lm.create("exp", {"containerd.io/gc.expire": "2000-01-01T00:00:00Z"})
        assert lease.labels == {"containerd.io/gc.expire": "2000-01-01T00:00:00Z"}
        assert lease.created_at is not None
        # an expired lease is not a root; the collector deletes it (spec §2.3)
        lm.create("trigger")
        lm.delete("trigger", sync=True)
        assert [x.id for x in lm.list()] == []
        with pytest.raises(InvalidArgument, match="lease id"):
            lm.create("")

    def test_writes_under_a_lease_are_attached(self, store: MetadataStore) -> None:
        with temporary(store.leases) as lid:
            d = put(store, b"leased", lease=lid)
            w = store.content.writer("pending", lease=lid)
            w.write(b"x")
            w.close()
            res = store.leases.list_resources(lid)
            assert Resource("content", d.digest) in res
            assert Resource("ingests", "pending") in res
            # an existing blob written again under another lease is attached to it too
            with temporary(store.leases) as lid2:
                put(store, b"leased", lease=lid2)
                assert Resource("content", d.digest) in store.leases.list_resources(lid2)
            exp = store.leases.list(["id==" + lid])[0].labels["containerd.io/gc.expire"]
            assert datetime.fromisoformat(exp.replace("Z", "+00:00")) > datetime.now(UTC)
        assert store.leases.list() == []
        with pytest.raises(NotFound, match="lease"):
            put(store, b"no such lease", lease="missing")
