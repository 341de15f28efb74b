"""The parts of a :class:`pallet.Store` reached as attributes: ``store.content``
(:class:`ContentStore`) and ``store.leases`` (:class:`LeaseManager`).

Both are views on the store they came from: they hold no state of their own, work on the
embedded store and on containerd alike, and are as thread-safe as the store. The work is done
by :mod:`pallet._manage`, imported on the first call.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from ._backend import Backend
    from ._types import ContentInfo, IngestStatus, Lease

__all__ = ["ContentStore", "LeaseManager"]


class ContentStore:
    """The blobs of a store, by digest, and the ingests that write them (``pallet content``).

    Example::

        with pallet.Store(root="/tmp/pallet-doc") as store:
            dgst = store.content.ingest("readme", b"hello\\n", labels={"k": "v"})
            assert store.content.read(dgst) == b"hello\\n"
            print(store.content.info(dgst).size)   # 6
    """

    __slots__ = ("_b",)

    def __init__(self, backend: Backend) -> None:
        self._b = backend

    @property
    def _backend(self) -> Backend:
        return self._b.live()

    def list(self, filters: Sequence[str] | None = ()) -> builtins.list[ContentInfo]:
        """Every blob matching all ``filters`` (containerd's syntax: ``labels."k"==v``,
        ``digest~=^sha256:ab``), as ``pallet content ls`` lists them.

        Example::

            for info in store.content.list(['labels."containerd.io/uncompressed"']):
                print(info.digest, info.size)

        Raises:
            InvalidArgument: a filter does not parse.
        """
        from . import _manage

        return _manage.content_list(self._backend, filters)

    def info(self, digest: str) -> ContentInfo:
        """A blob's size, times and labels.

        Example::

            store.content.info("sha256:…").labels

        Raises:
            InvalidArgument: ``digest`` is not a digest.
            NotFound: the store has no such blob.
        """
        from . import _manage

        return _manage.content_info(self._backend, digest)

    def open(self, digest: str) -> BinaryIO:
        """A seekable binary reader of a blob; close it (or use ``with``) when done.

        Example::

            with store.content.open("sha256:…") as f:
                head = f.read(512)

        Raises:
            InvalidArgument: ``digest`` is not a digest.
            NotFound: the store has no such blob.
        """
        from . import _manage

        return _manage.content_open(self._backend, digest)

    def read(self, digest: str) -> bytes:
        """A whole blob's bytes (for manifests and configs; :meth:`open` streams).

        Example::

            manifest = json.loads(store.content.read(image.digest))
        """
        with self.open(digest) as f:
            return f.read()

    def remove(self, *digests: str) -> None:
        """Delete blobs, in order (whatever still references them notwithstanding: a later
        ``fsck`` reports an image left incomplete).

        Example::

            store.content.remove("sha256:…")

        Raises:
            NotFound: a blob is not there (those before it are deleted).
        """
        from . import _manage

        for d in digests:
            _manage.content_remove(self._backend, d)

    def label(self, digest: str, labels: Mapping[str, str]) -> ContentInfo:
        """Set labels on a blob; an empty value removes the key. Returns the new info.

        Example::

            store.content.label("sha256:…", {"team": "infra", "old": ""})

        Raises:
            InvalidArgument: a label key or value is not allowed (containerd's rules).
            NotFound: the store has no such blob.
        """
        from . import _manage

        return _manage.label(self._backend, digest, labels)

    def ingest(
        self,
        ref: str,
        data: bytes | bytearray | memoryview | BinaryIO,
        *,
        expected_size: int = 0,
        expected_digest: str | None = None,
        labels: Mapping[str, str] | None = None,
        lease: str | Lease | None = None,
    ) -> str:
        """Write ``data`` (bytes, or a binary file read to its end) as a blob; returns its
        digest. An ingest interrupted under the same ``ref`` resumes where it stopped (``data``
        is skipped up to there). With ``expected_digest``, a blob the store has already is
        success; without, it raises :class:`pallet.AlreadyExists`. ``lease`` holds the blob
        until the lease goes.

        Example::

            with open("layer.tar.gz", "rb") as f:
                dgst = store.content.ingest("upload-1", f, expected_digest="sha256:…")

        Raises:
            DigestMismatch: the data's size or digest is not the expected one (the ingest is
                kept; :meth:`abort` drops it).
            Unavailable: another writer holds ``ref``.
            InvalidArgument: an empty ``ref``, a bad digest or label.
        """
        from . import _manage

        lid = lease if isinstance(lease, str) or lease is None else lease.id
        return _manage.ingest(
            self._backend,
            ref,
            data,
            expected_size=expected_size,
            expected_digest=expected_digest,
            labels=labels,
            lease=lid,
        )

    def active(self, filters: Sequence[str] | None = ()) -> builtins.list[IngestStatus]:
        """Ingests in progress or interrupted (``ref~=^upload-``).

        Example::

            [st.ref for st in store.content.active()]
        """
        from . import _manage

        return _manage.active(self._backend, filters)

    def abort(self, *refs: str) -> None:
        """Drop ingests and the data they wrote, in order.

        Example::

            store.content.abort("upload-1")

        Raises:
            NotFound: no ingest has that ref (those before it are dropped).
        """
        from . import _manage

        for ref in refs:
            _manage.abort(self._backend, ref)

    def __repr__(self) -> str:
        return f"<pallet.ContentStore {self._b.where}>"


class LeaseManager:
    """The leases of a store (``pallet leases``): while a lease exists, the blobs, ingests and
    snapshots it holds survive garbage collection.

    Example::

        with store.leases.temporary() as lease:
            store.content.ingest("upload-1", data, lease=lease)
            ...   # name the blob in an image before the lease goes
    """

    __slots__ = ("_b",)

    def __init__(self, backend: Backend) -> None:
        self._b = backend

    @property
    def _backend(self) -> Backend:
        return self._b.live()

    def list(self, filters: Sequence[str] | None = ()) -> builtins.list[Lease]:
        """Every lease matching all ``filters`` (``id~=^pallet-``, ``labels."k"==v``), oldest
        first, with the resources each holds.

        Example::

            for lease in store.leases.list():
                print(lease.id, len(lease.resources))
        """
        from . import _manage

        return _manage.lease_list(self._backend, filters)

    def create(
        self,
        id: str | None = None,
        *,
        expires: timedelta | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Lease:
        """A new lease (``id`` default: a fresh ``pallet-<time>-<random>``). With ``expires``
        it carries a ``containerd.io/gc.expire`` label: the collector removes it after that
        long even if nobody deletes it.

        Example::

            lease = store.leases.create(expires=timedelta(hours=24), labels={"ci": "job-7"})

        Raises:
            AlreadyExists: a lease has that id.
            InvalidArgument: an empty id, or a label containerd would refuse.
        """
        from . import _manage

        return _manage.lease_create(self._backend, id, expires=expires, labels=labels)

    def remove(self, *ids: str, sync: bool = False) -> None:
        """Delete leases, in order; with ``sync`` the last delete collects garbage before it
        returns.

        Example::

            store.leases.remove(lease.id, sync=True)

        Raises:
            NotFound: no lease has that id (those before it are deleted).
        """
        from . import _manage

        last = len(ids) - 1
        for idx, lid in enumerate(ids):
            _manage.lease_remove(self._backend, lid, sync=sync and idx == last)

    def temporary(
        self, *, expires: timedelta = timedelta(hours=1), labels: Mapping[str, str] | None = None
    ) -> AbstractContextManager[Lease]:
        """A lease for the ``with`` block: created on entry, deleted on exit, and expiring on
        its own after ``expires`` should the process die inside the block.

        Example::

            with store.leases.temporary(expires=timedelta(minutes=10)) as lease:
                dgst = store.content.ingest("upload-1", data, lease=lease)
        """
        return self._temporary(expires, labels)

    @contextmanager
    def _temporary(self, expires: timedelta, labels: Mapping[str, str] | None) -> Iterator[Lease]:
        from . import _manage

        with _manage.lease_temporary(self._backend, expires=expires, labels=labels) as lease:
            yield lease

    def __repr__(self) -> str:
        return f"<pallet.LeaseManager {self._b.where}>"
