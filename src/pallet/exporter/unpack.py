"""Unpacking an exported image: the unpacker protocols, pallet's own unpacker, and the tee.

``unpack=true`` makes the image's layer chain present as snapshots, keyed by chain ID, so that a
container can start from it (containerd's ``rootfs.ApplyLayers``). The exporter sees its
unpacker as an :class:`Unpacker`; one that is also :class:`Streaming` lets the exporter apply
each new layer while computing it (:class:`TeeApply`), instead of reading every blob back
afterwards. :class:`NativeUnpacker` does both for any snapshotter whose active snapshots are
plain directories; :class:`SnapshotTarget` is the active snapshot being filled.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, TypeGuard

from ..compression.pipeline import Sink
from ..content import Store
from ..errors import AlreadyExists, Error
from ..oci.digest import Digest
from ..rootfs import Layer as RootfsLayer
from ..rootfs import apply_layers
from ..snapshots import Snapshotter

__all__ = [
    "NativeUnpacker",
    "SnapshotTarget",
    "Streaming",
    "TeeApply",
    "UnpackTarget",
    "Unpacker",
    "bind_dir",
    "is_streaming",
]


class Unpacker(Protocol):
    """Makes a chain of layers present as snapshots, by chain ID (``rootfs.ApplyLayers``)."""

    @property
    def snapshotter(self) -> str:
        """The snapshotter's name, as in ``containerd.io/gc.ref.snapshot.<name>``."""
        ...

    def __call__(self, layers: Sequence[RootfsLayer], lease: str) -> Digest:
        """Apply ``layers`` under ``lease``; returns the top chain ID."""
        ...


class UnpackTarget(Protocol):
    """An active snapshot being filled while its layer is computed (see :class:`Streaming`)."""

    #: the directory to apply the layer into
    dir: str

    def commit(self, chain: Digest) -> None:
        """Commit as ``chain`` (losing a race to another writer counts as success)."""
        ...

    def abort(self) -> None:
        """Remove the active snapshot."""
        ...


class Streaming(Unpacker, Protocol):
    """An :class:`Unpacker` that can also be filled while a layer is computed: the exporter
    tees the layer's tar stream into pallet's applier, so unpacking costs no second pass."""

    def begin(self, parent: str, lease: str) -> UnpackTarget | None:
        """An active snapshot on top of chain ``parent``, or None when it cannot be written
        from here (the exporter then unpacks from the blob afterwards)."""
        ...


def is_streaming(unpacker: Unpacker) -> TypeGuard[Streaming]:
    """Whether ``unpacker`` is also :class:`Streaming` (has ``begin``)."""
    return hasattr(unpacker, "begin")


@dataclass(slots=True)
class SnapshotTarget:
    """:class:`UnpackTarget` over any snapshotter whose active snapshot is a bind mount."""

    snapshotter: Snapshotter
    key: str
    dir: str
    lease: str

    @classmethod
    def prepare(
        cls, sn: Snapshotter, parent: str, lease: str, local: Callable[[Sequence[Any]], str | None]
    ) -> SnapshotTarget | None:
        """An active snapshot on ``parent`` whose mounts ``local`` maps to a directory, else
        None (and no snapshot is left behind)."""
        key = f"extract-{time.time_ns()}-{os.urandom(4).hex()} export"
        mounts = sn.prepare(key, parent, lease=lease)
        d = local(mounts)
        if d is None:
            with contextlib.suppress(Error):
                sn.remove(key)
            return None
        return cls(sn, key, d, lease)

    def commit(self, chain: Digest) -> None:
        try:
            self.snapshotter.commit(str(chain), self.key, lease=self.lease)
        except AlreadyExists:
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(Error):
            self.snapshotter.remove(self.key)


def bind_dir(mounts: Sequence[Any]) -> str | None:
    """The directory of a single writable bind mount, else None."""
    if len(mounts) != 1 or mounts[0].type not in ("bind", "rbind") or mounts[0].readonly:
        return None
    d = str(mounts[0].source)
    return d if os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK) else None


@dataclass(frozen=True, slots=True)
class NativeUnpacker:
    """Unpack with pallet's own applier into ``target`` (reading blobs from ``content``)."""

    target: Snapshotter
    content: Store
    on_warning: Callable[[str], None] | None = None

    @property
    def snapshotter(self) -> str:
        return self.target.name

    def __call__(self, layers: Sequence[RootfsLayer], lease: str) -> Digest:
        return apply_layers(
            self.target, self.content, layers, lease=lease, on_warning=self.on_warning
        )

    def begin(self, parent: str, lease: str) -> UnpackTarget | None:
        return SnapshotTarget.prepare(self.target, parent, lease, bind_dir)


class TeeApply:
    """Applies a tar stream into a directory on a thread while the producer writes it.

    The producer's sink is wrapped (:meth:`wrap`): every write goes to the layer pipeline and,
    through a pipe with a 1 MiB buffer, to :func:`~pallet.archive.apply.apply_tar` running on
    its own thread. On exit the pipe is closed and the thread joined; its error (if any) is
    raised, and :attr:`diff_id` is what the applier hashed.
    """

    def __init__(self, root: str, on_warning: Callable[[str], None]) -> None:
        self.root = root
        self.on_warning = on_warning
        self.diff_id: Digest | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._w: BinaryIO | None = None

    def __enter__(self) -> TeeApply:
        from ..archive.apply import apply_tar

        r, w = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
        reader = os.fdopen(r, "rb", buffering=1 << 20)
        self._w = os.fdopen(w, "wb", buffering=1 << 20)

        def run() -> None:
            try:
                self.diff_id = apply_tar(reader, self.root, on_warning=self.on_warning).diff_id
            except BaseException as exc:
                self.error = exc
            finally:
                reader.close()

        self._thread = threading.Thread(target=run, name="pallet-unpack", daemon=True)
        self._thread.start()
        return self

    def wrap(self, sink: Sink) -> Sink:
        tee = self

        class _Both:
            def write(self, data: bytes | bytearray | memoryview, /) -> object:
                n = sink.write(data)
                if tee.error is None and tee._w is not None:
                    try:
                        tee._w.write(data)
                    except (BrokenPipeError, ValueError):
                        tee._w = None  # the applier stopped; its error is raised on exit
                return n

        return _Both()

    def __exit__(self, *exc: object) -> None:
        w, self._w = self._w, None
        if w is not None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                w.close()
        if self._thread is not None:
            self._thread.join()
        if exc[0] is None and self.error is not None:
            raise self.error
