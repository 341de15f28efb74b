"""Push an image graph from a content store to one or more registry names.

Order (containerd ``remotes.PushContent``, ggcr ``remote.Write``): walk the graph from the root,
push every distinct blob (config and layers) in parallel, at most ``jobs`` at a time; then the
manifests, children before parents; the root last. Only the root goes to the tag; every other
manifest is addressed by digest, so a tag never points at a child for a moment.

Blobs: HEAD (present: skip), cross-repository mount from the repositories that
``containerd.io/distribution.source.<host>`` labels (on the blob, on its descriptor's annotations,
or on the manifest that lists it) name for the target host, then upload. A blob that is not in
the local store at all (a base layer that was never downloaded) is pushed by mount or found by
HEAD; if neither works the push fails and says so. After a successful push every local blob gets
the pushed repository added to its distribution-source label, so the next push can mount.

The first failure cancels the remaining transfers (errgroup semantics) and is raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from .. import labels as _labels
from ..content import Info, Provider
from ..errors import DigestMismatch, Error, FailedPrecondition, InvalidArgument, NotFound
from ..images import MAX_MANIFEST, children
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest
from ..oci.reference import Reference
from ..progress import Progress, finished
from .auth import merge_scopes, repository_scope
from .options import Options
from .protocol import BodySource, PushOutcome, Trouble, head_manifest, push_manifest, upload_blob

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .client import Session

__all__ = [
    "Cancelled",
    "ProgressCallback",
    "PushResult",
    "distribution_sources",
    "parse_push_names",
    "push",
    "push_by_digest",
    "push_content",
]

log = logging.getLogger("pallet.remote")

ProgressCallback = Callable[[Progress], None]
READ_CHUNK = 1 << 20
PUSH_PARENT = "pushing layers"


class Cancelled(Error):
    """Another transfer of the same push failed first."""


@runtime_checkable
class _InfoProvider(Protocol):
    def info(self, dgst: Digest) -> Info: ...


@runtime_checkable
class _Walker(Protocol):
    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]: ...


@runtime_checkable
class _LabelManager(Protocol):
    def info(self, dgst: Digest) -> Info: ...
    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PushResult:
    """What one name's push did.

    Attributes:
        name: the normalised reference pushed (``host/repo:tag``, or ``host/repo`` by digest).
        descriptor: the root descriptor.
        blobs: per blob digest, whether it existed, was mounted or uploaded.
        manifests: the same for manifests and indexes.
        bytes_sent: body bytes handed to the network (re-sent bytes count twice).
    """

    name: str
    descriptor: Descriptor
    blobs: Mapping[Digest, PushOutcome] = field(default_factory=dict)
    manifests: Mapping[Digest, PushOutcome] = field(default_factory=dict)
    bytes_sent: int = 0


def source_key(ref: Reference) -> str:
    """``containerd.io/distribution.source.<host>``, the host without its port.

    containerd (``remotes/docker/handler.go``: ``AppendDistributionSourceLabel`` and
    ``selectRepositoryMountCandidate``) and BuildKit key on Go's ``url.URL.Hostname()`` of
    ``dummy://<locator>``, which strips the port; labels written by either, or by pallet, must
    keep meeting here. Registries on one host but different ports therefore share a key: a
    push may try a mount that the target does not have, which costs a request and falls back
    to the upload.
    """
    return _labels.DISTRIBUTION_SOURCE_PREFIX + ref.hostname


def distribution_sources(
    key: str, *label_maps: Mapping[str, str] | None, exclude: str = ""
) -> list[str]:
    """Repositories named by ``key`` in any of ``label_maps``, deduplicated, ``exclude`` dropped."""
    out: list[str] = []
    for m in label_maps:
        if not m:
            continue
        for repo in m.get(key, "").split(","):
            repo = repo.strip()
            if repo and repo != exclude and repo not in out:
                out.append(repo)
    return out


def _rank(sources: list[str], target: str) -> list[str]:
    """Longest common path prefix with the target first (containerd's choice)."""

    def common(a: str) -> int:
        n = 0
        for x, y in zip(a.split("/"), target.split("/"), strict=False):
            if x != y:
                break
            n += 1
        return n

    return sorted(sources, key=lambda s: -common(s))


def parse_push_names(names: str | Sequence[str], *, by_digest: bool) -> list[Reference]:
    """Parse the names to push to (a comma-separated string or a list).

    Raises:
        InvalidArgument: a malformed name, or a tagged name with ``by_digest``
            (``can't push tagged ref <name> by digest``, BuildKit's text).
    """
    raw = names.split(",") if isinstance(names, str) else list(names)
    refs = []
    for n in (x.strip() for x in raw):
        if not n:
            continue
        if by_digest:
            ref = Reference.parse(n, default_tag=False)
            if ref.tag or ref.digest:
                raise InvalidArgument(f"can't push tagged ref {ref} by digest")
        else:
            ref = Reference.parse(n)
        refs.append(ref)
    if not refs:
        raise InvalidArgument(f"push names {names!r}: no name given")
    return refs


# -- the graph ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    desc: Descriptor
    present: bool
    parents: list[Descriptor] = field(default_factory=list)


@dataclass(slots=True)
class _Graph:
    blobs: dict[Digest, _Node] = field(default_factory=dict)
    manifests: list[_Node] = field(default_factory=list)  # post-order: children first


def _present(provider: Provider, dgst: Digest) -> bool:
    if isinstance(provider, _InfoProvider):
        try:
            provider.info(dgst)
            return True
        except NotFound:
            return False
    try:
        provider.open(dgst).close()
        return True
    except NotFound:
        return False


def _is_manifest(desc: Descriptor) -> bool:
    return mt.is_manifest(desc.media_type) or mt.is_index(desc.media_type)


def _walk(provider: Provider, root: Descriptor) -> _Graph:
    g = _Graph()
    seen: dict[Digest, _Node] = {}

    def visit(desc: Descriptor, parent: Descriptor | None) -> None:
        node = seen.get(desc.digest)
        if node is not None:
            if parent is not None:
                node.parents.append(parent)
            return
        node = _Node(desc=desc, present=_present(provider, desc.digest))
        if parent is not None:
            node.parents.append(parent)
        seen[desc.digest] = node
        if _is_manifest(desc):
            if node.present:
                for child in children(provider, desc):
                    visit(child, desc)
            g.manifests.append(node)
        else:
            g.blobs[desc.digest] = node

    visit(root, None)
    return g


def _non_distributable(desc: Descriptor) -> bool:
    return desc.media_type == mt.DOCKER_FOREIGN_LAYER or ".nondistributable." in desc.media_type


# -- the push -----------------------------------------------------------------------------


class _Push:
    def __init__(
        self,
        session: Session,
        provider: Provider,
        ref: Reference,
        graph: _Graph,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.session = session
        self.options: Options = session.options
        self.provider = provider
        self.ref = ref
        self.graph = graph
        self.on_progress = on_progress
        self.cancel = threading.Event()
        #: already_there asked the registry about the root under its tag (or digest) and it was
        #: not what we push: the root's own HEAD before its PUT would ask the same again
        self.root_checked = False
        self.key = source_key(ref)
        self._labels: dict[Digest, Mapping[str, str]] = {}
        self._sent = 0
        self._sent_lock = threading.Lock()
        #: a failed chunk of one blob keeps every later chunk of the push small
        self.trouble = Trouble()
        self.sources: dict[Digest, list[str]] = {}
        for d, node in graph.blobs.items():
            maps: list[Mapping[str, str] | None] = [self._labels_of(d), node.desc.annotations]
            for p in node.parents:
                maps.append(self._labels_of(p.digest))
                maps.append(p.annotations)
            self.sources[d] = _rank(
                distribution_sources(self.key, *maps, exclude=ref.repository), ref.repository
            )
        absent = {d for d, n in graph.blobs.items() if not n.present and not self.sources[d]}
        if absent:
            for d, repos in self._lazy_sources(absent).items():
                self.sources[d] = _rank(repos, ref.repository)
        mounts = {s for srcs in self.sources.values() for s in srcs}
        self.scopes = merge_scopes(
            [repository_scope(ref.repository, "pull", "push")],
            [repository_scope(s, "pull") for s in sorted(mounts)],
        )

    def _lazy_sources(self, absent: set[Digest]) -> dict[Digest, list[str]]:
        """Sources of blobs never downloaded: the labelled manifests in the store that list them.

        A lazy pull keeps the base manifest (labelled with where it came from) but not its
        layers; an image built on it lists those layers in a new, unlabelled manifest.
        """
        if not isinstance(self.provider, _Walker):
            return {}
        import json

        out: dict[Digest, list[str]] = {}
        try:
            infos = list(self.provider.walk([f'labels."{self.key}"']))
        except Error:
            return {}
        for info in infos:
            repos = distribution_sources(self.key, info.labels, exclude=self.ref.repository)
            if not repos or info.size > MAX_MANIFEST:
                continue
            try:
                with self.provider.open(info.digest) as f:
                    obj = json.loads(f.read(MAX_MANIFEST + 1))
            except (Error, ValueError, OSError):
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("layers"), list):
                continue
            for layer in obj["layers"]:
                d = layer.get("digest") if isinstance(layer, dict) else None
                if d in absent:
                    known = out.setdefault(Digest(d), [])
                    known.extend(r for r in repos if r not in known)
        return out

    def _labels_of(self, dgst: Digest) -> Mapping[str, str]:
        if dgst not in self._labels:
            labels: Mapping[str, str] = {}
            if isinstance(self.provider, _InfoProvider):
                try:
                    labels = self.provider.info(dgst).labels
                except NotFound:
                    labels = {}
            self._labels[dgst] = labels
        return self._labels[dgst]

    def _emit(self, p: Progress) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(p)
            except Exception:  # a broken listener must not break the push
                log.exception("progress callback failed")

    def _body(self, desc: Descriptor, started: float) -> BodySource:
        def read(offset: int, length: int) -> Iterator[bytes]:
            f: BinaryIO = self.provider.open(desc)
            try:
                f.seek(offset)
                pos, end = offset, offset + length
                while pos < end:
                    if self.cancel.is_set():
                        raise Cancelled(f"blob {desc.digest}: cancelled")
                    chunk = f.read(min(READ_CHUNK, end - pos))
                    if not chunk:
                        raise DigestMismatch(
                            f"blob {desc.digest}: local content ends at {pos}, "
                            f"expected {desc.size} bytes"
                        )
                    yield chunk
                    pos += len(chunk)
                    with self._sent_lock:
                        self._sent += len(chunk)
                    self._emit(
                        Progress(
                            id=str(desc.digest),
                            name=f"pushing {desc.digest}",
                            current=pos,
                            total=desc.size,
                            started=started,
                            parent=PUSH_PARENT,
                        )
                    )
            finally:
                f.close()

        return read

    def push_blob(self, node: _Node) -> PushOutcome:
        desc = node.desc
        if self.cancel.is_set():
            raise Cancelled(f"blob {desc.digest}: cancelled")
        started = time.time()
        base = self.session.endpoint(self.ref.api_host)
        sources = self.sources.get(desc.digest, [])
        start = Progress(
            id=str(desc.digest),
            name=f"pushing {desc.digest}",
            total=desc.size,
            started=started,
            parent=PUSH_PARENT,
        )
        self._emit(start)
        o = self.options
        try:
            flow = upload_blob(
                base,
                self.ref.repository,
                desc,
                self._body(desc, started),
                mount_from=sources,
                scopes=self.scopes,
                chunk_size=o.chunk_size,
                chunk_max=o.chunk_max,
                monolithic_max=o.monolithic_max,
                policy=o.retry,
                allow_upload=node.present,
                trouble=self.trouble,
            )
            outcome = self.session.run(flow, self.ref.api_host)
        except BaseException as exc:
            self._emit(replace(start, completed=time.time(), error=str(exc) or type(exc).__name__))
            raise
        log.debug("blob %s: %s", desc.digest, outcome.value)
        self._emit(
            replace(
                start,
                name=f"{outcome.value} {desc.digest}",
                current=desc.size,
                completed=time.time(),
            )
        )
        return outcome

    def _pushable(self) -> list[_Node]:
        return [n for n in self.graph.blobs.values() if not _non_distributable(n.desc)]

    def push_blobs(self) -> dict[Digest, PushOutcome]:
        nodes = self._pushable()
        results: dict[Digest, PushOutcome] = {}
        if not nodes:
            return results
        # imported here: a push that finds the image present never starts a pool
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(
            max_workers=min(self.options.jobs, len(nodes)), thread_name_prefix="pallet-push"
        ) as pool:
            futures: dict[Future[PushOutcome], _Node] = {
                pool.submit(self.push_blob, n): n for n in nodes
            }
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            first: BaseException | None = None
            for f in done:
                if f.exception() is not None and first is None:
                    first = f.exception()
            if first is not None:
                self.cancel.set()
                for f in pending:
                    f.cancel()
                wait(pending)
                raise first
            for f, n in futures.items():
                results[n.desc.digest] = f.result()
        return results

    def already_there(self, root: Descriptor) -> dict[Digest, PushOutcome] | None:
        """When the target already names ``root`` (its tag, or its digest when pushed by
        digest), every blob's outcome (``EXISTS``), else None. A registry stores a manifest only
        once everything it references is there, so nothing needs checking or sending, as with
        crane and with containers/image's ``OptimizeDestinationImageAlreadyExists``: one
        ``HEAD`` instead of one per blob and manifest; any doubt (no digest in the answer, an
        error) means the full push."""
        base = self.session.endpoint(self.ref.api_host)
        obj = self.ref.tag or str(root.digest)
        try:
            found = self.session.run(
                head_manifest(base, self.ref.repository, obj, scopes=self.scopes),
                self.ref.api_host,
            )
        except NotFound:
            self.root_checked = True
            return None
        except Error as exc:
            log.debug("manifest %s:%s: %s; pushing everything", self.ref.name, obj, exc)
            return None
        if found is None:  # a registry that did not say enough: the manifest push asks again
            return None
        if found.digest != root.digest or found.media_type != root.media_type:
            self.root_checked = True
            return None
        now = time.time()
        exists = PushOutcome.EXISTS
        out: dict[Digest, PushOutcome] = {}
        for node in self._pushable():
            d = node.desc
            out[d.digest] = exists
            name = f"{exists.value} {d.digest}"
            self._emit(finished(str(d.digest), name, d.size, parent=PUSH_PARENT, started=now))
        what = f"{self.ref.name}:{obj}" if self.ref.tag else f"{self.ref.name}@{obj}"
        self._emit(
            finished(
                f"manifest {root.digest}",
                f"{exists.value} manifest {what}",
                root.size,
                parent=f"pushing manifest for {self.ref}",
                started=now,
            )
        )
        return out

    def _manifest_bytes(self, desc: Descriptor) -> bytes:
        with self.provider.open(desc) as f:
            data = f.read(MAX_MANIFEST + 1)
        if len(data) > MAX_MANIFEST:
            raise InvalidArgument(f"manifest {desc.digest}: larger than {MAX_MANIFEST} bytes")
        return data

    def push_manifests(self, root: Descriptor, tag: str) -> dict[Digest, PushOutcome]:
        base = self.session.endpoint(self.ref.api_host)
        out: dict[Digest, PushOutcome] = {}
        for node in self.graph.manifests:
            desc = node.desc
            is_root = desc.digest == root.digest
            if not node.present:
                # a child manifest never fetched (one platform of a pulled index): the target
                # must have it already
                try:
                    self.session.run(
                        head_manifest(
                            base, self.ref.repository, str(desc.digest), scopes=self.scopes
                        ),
                        self.ref.api_host,
                    )
                except NotFound:
                    raise FailedPrecondition(
                        f"manifest {desc.digest}: not in the local store and not in "
                        f"{self.ref.name}; pull it (all platforms) before pushing"
                    ) from None
                out[desc.digest] = PushOutcome.EXISTS
                continue
            data = self._manifest_bytes(desc)
            flow = push_manifest(
                base,
                self.ref.repository,
                desc,
                data,
                tag=tag if is_root else "",
                scopes=self.scopes,
                check_exists=not (is_root and self.root_checked),
            )
            started = time.time()
            what = f"{self.ref.name}:{tag}" if is_root and tag else f"{self.ref.name}@{desc.digest}"
            p = Progress(
                id=f"manifest {desc.digest}",
                name=f"pushing manifest {what}",
                total=desc.size,
                started=started,
                parent=f"pushing manifest for {self.ref}",
            )
            self._emit(p)
            try:
                out[desc.digest] = self.session.run(flow, self.ref.api_host)
            except BaseException as exc:
                self._emit(replace(p, completed=time.time(), error=str(exc) or type(exc).__name__))
                raise
            self._emit(replace(p, current=desc.size, completed=time.time()))
        return out

    def record_sources(self) -> None:
        """Add the pushed repository to every local blob's distribution-source label."""
        if not isinstance(self.provider, _LabelManager):
            return
        digests = [d for d, n in self.graph.blobs.items() if n.present]
        digests += [n.desc.digest for n in self.graph.manifests if n.present]
        for d in digests:
            try:
                info = self.provider.info(d)
                repos = set(distribution_sources(self.key, info.labels))
                if self.ref.repository in repos:
                    continue
                repos.add(self.ref.repository)
                value = ",".join(sorted(repos))
                self.provider.update(
                    replace(info, labels={self.key: value}), [f"labels.{self.key}"]
                )
            except Error as exc:
                log.warning("blob %s: could not record distribution source: %s", d, exc)

    @property
    def bytes_sent(self) -> int:
        with self._sent_lock:
            return self._sent


def push_content(
    session: Session,
    provider: Provider,
    root: Descriptor,
    refs: Sequence[Reference],
    *,
    on_progress: ProgressCallback | None = None,
) -> list[PushResult]:
    """Push the graph under ``root`` to each of ``refs`` (already parsed), one after another.

    A ref with a tag gets the tag on the root; a ref without tag and digest is pushed by digest;
    a ref with a digest must name the root's digest.

    Raises:
        InvalidArgument: a ref's digest is not the root's.
        FailedPrecondition: the root is not in the store, or a blob is neither local nor mountable.
        RegistryError, Unavailable: the registry refused or could not be reached in time.
    """
    if not _present(provider, root.digest):
        raise FailedPrecondition(f"content {root.digest}: the image root is not in the store")
    results = []
    for ref in refs:
        if ref.digest is not None and ref.digest != root.digest:
            raise InvalidArgument(f"reference {ref}: digest differs from the image {root.digest}")
        graph = _walk(provider, root)
        job = _Push(session, provider, ref, graph, on_progress)
        parent = Progress(id=PUSH_PARENT, name=PUSH_PARENT, started=time.time())
        job._emit(parent)
        try:
            present = job.already_there(root)
            blobs = job.push_blobs() if present is None else present
        except BaseException as exc:
            job._emit(replace(parent, completed=time.time(), error=str(exc) or type(exc).__name__))
            raise
        job._emit(replace(parent, completed=time.time()))
        if present is None:
            manifests = job.push_manifests(root, ref.tag)
        else:
            manifests = {n.desc.digest: PushOutcome.EXISTS for n in graph.manifests}
        job.record_sources()
        name = str(Reference(registry=ref.registry, repository=ref.repository, tag=ref.tag))
        results.append(
            PushResult(
                name=name,
                descriptor=root,
                blobs=blobs,
                manifests=manifests,
                bytes_sent=job.bytes_sent,
            )
        )
    return results


def push(
    provider: Provider,
    root: Descriptor,
    names: str | Sequence[str],
    *,
    by_digest: bool = False,
    options: Options | None = None,
    on_progress: ProgressCallback | None = None,
    session: Session | None = None,
) -> list[PushResult]:
    """Push the image ``root`` (from ``provider``) to every name in ``names``.

    Args:
        provider: the content store (with ``info``/``update`` it also reads and records
            distribution-source labels for mounts).
        root: the manifest or index descriptor.
        names: ``"host/repo:tag"`` or a comma-separated string or list of them; a name without
            a tag gets ``:latest`` unless ``by_digest``.
        by_digest: push without tagging (the exporter's ``push-by-digest``).
        options: jobs, chunk sizes, retries, CA bundle, credentials, insecure hosts.
        on_progress: receives :class:`~pallet.progress.Progress` per blob (bytes, start time).
        session: a :class:`~pallet.remote.client.Session` to share (else one is made).

    Raises:
        InvalidArgument: a malformed name; a tagged name with ``by_digest``.
    """
    refs = parse_push_names(names, by_digest=by_digest)
    if session is not None:
        return push_content(session, provider, root, refs, on_progress=on_progress)
    from .client import Session

    with Session(options) as s:
        return push_content(s, provider, root, refs, on_progress=on_progress)


def push_by_digest(
    provider: Provider,
    root: Descriptor,
    names: str | Sequence[str],
    *,
    options: Options | None = None,
    on_progress: ProgressCallback | None = None,
    session: Session | None = None,
) -> list[PushResult]:
    """:func:`push` with ``by_digest=True``: no tag is written; tagged names are refused."""
    return push(
        provider,
        root,
        names,
        by_digest=True,
        options=options,
        on_progress=on_progress,
        session=session,
    )
