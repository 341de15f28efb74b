"""The archive calls of :class:`pallet.Store`: save, load, unpack.

* ``save`` plans the archive first (every blob present, names valid, one platform for a Docker
  archive of an index), then streams it; a file is written beside its destination and renamed
  into place, so a failed save leaves no partial archive under the destination's name.
* ``load`` writes every blob under a lease that expires on its own, names the images only after
  everything verified, and on failure deletes the lease synchronously: nothing of a bad archive
  stays in the store.
* ``unpack`` applies an image's layers into a directory through the root-confined applier.

Errors from the file system on a path the caller named are pallet errors whose text is the
path and the system's reason (``/x/app.tar: No such file or directory``).
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from ._lookup import find_image, parse_platform
from ._types import ArchiveImage, UnpackResult
from .errors import Error, FailedPrecondition, InvalidArgument, NotFound

if TYPE_CHECKING:
    from ._backend import Backend
    from .oci.descriptor import Platform

__all__ = ["FORMATS", "load", "save", "unpack"]

#: the archive formats ``save`` writes
FORMATS = ("oci", "docker")

StrPath = str | os.PathLike[str]


def _os_error(exc: OSError) -> Error:
    """``exc`` as a pallet error: the path and the system's reason, as the command line has
    always printed them."""
    reason = exc.strerror or str(exc)
    text = f"{exc.filename}: {reason}" if exc.filename is not None else reason
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return NotFound(text)
    return FailedPrecondition(text)


def _check_stream(what: str, f: object, method: str) -> None:
    """InvalidArgument unless ``f`` is a binary file (has ``method``, is not a text stream)."""
    if isinstance(f, io.TextIOBase):
        raise InvalidArgument(f"{what} {f!r}: a text stream; want a binary file (bytes)")
    if not callable(getattr(f, method, None)):
        raise InvalidArgument(f"{what} {f!r}: want a path or a binary file")


def _stream_error(what: str, f: object, exc: OSError) -> Error:
    """``exc``, raised by the caller's stream ``f``, as a pallet error naming the stream."""
    name = getattr(f, "name", None)
    shown = name if isinstance(name, str) else repr(f)
    return FailedPrecondition(f"{what} {shown}: {exc.strerror or exc}")


def _archive_names(name: str) -> tuple[str, ...]:
    """The image's store name, if it can be written into an archive (a reference)."""
    from .oci.reference import Reference

    try:
        Reference.parse(name)
    except InvalidArgument:
        return ()
    return (name,)


def save(
    backend: Backend,
    names: str | Sequence[str],
    dest: StrPath | IO[bytes],
    *,
    format: str,
    platform: str | Platform | None,
) -> list[ArchiveImage]:
    from .layout import ArchiveImage as Entry
    from .layout import Format, plan_layout, write_archive

    if format not in FORMATS:
        raise InvalidArgument(f"archive format {format!r}: want one of {', '.join(FORMATS)}")
    refs = [names] if isinstance(names, str) else list(names)
    want = parse_platform(platform)
    entries = []
    for ref in refs:
        img = find_image(backend.images, ref)
        if not _archive_names(img.name):
            raise InvalidArgument(f"image {img.name}: its name is not an image reference")
        entries.append(Entry(target=img.target, names=(img.name,)))
    plan = plan_layout(backend.content, entries, format=Format(format), platform=want)
    if isinstance(dest, str | os.PathLike):
        path = Path(dest)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                write_archive(f, backend.content, plan)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.filename == str(tmp):  # the reader knows the destination, not our temporary
                exc.filename = str(path)
            raise _os_error(exc) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    else:
        _check_stream("archive destination", dest, "write")
        try:
            write_archive(dest, backend.content, plan)
            dest.flush()
        except OSError as exc:
            raise _stream_error("archive destination", dest, exc) from None
    return [ArchiveImage(target=r.target, names=r.names, format=format) for r in plan.images]


def load(backend: Backend, src: StrPath | IO[bytes], *, tag: str | None) -> list[ArchiveImage]:
    from datetime import UTC, datetime, timedelta

    from .labels import GC_EXPIRE
    from .layout import LoadResult, load_archive, load_directory
    from .leases import new_id

    if not isinstance(src, str | os.PathLike):
        _check_stream("archive source", src, "read")
    expire = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    lease = backend.leases.create(new_id("pallet-load"), {GC_EXPIRE: expire}).id
    ok = False
    try:
        res: LoadResult
        if isinstance(src, str | os.PathLike):
            if os.path.isdir(src):
                res = load_directory(src, backend.content, backend.images, lease=lease, tag=tag)
            else:
                try:
                    f = open(src, "rb")  # noqa: SIM115 (closed by the with below)
                except OSError as exc:
                    raise _os_error(exc) from None
                with f:
                    try:
                        res = load_archive(f, backend.content, backend.images, lease=lease, tag=tag)
                    except OSError as exc:
                        raise _os_error(exc) from None
        else:
            stream = cast(BinaryIO, src)
            try:
                res = load_archive(stream, backend.content, backend.images, lease=lease, tag=tag)
            except OSError as exc:
                raise _stream_error("archive source", src, exc) from None
        ok = True
    finally:
        # on failure, collect what was written: nothing of the archive stays
        backend.leases.delete(lease, sync=not ok)
    return [ArchiveImage(target=i.target, names=i.names, format=res.format) for i in res.images]


def unpack(
    backend: Backend,
    ref: str,
    dest: StrPath,
    *,
    platform: str | Platform | None,
    on_warning: Callable[[str], None] | None,
) -> UnpackResult:
    from .layout import unpack as unpack_image

    if not isinstance(dest, str | os.PathLike):
        raise InvalidArgument(f"unpack destination {dest!r}: want a directory path")
    want = parse_platform(platform)
    img = find_image(backend.images, ref)
    try:
        res = unpack_image(backend.content, img.target, dest, platform=want, on_warning=on_warning)
    except OSError as exc:
        raise _os_error(exc) from None
    return UnpackResult(
        manifest=res.manifest,
        layers=res.layers,
        diff_ids=tuple(str(d) for d in res.diff_ids),
        warnings=res.warnings,
    )
