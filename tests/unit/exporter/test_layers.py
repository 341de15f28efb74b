"""Layer building: the labels a snapshot records its blob in, and what the builder does with
them (reuse, recompute, or refuse a lazy layer whose blob is gone), on the real embedded store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pallet import labels as L
from pallet.errors import InvalidArgument, NotFound
from pallet.exporter.layers import ANNOTATION_REWRITTEN, LayerBuilder, RecordedLayer
from pallet.exporter.options import resolve
from pallet.leases import temporary
from pallet.metadata.store import Store
from pallet.oci.descriptor import Platform
from pallet.oci.digest import Digest
from pallet.progress import NullProgress

BLOB = Digest("sha256:" + hashlib.sha256(b"blob").hexdigest())
DIFF = Digest("sha256:" + hashlib.sha256(b"diff").hexdigest())
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def recorded_labels(**extra: str) -> dict[str, str]:
    return {
        L.LAYER_BLOB: str(BLOB),
        L.LAYER_MEDIA_TYPE: GZIP,
        L.LAYER_SIZE: "42",
        L.LAYER_DIFF_ID: str(DIFF),
        **extra,
    }


# -- RecordedLayer -----------------------------------------------------------------------------


def test_recorded_layer_reads_back_what_it_writes() -> None:
    rec = RecordedLayer(digest=BLOB, media_type=GZIP, size=42, diff_id=DIFF, epoch="1700000000")
    labels = rec.to_labels()
    assert labels == recorded_labels(**{L.LAYER_EPOCH: "1700000000"})
    assert list(labels) == [
        L.LAYER_BLOB,
        L.LAYER_MEDIA_TYPE,
        L.LAYER_SIZE,
        L.LAYER_DIFF_ID,
        L.LAYER_EPOCH,
    ]
    assert RecordedLayer.from_labels(labels) == rec
    assert RecordedLayer.from_labels({**labels, L.LAZY: "true"}) == RecordedLayer(
        digest=BLOB, media_type=GZIP, size=42, diff_id=DIFF, epoch="1700000000", lazy=True
    )


@pytest.mark.parametrize("labels", [{}, {L.LAYER_BLOB: ""}, {"other": "x"}])
def test_no_recorded_blob(labels: dict[str, str]) -> None:
    assert RecordedLayer.from_labels(labels) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({L.LAYER_MEDIA_TYPE: None}, "label pallet.io/layer.mediatype: missing"),
        ({L.LAYER_DIFF_ID: None}, "label pallet.io/layer.diffid: missing"),
        ({L.LAYER_SIZE: "x"}, "label pallet.io/layer.size: 'x' is not a number"),
        ({L.LAYER_BLOB: "sha256:nope"}, "digest 'sha256:nope'"),
        ({L.LAYER_DIFF_ID: "md5:00"}, "digest 'md5:00'"),
    ],
)
def test_damaged_labels_are_invalid(change: dict[str, str | None], message: str) -> None:
    labels = recorded_labels()
    for k, v in change.items():
        if v is None:
            del labels[k]
        else:
            labels[k] = v
    with pytest.raises(InvalidArgument, match=message):
        RecordedLayer.from_labels(labels)


def test_size_is_optional() -> None:
    rec = RecordedLayer.from_labels(recorded_labels(**{L.LAYER_SIZE: ""}))
    assert rec is not None and rec.size is None


@pytest.mark.parametrize(
    ("extra", "epoch", "matches", "clamped"),
    [
        ({}, None, True, False),  # a fixed blob (a base layer) fits every epoch
        ({}, 5, True, False),
        ({L.LAYER_EPOCH: "none"}, None, True, False),  # made by an export without an epoch
        ({L.LAYER_EPOCH: "none"}, 5, False, False),
        ({L.LAYER_EPOCH: "5"}, 5, True, True),  # made by an export clamping to 5
        ({L.LAYER_EPOCH: "5"}, 6, False, True),
        ({L.LAYER_EPOCH: "5"}, None, False, True),
        ({L.LAYER_EPOCH: "5", L.LAZY: "true"}, 6, True, False),  # lazy: the only copy
    ],
)
def test_which_epochs_a_recorded_blob_stands_for(
    extra: dict[str, str], epoch: int | None, matches: bool, clamped: bool
) -> None:
    rec = RecordedLayer.from_labels(recorded_labels(**extra))
    assert rec is not None
    assert rec.matches_epoch(epoch) is matches
    assert rec.clamped is clamped


# -- LayerBuilder ------------------------------------------------------------------------------


def builder(db: Store, lease: str, *, allow_lazy: bool = False, **attrs: str) -> LayerBuilder:
    return LayerBuilder(
        content=db.content,
        leases=db.leases,
        lease=lease,
        snapshotter=db.snapshotter(),
        options=resolve(attrs, default_platform=Platform.parse("linux/amd64")),
        progress=NullProgress(),
        on_warning=lambda _msg: None,
        workers=2,
        allow_lazy=allow_lazy,
    )


def snapshot_dir(tmp_path: Path, name: str, data: bytes) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "f").write_bytes(data)
    return d


def test_a_computed_layer_is_recorded_and_then_reused(db: Store, tmp_path: Path) -> None:
    sn = db.snapshotter()
    sn.commit_dir("s", snapshot_dir(tmp_path, "t", b"x" * 1000), "")
    with temporary(db.leases) as lease:
        first = builder(db, lease, **{"rewrite-timestamp": "true"}).build(sn.stat("s"), 7)
        rec = RecordedLayer.from_labels(sn.stat("s").labels)
        assert rec == RecordedLayer(
            digest=first.descriptor.digest,
            media_type=first.descriptor.media_type,
            size=first.descriptor.size,
            diff_id=first.diff_id,
            epoch="7",
        )
        assert first.descriptor.annotations[ANNOTATION_REWRITTEN] == "7"
        # zstd asked for: the recorded gzip blob is reused all the same
        again = builder(db, lease, compression="zstd").build(sn.stat("s"), 7)
        assert again == first
        # another epoch: computed again, and recorded in place of the first
        other = builder(db, lease, compression="zstd").build(sn.stat("s"), None)
        assert other.descriptor.digest != first.descriptor.digest
        assert ANNOTATION_REWRITTEN not in other.descriptor.annotations
        assert sn.stat("s").labels[L.LAYER_BLOB] == str(other.descriptor.digest)


def test_a_clamped_layer_after_an_unclamped_one_is_computed_again(
    db: Store, tmp_path: Path
) -> None:
    sn = db.snapshotter()
    sn.commit_dir("s", snapshot_dir(tmp_path, "t", b"x" * 1000), "")
    with temporary(db.leases) as lease:
        plain = builder(db, lease).build(sn.stat("s"), None)
        clamped = builder(db, lease, **{"rewrite-timestamp": "true"}).build(sn.stat("s"), 7)
    assert clamped.descriptor.digest != plain.descriptor.digest


def test_damaged_labels_on_a_snapshot_only_cost_the_reuse(db: Store, tmp_path: Path) -> None:
    sn = db.snapshotter()
    sn.commit_dir("good", snapshot_dir(tmp_path, "a", b"same"), "")
    sn.commit_dir(
        "bad",
        snapshot_dir(tmp_path, "b", b"same"),
        "",
        labels=recorded_labels(**{L.LAYER_BLOB: "sha256:nope"}),
    )
    with temporary(db.leases) as lease:
        good = builder(db, lease).build(sn.stat("good"), None)
        bad = builder(db, lease).build(sn.stat("bad"), None)
    assert (bad.descriptor.digest, bad.diff_id) == (good.descriptor.digest, good.diff_id)
    assert sn.stat("bad").labels[L.LAYER_BLOB] == str(good.descriptor.digest)


def test_a_lazy_layer_whose_blob_is_gone(db: Store) -> None:
    sn = db.snapshotter()
    sn.commit_lazy("lazy", labels=recorded_labels())
    with temporary(db.leases) as lease:
        with pytest.raises(NotFound, match=f"snapshot lazy: its layer blob {BLOB} is not avail"):
            builder(db, lease).build(sn.stat("lazy"), None)
        # a push-only export: the registry mounts it, so its recorded size will do
        layer = builder(db, lease, allow_lazy=True).build(sn.stat("lazy"), None)
    assert (layer.descriptor.digest, layer.descriptor.size, layer.diff_id) == (BLOB, 42, DIFF)
    assert layer.created_at is None
