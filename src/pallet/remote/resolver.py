"""Resolve references and pull images into a content store.

``pull`` fetches the root (index or manifest), picks the platform's manifest from an index, then
the config and layers, in parallel (``jobs``). Every blob goes through the store's resumable
ingest under the ref ``pull-<digest>`` with the expected digest, so the store verifies it and an
interrupted pull (even by a killed process) continues where it stopped; a dropped connection
resumes with ``Range``. Each blob is labelled ``containerd.io/distribution.source.<host>=<repo>``
(so a later push to that registry can mount instead of upload), and manifests and indexes get
``containerd.io/gc.ref.content.{config,l.<i>,m.<i>}`` labels so that the graph is kept alive by
the image record the caller creates for the returned root.

``layers=False`` is a lazy pull: index, manifest and config only. A push of an image built on it
mounts the base layers from the source repository, named by the manifest's label.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from .. import labels as _labels
from ..content import Info, Ingester, Provider, Writer
from ..errors import AlreadyExists, DigestMismatch, NotFound, Unsupported
from ..images import decode_json
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor, Platform
from ..oci.digest import Digest
from ..oci.reference import Reference
from ..progress import Progress
from .auth import repository_scope
from .options import Options
from .protocol import BlobSink, fetch_blob, get_manifest, head_manifest
from .push import ProgressCallback, distribution_sources, source_key

if TYPE_CHECKING:
    from .client import Session

__all__ = [
    "PULL_PARENT",
    "PullStore",
    "fetch_manifest",
    "gc_labels",
    "platform_matches",
    "pull",
    "resolve",
    "select_manifest",
]

log = logging.getLogger("pallet.remote")
PULL_PARENT = "pulling layers"
_SCHEMA1 = {
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
}


class PullStore(Provider, Ingester, Protocol):
    """What ``pull`` writes into: a content store with labels (``content.Store`` fits)."""

    def info(self, dgst: Digest) -> Info: ...
    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info: ...


def _session(options: Options | None) -> Session:
    from .client import Session

    return Session(options)


def _parse(ref: str | Reference) -> Reference:
    return ref if isinstance(ref, Reference) else Reference.parse(ref)


def _pull_scope(ref: Reference) -> tuple[str, ...]:
    return (repository_scope(ref.repository, "pull"),)


def resolve(
    ref: str | Reference,
    *,
    options: Options | None = None,
    session: Session | None = None,
) -> Descriptor:
    """The descriptor ``ref`` points at (HEAD, else GET of the manifest).

    Raises:
        RegistryNotFound: no such manifest (also ``pallet.errors.NotFound``).
    """
    r = _parse(ref)
    if session is None:
        with _session(options) as s:
            return resolve(r, session=s)
    base = session.endpoint(r.api_host)
    desc = session.run(
        head_manifest(base, r.repository, r.object, scopes=_pull_scope(r)), r.api_host
    )
    if desc is not None:
        return desc
    return fetch_manifest(r, session=session)[0]


def fetch_manifest(
    ref: str | Reference,
    *,
    options: Options | None = None,
    session: Session | None = None,
) -> tuple[Descriptor, bytes]:
    """The manifest or index bytes of ``ref`` and their descriptor (digest verified)."""
    r = _parse(ref)
    if session is None:
        with _session(options) as s:
            return fetch_manifest(r, session=s)
    base = session.endpoint(r.api_host)
    return session.run(
        get_manifest(base, r.repository, r.object, scopes=_pull_scope(r)), r.api_host
    )


# -- platforms -------------------------------------------------------------------------------


def platform_matches(want: Platform, have: Platform | None) -> int:
    """0 = no match; higher is better (exact variant beats a compatible one)."""
    if have is None or have.os != want.os or have.architecture != want.architecture:
        return 0
    hv, wv = have.variant, want.variant
    if want.architecture == "arm64":
        hv, wv = hv or "v8", wv or "v8"
    if hv == wv:
        return 3
    if not wv or not hv:
        return 2
    if want.architecture == "arm" and hv.startswith("v") and wv.startswith("v"):
        with contextlib.suppress(ValueError):
            if int(hv[1:]) < int(wv[1:]):
                return 1  # v7 runs v6 and v5
    return 0


def select_manifest(index: Mapping[str, Any], platform: Platform) -> Descriptor:
    """The best entry of an index for ``platform`` (attestations are never chosen).

    Raises:
        NotFound: no entry matches; the message lists the platforms there are.
    """
    best: tuple[int, int, Descriptor] | None = None
    seen = []
    for i, m in enumerate(index.get("manifests") or ()):
        d = Descriptor.from_json(m)
        if d.platform is not None:
            seen.append(str(d.platform))
        if d.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        score = platform_matches(platform, d.platform)
        if score and (best is None or score > best[0]):
            best = (score, -i, d)
    if best is None:
        raise NotFound(
            f"platform {platform}: no matching manifest (available: {', '.join(seen) or 'none'})"
        )
    return best[2]


def gc_labels(desc: Descriptor, obj: Mapping[str, Any]) -> dict[str, str]:
    """containerd's child GC labels for a manifest (``config``, ``l.<i>``) or index (``m.<i>``)."""
    prefix = _labels.GC_REF_CONTENT
    out: dict[str, str] = {}
    if mt.is_index(desc.media_type):
        for i, m in enumerate(obj.get("manifests") or ()):
            out[f"{prefix}.m.{i}"] = str(Descriptor.from_json(m).digest)
    elif mt.is_manifest(desc.media_type):
        if obj.get("config"):
            out[f"{prefix}.config"] = str(Descriptor.from_json(obj["config"]).digest)
        for i, layer in enumerate(obj.get("layers") or ()):
            out[f"{prefix}.l.{i}"] = str(Descriptor.from_json(layer).digest)
    return out


