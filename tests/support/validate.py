"""An image graph checker for the tests (go-containerregistry's ``validate.Image`` in spirit).

:func:`validate_image` walks an image (a manifest, or an index and the manifests under it) in a
content provider and checks every invariant a consumer relies on:

- every descriptor resolves: the blob is in the provider, has the descriptor's size, and hashes
  to its digest (non-distributable layers with URLs may be absent);
- manifests, indexes and image configs pass the JSON schemas of :mod:`support.oci_schemas`, and
  a document's own ``mediaType`` agrees with the descriptor that points at it;
- the config's ``rootfs.diff_ids`` are, in order, the digests of the uncompressed layers
  (gzip, zstd or plain, as each layer's media type says), one per layer;
- with ``labels=True`` (the embedded store, containerd): each manifest and index carries a
  ``containerd.io/gc.ref.content.*`` label for every child it has in the store, so the garbage
  collector keeps the whole graph, and a layer's ``containerd.io/uncompressed`` label, where
  present, is its diff ID.

It reads the blobs itself (hashlib, gzip, zstandard): the code under test is not its own judge.
Every problem is collected; one :class:`InvalidImage` (an ``AssertionError``) lists them all.
:func:`validate_layout` does the same for each image of an OCI layout (a directory or a tar
archive of one), whose blobs carry no labels.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import jsonschema
import zstandard

from pallet.errors import NotFound
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from support import oci_schemas

__all__ = ["InvalidImage", "LayoutProvider", "validate_image", "validate_layout"]

GC_REF = "containerd.io/gc.ref.content"
UNCOMPRESSED = "containerd.io/uncompressed"
_CHUNK = 1 << 20

_MANIFESTS = {mt.OCI_MANIFEST: "oci-manifest", mt.DOCKER_MANIFEST: "docker-manifest"}
_INDEXES = {mt.OCI_INDEX: "oci-index", mt.DOCKER_MANIFEST_LIST: "docker-manifest-list"}
_CONFIGS = {mt.OCI_CONFIG: "oci-config", mt.DOCKER_CONFIG: "docker-config"}


class InvalidImage(AssertionError):
    """An image graph breaks an invariant; the message has one line per problem."""


class Provider(Protocol):
    """What the checker reads: blobs by digest (a missing one raises ``NotFound``)."""

    def open(self, desc: Descriptor | Digest) -> BinaryIO: ...


class LabelledProvider(Provider, Protocol):
    def info(self, dgst: Digest) -> Any: ...


class LayoutProvider:
    """The files of an OCI layout, a directory or the bytes of a tar archive of one, as a
    provider of the blobs under ``blobs/<algorithm>/<hex>``."""

    def __init__(self, source: Path | bytes) -> None:
        self.source = source
        self._files: dict[str, bytes] | None = None
        if isinstance(source, bytes):
            self._files = {}
            with tarfile.open(fileobj=io.BytesIO(source), mode="r:") as tf:
                for m in tf.getmembers():
                    f = tf.extractfile(m) if m.isfile() else None
                    if f is not None:
                        self._files[m.name.removeprefix("./")] = f.read()

    def read(self, name: str) -> bytes:
        """A file of the layout by its relative name; ``NotFound`` if absent."""
        try:
            if self._files is not None:
                return self._files[name]
            assert isinstance(self.source, Path)
            return (self.source / name).read_bytes()
        except (KeyError, FileNotFoundError):
            where = "archive" if self._files is not None else self.source
            raise NotFound(f"{name}: not in layout {where}") from None

    def open(self, desc: Descriptor | Digest) -> BinaryIO:
        d = desc.digest if isinstance(desc, Descriptor) else Digest(desc)
        name = f"blobs/{d.algorithm}/{d.hex}"
        if self._files is None:
            assert isinstance(self.source, Path)
            try:
                return open(self.source / name, "rb")
            except FileNotFoundError:
                raise NotFound(f"blob {d}: not in layout {self.source}") from None
        return io.BytesIO(self.read(name))


class _Tee:
    """A reader that hashes and counts the raw bytes read through it."""

    def __init__(self, f: BinaryIO, algorithm: str) -> None:
        self._f = f
        self.hash = hashlib.new(algorithm)
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _decompressed(media_type: str, raw: _Tee) -> Iterator[bytes]:
    """The uncompressed bytes of a layer, by the compression its media type names."""
    if media_type.endswith(("+gzip", ".gzip")):
        with gzip.GzipFile(fileobj=raw, mode="rb") as g:  # type: ignore[arg-type]
            while chunk := g.read(_CHUNK):
                yield chunk
    elif media_type.endswith(("+zstd", ".zstd")):
        dctx = zstandard.ZstdDecompressor()
        with dctx.stream_reader(raw, read_across_frames=True, closefd=False) as z:  # type: ignore[arg-type]
            while chunk := z.read(_CHUNK):
                yield chunk
    else:
        while chunk := raw.read(_CHUNK):
            yield chunk


def _is_layer(media_type: str) -> bool:
    return ".layer." in media_type or ".rootfs." in media_type


class _Checker:
    def __init__(self, provider: Provider, *, labels: bool, partial: bool) -> None:
        self.provider = provider
        self.labels = labels
        self.partial = partial
        self.problems: list[str] = []
        self.present: set[str] = set()

    def problem(self, msg: str) -> None:
        self.problems.append(msg)

    def _labels(self, d: Digest) -> dict[str, str]:
        info = self.provider.info(d)  # type: ignore[attr-defined]
        return dict(info.labels)

    def _check_bytes(self, what: str, d: Descriptor, raw: _Tee) -> None:
        if raw.size != d.size:
            self.problem(f"{what} {d.digest}: {raw.size} bytes, its descriptor says {d.size}")
        if raw.hash.hexdigest() != d.digest.hex:
            self.problem(
                f"{what} {d.digest}: the bytes hash to {d.digest.algorithm}:{raw.hash.hexdigest()}"
            )

    def _open(self, what: str, d: Descriptor) -> BinaryIO | None:
        try:
            f = self.provider.open(d.digest)
        except NotFound:
            return None
        self.present.add(str(d.digest))
        return f

    def document(self, what: str, d: Descriptor, kind: str | None) -> dict[str, Any] | None:
        """Read, check and parse a JSON blob (manifest, index, config); None when unusable."""
        f = self._open(what, d)
        if f is None:
            self.problem(f"{what} {d.digest} ({d.media_type}): missing")
            return None
        with f:
            raw = _Tee(f, d.digest.algorithm)
            data = raw.read()
            raw.drain()
        self._check_bytes(what, d, raw)
        try:
            doc = json.loads(data)
        except ValueError as e:
            self.problem(f"{what} {d.digest}: not JSON ({e})")
            return None
        if not isinstance(doc, dict):
            self.problem(f"{what} {d.digest}: not a JSON object")
            return None
        if kind is not None:
            try:
                oci_schemas.validate(kind, doc)
            except jsonschema.ValidationError as e:
                where = "/".join(str(p) for p in e.absolute_path) or "(root)"
                self.problem(f"{what} {d.digest}: fails the {kind} schema at {where}: {e.message}")
        own = doc.get("mediaType")
        if what in ("manifest", "index") and own is not None and own != d.media_type:
            self.problem(
                f"{what} {d.digest}: its mediaType is {own}, its descriptor says {d.media_type}"
            )
        return doc

    def gc_labels(self, what: str, d: Descriptor, children: Sequence[Descriptor]) -> None:
        if not self.labels:
            return
        covered = {v for k, v in self._labels(d.digest).items() if k.startswith(GC_REF)}
        for c in children:
            if str(c.digest) in self.present and str(c.digest) not in covered:
                self.problem(
                    f"{what} {d.digest}: no {GC_REF}.* label for its child {c.digest} "
                    f"({c.media_type})"
                )

    def layer(self, d: Descriptor) -> Digest | None:
        """Check a layer blob; its diff ID (None when missing or unreadable)."""
        f = self._open("layer", d)
        if f is None:
            if not d.urls:  # non-distributable layers with URLs need not be present
                self.problem(f"layer {d.digest} ({d.media_type}): missing")
            return None
        diff = hashlib.sha256()
        with f:
            raw = _Tee(f, d.digest.algorithm)
            try:
                for chunk in _decompressed(d.media_type, raw):
                    diff.update(chunk)
            except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:
                self.problem(f"layer {d.digest} ({d.media_type}): does not decompress: {e}")
                raw.drain()
                self._check_bytes("layer", d, raw)
                return None
            raw.drain()
        self._check_bytes("layer", d, raw)
        diff_id = Digest("sha256:" + diff.hexdigest())
        if self.labels:
            label = self._labels(d.digest).get(UNCOMPRESSED)
            if label is not None and label != diff_id:
                self.problem(f"layer {d.digest}: {UNCOMPRESSED} label {label}, diff ID {diff_id}")
        return diff_id

    def manifest(self, d: Descriptor) -> bool:
        doc = self.document("manifest", d, _MANIFESTS[d.media_type])
        if doc is None:
            return False
        try:
            cfg = Descriptor.from_json(doc["config"])
            layers = [Descriptor.from_json(x) for x in doc.get("layers") or []]
        except (KeyError, TypeError, ValueError) as e:
            self.problem(f"manifest {d.digest}: unusable descriptors ({e!r})")
            return True
        config = self.document("config", cfg, _CONFIGS.get(cfg.media_type))
        diff_ids = [self.layer(ly) for ly in layers]
        if config is not None and cfg.media_type in _CONFIGS:
            rootfs = config.get("rootfs")
            want = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
            want = want if isinstance(want, list) else []
            if len(want) != len(layers):
                self.problem(
                    f"config {cfg.digest}: {len(want)} diff_ids for the {len(layers)} layers "
                    f"of manifest {d.digest}"
                )
            for i, (ly, got, exp) in enumerate(zip(layers, diff_ids, want, strict=False)):
                if got is not None and got != exp:
                    self.problem(
                        f"config {cfg.digest}: diff_ids[{i}] is {exp}, layer {ly.digest} "
                        f"uncompresses to {got}"
                    )
        self.gc_labels("manifest", d, [cfg, *layers])
        return True

    def index(self, d: Descriptor) -> bool:
        doc = self.document("index", d, _INDEXES[d.media_type])
        if doc is None:
            return False
        try:
            kids = [Descriptor.from_json(x) for x in doc.get("manifests") or []]
        except (KeyError, TypeError, ValueError) as e:
            self.problem(f"index {d.digest}: unusable descriptors ({e!r})")
            return True
        found = 0
        for k in kids:
            if self.partial:
                try:
                    self.provider.open(k.digest).close()
                except NotFound:
                    continue  # a platform the store was not given
            found += self.node(k)
        if kids and not found:
            self.problem(f"index {d.digest}: none of its {len(kids)} manifests is present")
        self.gc_labels("index", d, kids)
        return True

    def node(self, d: Descriptor) -> bool:
        if d.media_type in _MANIFESTS:
            return self.manifest(d)
        if d.media_type in _INDEXES:
            return self.index(d)
        if _is_layer(d.media_type):
            return self.layer(d) is not None
        return self.document("blob", d, None) is not None


def _root_descriptor(provider: Provider, target: Descriptor | Digest | str) -> Descriptor:
    """``target`` as a descriptor: a digest's media type comes from the document itself."""
    if isinstance(target, Descriptor):
        return target
    dgst = Digest.parse(str(target))
    try:
        with provider.open(dgst) as f:
            data = f.read()
    except NotFound:
        raise InvalidImage(f"image {dgst}: missing") from None
    try:
        doc = json.loads(data)
    except ValueError:
        raise InvalidImage(f"image {dgst}: not JSON") from None
    media_type = doc.get("mediaType") if isinstance(doc, dict) else None
    if not isinstance(media_type, str):
        is_index = isinstance(doc, dict) and "manifests" in doc
        media_type = mt.OCI_INDEX if is_index else mt.OCI_MANIFEST
    return Descriptor(media_type=media_type, digest=dgst, size=len(data))


