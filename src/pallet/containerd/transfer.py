"""Copy an image graph from another store (pallet's embedded one) into containerd.

Children are written before their parents, all under one temporary lease, each blob with the
labels containerd's garbage collector follows (``gc.ref.content.config``/``.l.<i>`` on
manifests, ``.m.<i>`` on indexes, computed from the graph, plus the source's other labels such
as ``containerd.io/uncompressed``; snapshot references of the source are dropped). The image
names are then set the way BuildKit's exporter does (``Update``, on NotFound ``Create``), the
image is optionally unpacked into a snapshotter, and the lease is deleted: from then on the
image is what keeps everything alive.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .. import images as _images
from ..content import InfoProvider, Provider, set_labels
from ..errors import AlreadyExists, NotFound
from ..images import Image
from ..labels import GC_REF_CONTENT, GC_REF_SNAPSHOT_PREFIX
from ..leases import temporary
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest
from .content import CHUNK
from .unpack import MAX_CONFIG, unpack_image

if TYPE_CHECKING:
    from .client import Client

__all__ = ["CopyResult", "SourceStore", "copy_image", "gc_labels", "ref_key"]


class SourceStore(Provider, InfoProvider, Protocol):
    """What is read from the source: blobs and their labels."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyResult:
    image: Image
    names: tuple[str, ...]
    chain_id: Digest | None
    blobs_written: int
    bytes_written: int
    blobs_present: int


def ref_key(desc: Descriptor) -> str:
    """containerd's ingest ref convention (``remotes.MakeRefKey``)."""
    if mt.is_manifest(desc.media_type):
        kind = "manifest"
    elif mt.is_index(desc.media_type):
        kind = "index"
    elif mt.is_layer(desc.media_type):
        kind = "layer"
    elif mt.is_config(desc.media_type):
        kind = "config"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"


def gc_labels(provider: Provider, desc: Descriptor) -> dict[str, str]:
    """The ``gc.ref.content`` labels linking a manifest or index to its children."""
    if mt.is_manifest(desc.media_type):
        obj = _images.read_json(provider, desc, limit=MAX_CONFIG)
        out: dict[str, str] = {}
        if obj.get("config"):
            out[f"{GC_REF_CONTENT}.config"] = str(Descriptor.from_json(obj["config"]).digest)
        for i, layer in enumerate(obj.get("layers") or ()):
            out[f"{GC_REF_CONTENT}.l.{i}"] = str(Descriptor.from_json(layer).digest)
        return out
    if mt.is_index(desc.media_type):
        kids = _images.children(provider, desc)
        return {f"{GC_REF_CONTENT}.m.{i}": str(d.digest) for i, d in enumerate(kids)}
    return {}


def _source_labels(source: SourceStore, desc: Descriptor) -> dict[str, str]:
    try:
        lbl = dict(source.info(desc.digest).labels)
    except NotFound:
        return {}
    return {k: v for k, v in lbl.items() if not k.startswith(GC_REF_SNAPSHOT_PREFIX)}


def _copy_blob(
    client: Client,
    source: SourceStore,
    desc: Descriptor,
    labels: Mapping[str, str],
    lease: str,
) -> int:
    """Write one blob; returns the bytes sent (0 if containerd had it)."""
    content = client.content
    try:
        w = content.writer(ref_key(desc), total=desc.size, expected=desc.digest, lease=lease)
    except AlreadyExists:
        if labels:  # present (and now leased): make sure our GC edges are on it
            set_labels(content, desc, labels)
        return 0
    with w:
        sent = 0
        if w.offset < desc.size:
            with source.open(desc) as f:
                if w.offset:
                    f.seek(w.offset)
                while chunk := f.read(CHUNK):
                    w.write(chunk)
                    sent += len(chunk)
        with contextlib.suppress(AlreadyExists):
            w.commit(desc.size, desc.digest, labels=labels)
    return sent


def _is_parent(d: Descriptor) -> bool:
    return mt.is_manifest(d.media_type) or mt.is_index(d.media_type)


def copy_image(
    client: Client,
    source: SourceStore,
    image: Image,
    *,
    names: Sequence[str] = (),
    unpack: bool = False,
    snapshotter: str = "native",
    platform: Platform | None = None,
    jobs: int = 4,
) -> CopyResult:
    """Copy ``image``'s graph from ``source`` into containerd and name it (``names`` or its own).

    Raises:
        NotFound: a blob of the graph is missing in ``source``.
    """
    descs = builtins.list(_images.walk(source, image.target))  # parents first
    leaves = [d for d in descs if not _is_parent(d)]
    parents = [d for d in reversed(descs) if _is_parent(d)]
    targets = tuple(names) or (image.name,)
    sent: list[int] = []
    chain: Digest | None = None
    with temporary(client.leases) as lease:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            futs = [
                pool.submit(_copy_blob, client, source, d, _source_labels(source, d), lease)
                for d in leaves
            ]
            sent.extend(f.result() for f in futs)
        for d in parents:  # children first: every parent's edges point at present blobs
            lbl = _source_labels(source, d)
            lbl.update(gc_labels(source, d))
            sent.append(_copy_blob(client, source, d, lbl, lease))
        stored = image
        for name in targets:
            rec = Image(name=name, target=image.target, labels=dict(image.labels))
            try:
                stored = client.images.update(rec)
            except NotFound:
                stored = client.images.create(rec)
        if unpack:
            chain = unpack_image(
                client, image.target, snapshotter=snapshotter, platform=platform, lease=lease
            )
    return CopyResult(
        image=stored,
        names=targets,
        chain_id=chain,
        blobs_written=sum(1 for s in sent if s),
        bytes_written=sum(sent),
        blobs_present=sum(1 for s in sent if not s),
    )