# -- pull ------------------------------------------------------------------------------------


class _Pull:
    def __init__(
        self,
        session: Session,
        store: PullStore,
        ref: Reference,
        lease: str | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.session = session
        self.store = store
        self.ref = ref
        self.lease = lease
        self.on_progress = on_progress
        self.key = source_key(ref)
        self.scopes = _pull_scope(ref)
        self.base = session.endpoint(ref.api_host)

    def _emit(self, p: Progress) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(p)
            except Exception:
                log.exception("progress callback failed")

    def _source_label(self, current: Mapping[str, str]) -> dict[str, str]:
        repos = set(distribution_sources(self.key, current))
        repos.add(self.ref.repository)
        return {self.key: ",".join(sorted(repos))}

    def _exists(self, dgst: Digest) -> Info | None:
        try:
            return self.store.info(dgst)
        except NotFound:
            return None

    def _label_existing(self, info: Info, extra: Mapping[str, str]) -> None:
        new = dict(extra)
        new.update(self._source_label(info.labels))
        changed = {k: v for k, v in new.items() if info.labels.get(k) != v}
        if changed:
            self.store.update(replace(info, labels=changed), [f"labels.{k}" for k in changed])

    def _put_bytes(self, desc: Descriptor, data: bytes, extra: Mapping[str, str]) -> None:
        info = self._exists(desc.digest)
        if info is not None:
            self._label_existing(info, extra)
            return
        labels = dict(extra)
        labels.update(self._source_label({}))
        try:
            with self.store.writer(
                f"pull-{desc.digest}", total=desc.size, expected=desc.digest, lease=self.lease
            ) as w:
                if w.offset:
                    w.truncate(0)
                w.write(data)
                w.commit(desc.size, desc.digest, labels=labels)
        except AlreadyExists:
            info = self._exists(desc.digest)
            if info is not None:
                self._label_existing(info, extra)

    def manifest(self, obj_ref: str) -> tuple[Descriptor, dict[str, Any], bytes]:
        desc, data = self.session.run(
            get_manifest(self.base, self.ref.repository, obj_ref, scopes=self.scopes),
            self.ref.api_host,
        )
        if desc.media_type in _SCHEMA1:
            raise Unsupported(f"manifest {self.ref}: Docker schema 1 is not supported")
        return desc, decode_json(data, "manifest", desc.digest), data

    def blob(self, desc: Descriptor) -> None:
        started = time.time()
        start = Progress(
            id=str(desc.digest),
            name=f"pulling {desc.digest}",
            total=desc.size,
            started=started,
            parent=PULL_PARENT,
        )
        info = self._exists(desc.digest)
        if info is not None:
            self._label_existing(info, {})
            self._emit(
                replace(
                    start, name=f"exists {desc.digest}", current=desc.size, completed=time.time()
                )
            )
            return
        self._emit(start)
        try:
            self._download(desc, start)
        except BaseException as exc:
            self._emit(replace(start, completed=time.time(), error=str(exc) or type(exc).__name__))
            raise
        self._emit(replace(start, current=desc.size, completed=time.time()))

    def _download(self, desc: Descriptor, start: Progress) -> None:
        labels = self._source_label({})
        for attempt in (1, 2):
            try:
                w = self.store.writer(
                    f"pull-{desc.digest}", total=desc.size, expected=desc.digest, lease=self.lease
                )
            except AlreadyExists:
                info = self._exists(desc.digest)
                if info is not None:
                    self._label_existing(info, {})
                return
            with w:
                self._fetch_into(w, desc, start)
                try:
                    w.commit(desc.size, desc.digest, labels=labels)
                    return
                except AlreadyExists:
                    return
                except DigestMismatch:
                    if attempt == 2:
                        raise
                    log.warning("blob %s: digest mismatch, downloading again", desc.digest)
            # the failed commit keeps the ingest: start it over
            with contextlib.suppress(NotFound):
                abort = getattr(self.store, "abort", None)
                if callable(abort):
                    abort(f"pull-{desc.digest}")

    def _fetch_into(self, w: Writer, desc: Descriptor, start: Progress) -> None:
        if w.offset > desc.size:
            w.truncate(0)

        def write(data: bytes) -> None:
            w.write(data)
            self._emit(replace(start, current=w.offset))

        sink = BlobSink(write, lambda: w.truncate(0), offset=w.offset)
        if sink.offset < desc.size or desc.size == 0:
            flow = fetch_blob(
                self.base,
                self.ref.repository,
                desc,
                sink,
                scopes=self.scopes,
                policy=self.session.options.retry,
            )
            self.session.run(flow, self.ref.api_host)

    def blobs(self, descs: Sequence[Descriptor]) -> None:
        unique = list({d.digest: d for d in descs}.values())
        if not unique:
            return
        jobs = min(self.session.options.jobs, len(unique))
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait  # start-up

        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pallet-pull") as pool:
            futures = [pool.submit(self.blob, d) for d in unique]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                exc = f.exception()
                if exc is not None:
                    for p in pending:
                        p.cancel()
                    raise exc


def pull(
    ref: str | Reference,
    store: PullStore,
    *,
    platform: Platform | str | None = None,
    layers: bool = True,
    lease: str | None = None,
    options: Options | None = None,
    on_progress: ProgressCallback | None = None,
    session: Session | None = None,
) -> Descriptor:
    """Pull ``ref`` into ``store``; returns the root descriptor (index or manifest).

    Args:
        ref: ``ubuntu:22.04``, ``host:5000/repo@sha256:...``.
        store: the content store (``LocalStore``, the metadata DB's content).
        platform: which manifest of an index (default: this machine's, ``linux/<arch>``).
        layers: False fetches manifests and config only (lazy; a later push mounts the layers).
        lease: ingests and blobs are added to it, so garbage collection keeps them until the
            caller creates the image record.

    Raises:
        NotFound: no manifest for the platform; RegistryNotFound: no such reference.
        DigestMismatch: the registry sent other bytes than the digest (twice).
    """
    r = _parse(ref)
    if session is None:
        with _session(options) as s:
            return pull(
                r,
                store,
                platform=platform,
                layers=layers,
                lease=lease,
                on_progress=on_progress,
                session=s,
            )
    want = Platform.parse(platform) if isinstance(platform, str) else platform
    want = want or Platform.default()
    job = _Pull(session, store, r, lease, on_progress)
    root, obj, data = job.manifest(r.object)
    desc, cur, cur_data = root, obj, data
    chain: list[tuple[Descriptor, dict[str, Any], bytes]] = []
    for _depth in range(4):
        if not mt.is_index(desc.media_type):
            break
        chain.append((desc, cur, cur_data))
        child = select_manifest(cur, want)
        desc, cur, cur_data = job.manifest(str(child.digest))
        if desc.digest != child.digest:
            raise DigestMismatch(f"manifest {child.digest}: registry sent {desc.digest}")
        desc = replace(
            desc, platform=child.platform, media_type=child.media_type or desc.media_type
        )
    if not mt.is_manifest(desc.media_type):
        raise Unsupported(f"manifest {desc.digest}: media type {desc.media_type!r} is not an image")
    config = Descriptor.from_json(cur["config"])
    layer_descs = [Descriptor.from_json(x) for x in cur.get("layers") or ()]
    job.blobs([config, *layer_descs] if layers else [config])
    # parents after children: a manifest in the store means its children are there (or lazy)
    job._put_bytes(desc, cur_data, gc_labels(desc, cur))
    for d, o, b in reversed(chain):
        job._put_bytes(d, b, gc_labels(d, o))
    return root