def validate_image(
    provider: Provider,
    target: Descriptor | Digest | str,
    *,
    labels: bool = True,
    partial: bool = False,
) -> None:
    """Check the image ``target`` (a manifest or index; a descriptor or a digest) in ``provider``.

    ``labels=False`` skips the containerd label checks, for providers without labels (a layout
    directory). ``partial=True`` lets an index lack some of its manifests (a pull or a save of
    selected platforms); at least one must be there, and each present one must be whole.

    Raises:
        InvalidImage: with every problem found, one per line.
    """
    root = _root_descriptor(provider, target)
    if root.media_type not in _MANIFESTS and root.media_type not in _INDEXES:
        raise InvalidImage(f"image {root.digest}: {root.media_type} is no manifest or index")
    checker = _Checker(provider, labels=labels, partial=partial)
    checker.node(root)
    if checker.problems:
        raise InvalidImage(
            f"image {root.digest} is invalid:\n" + "\n".join(f"- {p}" for p in checker.problems)
        )


def validate_layout(source: Path | bytes, *, partial: bool = False) -> list[Descriptor]:
    """Check an OCI layout (a directory, or the bytes of a tar archive of one): ``oci-layout``,
    ``index.json`` (the OCI index schema) and, with :func:`validate_image`, every image it
    lists. Returns those descriptors."""
    provider = LayoutProvider(source)
    where = "archive" if isinstance(source, bytes) else str(source)
    try:
        layout = json.loads(provider.read("oci-layout"))
        index = json.loads(provider.read("index.json"))
    except (NotFound, ValueError) as e:
        raise InvalidImage(f"layout {where}: {e}") from None
    if layout != {"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}:
        raise InvalidImage(f"layout {where}: oci-layout is {layout}")
    try:
        oci_schemas.validate("oci-index", index)
    except jsonschema.ValidationError as e:
        msg = f"layout {where}: index.json fails the oci-index schema: {e.message}"
        raise InvalidImage(msg) from None
    roots = [Descriptor.from_json(m) for m in index["manifests"]]
    for r in roots:
        validate_image(provider, r, labels=False, partial=partial)
    return roots
