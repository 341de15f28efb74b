"""Helpers that build small images straight into a store (ggcr's ``random`` in spirit)."""

from __future__ import annotations

import hashlib
import json
import os
import random

from pallet.errors import AlreadyExists
from pallet.metadata.store import Store
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest


def put(
    db: Store,
    data: bytes,
    *,
    labels: dict[str, str] | None = None,
    lease: str | None = None,
    media_type: str = "application/octet-stream",
) -> Descriptor:
    dg = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    try:
        with db.content.writer(f"put-{dg}-{os.getpid()}", lease=lease) as w:
            w.write(data)
            w.commit(len(data), dg, labels=labels)
    except AlreadyExists:
        pass
    return Descriptor(media_type=media_type, digest=dg, size=len(data))


def random_image(
    db: Store,
    seed: int,
    *,
    layers: int = 2,
    size: int = 1000,
    lease: str | None = None,
    shared_layer: bytes | None = None,
) -> Descriptor:
    """A manifest with a config and ``layers`` random layer blobs, gc.ref-labelled."""
    rnd = random.Random(seed)
    blobs = [rnd.randbytes(size) for _ in range(layers)]
    if shared_layer is not None:
        blobs.append(shared_layer)
    ldescs = [put(db, b, lease=lease, media_type=mt.OCI_LAYER) for b in blobs]
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in ldescs]},
        }
    ).encode()
    cdesc = put(db, cfg, lease=lease, media_type=mt.OCI_CONFIG)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": cdesc.to_json(),
            "layers": [d.to_json() for d in ldescs],
        }
    ).encode()
    labels = {"containerd.io/gc.ref.content.config": cdesc.digest}
    labels.update({f"containerd.io/gc.ref.content.l.{i}": d.digest for i, d in enumerate(ldescs)})
    return put(db, manifest, labels=labels, lease=lease, media_type=mt.OCI_MANIFEST)


def graph(db: Store, desc: Descriptor) -> set[str]:
    from pallet.images import walk

    return {d.digest for d in walk(db.content, desc)}
