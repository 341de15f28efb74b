"""Apply an uncompressed OCI layer tar stream to a directory, safely.

Theory of operation
===================

``apply_tar(stream, root)`` makes one pass over the stream with
:class:`~pallet.archive.tarreader.TarReader`, which feeds every chunk to the diff-id hasher as it
arrives (so each byte is hashed exactly once, trailing padding after the end-of-archive marker
included), parses the headers (ustar, PAX, GNU) out of one reusable 1 MiB buffer and hands
regular-file data from that buffer to the new file with ``os.write``; nothing is buffered beyond
one chunk. A stream that ends at an entry boundary without the end-of-archive marker is applied
as far as it goes, as Go's ``archive/tar`` reads it.

Each entry is then applied as containerd's ``archive.Apply`` does (``applyNaive``), see
``spec/containerd.md`` §4.2:

1. The name is cleaned lexically (``.``, empty components dropped, ``..`` popped and clamped at
   the root). A name that cleans to the root itself (``.``, ``./``, ``/``, ``..``) is ignored.
2. The *parent* is resolved inside the root (below); the last component is never followed.
3. Whiteouts: ``.wh..wh..opq`` deletes every existing child of the directory that was not
   unpacked from this layer, recursively, so entries of this layer before and after the marker
   survive; ``.wh.<x>`` removes ``<x>``; ``.wh.``, ``.wh..`` and ``.wh...`` are refused; other
   ``.wh..wh.*`` names (AUFS metadata) are skipped with a warning. Whiteouts are never written.
4. An existing path is removed first, unless a directory replaces a directory (then only the
   metadata is merged). Removing a directory is recursive and never follows symlinks.
5. Create by type: directories, regular files, hard links (target resolved in the root exactly as
   a parent path is, then ``linkat`` *without* ``AT_SYMLINK_FOLLOW``), symlinks (target
   verbatim), FIFOs, and character/block devices (only as root; skipped with a warning
   otherwise). Unknown entry types are refused.
6. Metadata in containerd's order: ``lchown`` (numeric ids; root only, else one warning), xattrs
   from ``SCHILY.xattr.*`` (``trusted.*`` refused with a warning; ENOTSUP/EPERM/EACCES skipped
   with a warning), ``chmod`` including setuid/setgid/sticky (after chown, which clears them;
   never on symlinks), then times: mtime, atime = max(atime, mtime), both clamped to epoch when
   out of range, never following a symlink. Directory times are set after everything else, in
   entry order, because creating children would bump them.

Missing parent directories are created with mode 0755. Invalid archives raise
``InvalidArgument("layer entry <name>: <what>")``; unsupported inputs (GNU sparse files) raise
``Unsupported``; other file-system failures raise ``FailedPrecondition``. After any error the root
is left partially modified and must be discarded by the caller (containerd removes the snapshot).

Safety argument
===============

Threat model: the layer's bytes are hostile; the caller owns ``root`` and nothing else writes
below it during the apply (other processes renaming our directories elsewhere are out of scope).

Claim: no operation performed for a layer creates, removes or modifies anything outside ``root``.

* Every file-system call is relative to a directory file descriptor (``dir_fd=``/``*at``), with a
  single-component name (never containing ``/``, never ``..``; ``.`` only to reopen a directory
  for reading). The starting descriptor is the root itself, opened once. The one exception is
  xattrs on symlinks, nodes and hard links (Linux has no ``lsetxattrat``): they use
  ``/proc/self/fd/<dirfd>/<name>`` with ``XATTR_NOFOLLOW``, which the kernel resolves through our
  descriptor (without ``/proc``: the root path plus the resolved real path, still no-follow).
* A directory descriptor is only ever obtained by ``openat(dirfd, name, O_PATH | O_DIRECTORY |
  O_NOFOLLOW)`` from another such descriptor (or by creating the directory there first), so every
  descriptor designates a directory reached from the root by real (non-symlink) directory steps.
  Nothing is ever renamed, so such a directory stays inside the root.
* Symlinks in a parent path are not left to the kernel: ``O_NOFOLLOW`` makes the open fail, we
  read the link and continue the walk ourselves, evaluating the target as if the root were ``/``:
  an absolute target restarts at the root descriptor, ``..`` pops one real component and stops at
  the root (it is a lexical pop on the already-resolved real path, not a kernel ``..``). At most
  255 links are followed per resolution. This is continuity's ``fs.RootPath``, but performed on
  descriptors, so even a component swapped for a symlink after it was checked is not followed.
* The final component is never followed: files are created with ``O_CREAT | O_EXCL |
  O_NOFOLLOW`` (so never opened through an existing link or hard link), ``mkdir``/``mknod``/
  ``symlink``/``linkat`` fail on an existing name (which we then remove with ``unlinkat`` or an
  fd-based ``rmtree``), ``chown``, ``utime`` and xattrs on non-fd objects use
  ``AT_SYMLINK_NOFOLLOW``, chmod of regular files and directories is ``fchmod`` on a descriptor
  opened ``O_NOFOLLOW``, and the only path-based ``fchmodat`` (which would follow a final
  symlink) targets an object we have just created with ``mknod``/``mkdir`` or, for hard links,
  just ``lstat``-ed as a non-symlink; nothing else writes the tree in between.
* Hard link targets are resolved with the same in-root walk and linked with ``linkat(flags=0)``,
  which links a symlink itself rather than its target (the CVE-2021-32760 and
  python/cpython#151558 classes); there is no "extract the data instead" fallback.
* Directory times, applied at the end, re-walk the recorded *real* path with ``O_NOFOLLOW`` and
  use ``AT_SYMLINK_NOFOLLOW``; if the tree changed meanwhile the worst case is a timestamp on some
  other object inside the root.
* The resolver caches descriptors (keyed by cleaned name and by real path) for speed. The cache is
  dropped whenever a directory or symlink is removed, so later names resolve against the current
  tree; staleness could only misplace data *inside* the root, never outside (previous bullets).
"""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final

from ..compression import decompressed_reader
from ..content import Provider
from ..errors import DigestMismatch, FailedPrecondition, InvalidArgument, NotFound, Unsupported
from ..oci.descriptor import Descriptor
from ..oci.digest import Digest
from .tar import BLKTYPE, CHRTYPE, DIRTYPE, FIFOTYPE, LNKTYPE, REGTYPE, SYMTYPE
from .tar import display as _display
from .tarreader import SPARSETYPE, Entry, FormatError, TarReader

__all__ = ["ApplyResult", "apply_blob", "apply_tar"]

_MAX_HOPS: Final = 255  # symlinks followed per resolution (continuity fs.RootPath)
_MAX_WARNINGS: Final = 1000
_MAX_TIME_NS: Final = (1 << 63) - 1

_WH_PREFIX: Final = b".wh."
_WH_META: Final = b".wh..wh."
_WH_OPAQUE: Final = b".wh..wh..opq"

_O_DIR_PATH: Final = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR_READ: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEW_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# errno values that mean "this archive cannot be applied as written" rather than "the disk failed"
_ARCHIVE_ERRNOS: Final = frozenset(
    (
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.ENOTEMPTY,
        errno.ENOENT,
        errno.EPERM,
        errno.EMLINK,
        errno.EXDEV,
    )
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyResult:
    """What :func:`apply_tar` read and what it could not reproduce."""

    diff_id: Digest  # digest of the whole uncompressed stream, drained to the end
    size: int  # bytes of the uncompressed stream
    warnings: tuple[str, ...]


class _EntryError(Exception):
    """The current entry is invalid; becomes ``InvalidArgument("layer entry <name>: ...")``."""


# ---------------------------------------------------------------------------------------------
# applying


def _times(e: Entry) -> tuple[int, int]:
    """(atime, mtime) in ns as containerd sets them: atime is at least mtime, and a time the
    kernel cannot take becomes the epoch."""
    mtime = e.mtime if 0 <= e.mtime <= _MAX_TIME_NS else 0
    atime = e.atime if e.atime is not None and e.atime > mtime else mtime
    return (atime if atime <= _MAX_TIME_NS else 0), mtime


def _clean(name: bytes) -> list[bytes]:
    """Lexical clean, rooted: drop empty and ``.`` components, pop ``..`` (clamped at root)."""
    out: list[bytes] = []
    for c in name.split(b"/"):
        if c == b"" or c == b".":
            continue
        if c == b"..":
            if out:
                out.pop()
            continue
        out.append(c)
    return out


def _umask() -> int | None:
    """The process umask, read from ``/proc`` (``os.umask`` can only read it by setting it,
    which would race with other threads creating files); None where unknown."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


class _Applier:
    def __init__(
        self,
        root: str | os.PathLike[str],
        reader: TarReader,
        on_warning: Callable[[str], None] | None,
    ) -> None:
        self._reader = reader
        self._on_warning = on_warning
        self.warnings: list[str] = []
        self._root_b = os.fsencode(root)
        try:
            self._rootfd = os.open(self._root_b, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"layer root {os.fsdecode(root)}: does not exist") from None
        except NotADirectoryError:
            raise InvalidArgument(f"layer root {os.fsdecode(root)}: not a directory") from None
        self._euid = os.geteuid()
        self._egid = os.getegid()
        self._privileged = self._euid == 0
        # a new file takes the process's ids when its directory's group is ours, so the common
        # case (root unpacking root:root files) needs no fchown; dir fd -> its st_gid
        self._dir_gid: dict[int, int] = {}
        self._umask = _umask()
        self._warned_owner = False
        # descriptor cache: real path (b"a/b", b"" = root) -> O_PATH dir fd; cleaned name -> real
        self._fds: dict[bytes, int] = {b"": self._rootfd}
        self._lex: dict[bytes, bytes] = {b"": b""}
        self._stale: list[int] = []
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self._fd_limit = 4096 if soft == resource.RLIM_INFINITY else max(32, min(4096, soft // 4))
        # real paths written by this layer, and their ancestors (for opaque whiteouts)
        self._unpacked: set[bytes] = set()
        self._unpacked_anc: set[bytes] = set()
        # (real path, atime ns, mtime ns, mode to set at the end or -1)
        self._dir_times: list[tuple[bytes, int, int, int]] = []
        self._proc_fd = os.path.isdir("/proc/self/fd")

    # -- bookkeeping -----------------------------------------------------------------------

    def warn(self, msg: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(msg)
        elif len(self.warnings) == _MAX_WARNINGS:
            self.warnings.append("further warnings suppressed")
        if self._on_warning is not None:
            self._on_warning(msg)

    def close(self) -> None:
        self._invalidate()
        self._close_stale()
        os.close(self._rootfd)

    def _invalidate(self) -> None:
        """Forget every cached resolution (closing is deferred to the end of the entry)."""
        self._dir_gid.clear()
        for real, fd in self._fds.items():
            if real:
                self._stale.append(fd)
        self._fds = {b"": self._rootfd}
        self._lex = {b"": b""}

    def _close_stale(self) -> None:
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()

    def _mark(self, real: bytes) -> None:
        self._unpacked.add(real)
        anc = self._unpacked_anc
        i = real.rfind(b"/")
        while i > 0:
            real = real[:i]
            if real in anc:
                break
            anc.add(real)
            i = real.rfind(b"/")

    # -- resolution ------------------------------------------------------------------------

    def _resolve(self, lex: bytes, create: bool) -> tuple[int, bytes] | None:
        """Directory fd and real path for the cleaned directory name ``lex``, in the root.

        Symlinks are followed as if the root were ``/``. With ``create``, missing directories
        are made (0755); without, None is returned for a missing component.
        """
        real = self._lex.get(lex)
        if real is not None:
            fd = self._fds.get(real)
            if fd is not None:
                return fd, real
        return self._walk(lex, create)

    def _walk(self, lex: bytes, create: bool) -> tuple[int, bytes] | None:
        comps = lex.split(b"/")
        fds = self._fds
        start = 0
        real = b""
        fd = self._rootfd
        for i in range(len(comps) - 1, 0, -1):
            r = self._lex.get(b"/".join(comps[:i]))
            if r is not None and r in fds:
                start, real, fd = i, r, fds[r]
                break
        # stack of components to walk; an int k marks "comps[:k+1] is resolved"
        pending: list[bytes | int] = []
        for k in range(len(comps) - 1, start - 1, -1):
            pending.append(k)
            pending.append(comps[k])
        hops = 0
        while pending:
            c = pending.pop()
            if isinstance(c, int):
                self._lex[b"/".join(comps[: c + 1])] = real
                continue
            if c == b"" or c == b".":
                continue
            if c == b"..":
                if real:
                    real = real.rpartition(b"/")[0]
                    pfd = fds.get(real)
                    fd = pfd if pfd is not None else self._open_real(real)
                continue
            nreal = real + b"/" + c if real else c
            nfd = fds.get(nreal)
            if nfd is None:
                got = self._step(fd, c, create)
                if got is None:
                    return None
                if isinstance(got, bytes):
                    hops += 1
                    if hops > _MAX_HOPS:
                        raise _EntryError("too many levels of symbolic links")
                    if got.startswith(b"/"):
                        real = b""
                        fd = self._rootfd
                    pending.extend(reversed(got.split(b"/")))
                    continue
                nfd = got
                fds[nreal] = nfd
            real = nreal
            fd = nfd
        return fd, real

    def _step(self, dirfd: int, c: bytes, create: bool) -> int | bytes | None:
        """Open directory ``c`` in ``dirfd`` (fd), or return its symlink target (bytes)."""
        for _ in range(3):
            try:
                return os.open(c, _O_DIR_PATH, dir_fd=dirfd)
            except FileNotFoundError:
                if not create:
                    return None
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                st = os.stat(c, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    return os.readlink(c, dir_fd=dirfd)
                raise _EntryError(f"path component {_display(c)!r} is not a directory") from None
            try:
                os.mkdir(c, 0o755, dir_fd=dirfd)
                os.chmod(c, 0o755, dir_fd=dirfd)  # umask-independent; we just made it
            except FileExistsError:
                pass
        raise _EntryError(f"path component {_display(c)!r} keeps changing")

    def _open_real(self, real: bytes) -> int:
        """fd of an already-resolved real path (no symlinks in it), opened without following."""
        fd = self._fds.get(real)
        if fd is not None:
            return fd
        comps = real.split(b"/")
        fd = self._rootfd
        cur = b""
        for c in comps:
            cur = cur + b"/" + c if cur else c
            nfd = self._fds.get(cur)
            if nfd is None:
                nfd = os.open(c, _O_DIR_PATH, dir_fd=fd)
                self._fds[cur] = nfd
            fd = nfd
        return fd

    def _parent(self, comps: list[bytes]) -> tuple[int, bytes]:
        res = self._resolve(b"/".join(comps[:-1]), True)
        assert res is not None
        return res

    # -- removal ---------------------------------------------------------------------------

    def _remove(self, dirfd: int, name: bytes) -> bool:
        """Remove ``name`` (recursively if a real directory, never following). False if absent."""
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dirfd)
            self._invalidate()
        else:
            os.unlink(name, dir_fd=dirfd)
            if stat.S_ISLNK(st.st_mode):
                self._invalidate()
        return True

    # -- metadata --------------------------------------------------------------------------

    def _no_owner(self) -> None:
        if not self._warned_owner:
            self._warned_owner = True
            self.warn("ownership not applied: not running as root")

    def _owner_failed(self, e: Entry, exc: OSError) -> None:
        if exc.errno in (errno.EPERM, errno.EINVAL):  # user namespace without that id mapped
            self.warn(f"layer entry {_display(e.name)}: chown {e.uid}:{e.gid}: {exc.strerror}")
            return
        raise exc

    def _xattrs(self, e: Entry, target: int | bytes) -> None:
        """Set the entry's xattrs on an fd, or on a path without following a final symlink."""
        for key, value in e.xattrs:
            if key.startswith(b"trusted."):
                self.warn(f"layer entry {_display(e.name)}: xattr {_display(key)} refused")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
                    self.warn(
                        f"layer entry {_display(e.name)}: xattr {_display(key)} skipped: "
                        f"{exc.strerror}"
                    )
                    continue
                raise _EntryError(f"xattr {_display(key)}: {exc.strerror}") from None

    def _owner_fd(self, fd: int, e: Entry, *, owned: bool = False) -> None:
        """Owner (as root; else one warning) and xattrs through a descriptor, before any chmod
        (a chown clears set-id bits). ``owned``: it has ``e.uid``/``e.gid`` already."""
        if self._privileged:
            if not owned:
                try:
                    os.fchown(fd, e.uid, e.gid)
                except OSError as exc:
                    self._owner_failed(e, exc)
        else:
            self._no_owner()
        if e.xattrs:
            self._xattrs(e, fd)

    def _meta_fd(self, fd: int, e: Entry, *, owned: bool = False, moded: bool = False) -> None:
        """Owner, xattrs, mode and times of a regular file through its descriptor.

        ``owned``: the file was created with ``e.uid``/``e.gid`` already; ``moded``: with
        ``e.mode`` already (no set-id bits, which must follow the chown).
        """
        self._owner_fd(fd, e, owned=owned)
        if not moded:
            os.fchmod(fd, e.mode)
        os.utime(fd, ns=_times(e))

    def _gid_of(self, dirfd: int) -> int:
        gid = self._dir_gid.get(dirfd)
        if gid is None:
            gid = self._dir_gid[dirfd] = os.fstat(dirfd).st_gid
        return gid

    def _meta_at(
        self,
        dirfd: int,
        base: bytes,
        real: bytes,
        e: Entry,
        symlink: bool,
        current: os.stat_result | None = None,
    ) -> None:
        """Metadata of a non-file object (symlink, device, FIFO, hard link) by name.

        ``current`` is the object's stat when it existed before (a hard link): an owner or mode
        it already has is not set again, because any chown drops ``security.capability`` (and
        setuid) of the shared inode.
        """
        same_owner = current is not None and (current.st_uid, current.st_gid) == (e.uid, e.gid)
        if same_owner:
            pass
        elif self._privileged:
            try:
                os.chown(base, e.uid, e.gid, dir_fd=dirfd, follow_symlinks=False)
            except OSError as exc:
                self._owner_failed(e, exc)
        else:
            self._no_owner()
        if e.xattrs:
            if self._proc_fd:
                path = b"/proc/self/fd/%d/%s" % (dirfd, base)
            else:
                path = self._root_b + b"/" + real
            self._xattrs(e, path)
        if not symlink and not (current is not None and stat.S_IMODE(current.st_mode) == e.mode):
            # fchmodat follows a final symlink; this object was just created (or lstat'ed) by
            # us as a non-symlink, and we are the only writer of the tree.
            os.chmod(base, e.mode, dir_fd=dirfd)
        os.utime(base, ns=_times(e), dir_fd=dirfd, follow_symlinks=False)

    # -- entries ---------------------------------------------------------------------------

    def apply(self, e: Entry) -> None:
        if b"\0" in e.name:
            raise _EntryError("name contains a NUL byte")
        comps = _clean(e.name)
        if not comps:
            return  # resolves to the root itself: ignored (containerd)
        base = comps[-1]
        if base.startswith(_WH_PREFIX):
            self._whiteout(e, comps)
            return
        if len(self._fds) > self._fd_limit:
            self._invalidate()
            self._close_stale()
        t = e.type
        if t == REGTYPE:
            self._regular(e, comps)
        elif t == DIRTYPE:
            self._directory(e, comps)
        elif t == SYMTYPE:
            self._symlink(e, comps)
        elif t == LNKTYPE:
            self._hardlink(e, comps)
        elif t in (FIFOTYPE, CHRTYPE, BLKTYPE):
            self._node(e, comps)
        elif t == SPARSETYPE:
            raise Unsupported(f"layer entry {_display(e.name)}: GNU sparse files are not supported")
        else:
            raise _EntryError(f"unsupported entry type {t!r}")

    def _regular(self, e: Entry, comps: list[bytes]) -> None:
        dirfd, preal = self._parent(comps)
        base = comps[-1]
        # Created 0600 and chmod'ed after the chown, unless the mode has no set-id or sticky
        # bits and survives the umask: then it is created with its mode (two syscalls fewer
        # per file with the fchown skipped below; the content is no more exposed than after).
        mode = e.mode
        moded = self._umask is not None and not mode & 0o7000 and mode & ~self._umask == mode
        owned = e.uid == self._euid and e.gid == self._egid and self._gid_of(dirfd) == self._egid
        try:
            fd = os.open(base, _O_NEW_FILE, mode if moded else 0o600, dir_fd=dirfd)
        except FileExistsError:
            self._remove(dirfd, base)
            fd = os.open(base, _O_NEW_FILE, mode if moded else 0o600, dir_fd=dirfd)
        try:
            if e.size:
                self._reader.copy_to(fd)
            self._meta_fd(fd, e, owned=owned, moded=moded)
        finally:
            os.close(fd)
        self._mark(preal + b"/" + base if preal else base)

    def _directory(self, e: Entry, comps: list[bytes]) -> None:
        dirfd, preal = self._parent(comps)
        base = comps[-1]
        try:
            os.mkdir(base, 0o700, dir_fd=dirfd)
        except FileExistsError:
            st = os.stat(base, dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                self._remove(dirfd, base)
                os.mkdir(base, 0o700, dir_fd=dirfd)
        fd = os.open(base, _O_DIR_READ, dir_fd=dirfd)
        real = preal + b"/" + base if preal else base
        try:
            self._owner_fd(fd, e)
            deferred_mode = -1
            if not self._privileged and e.mode & 0o700 != 0o700:
                # keep the directory usable for our own later entries; final mode at the end
                deferred_mode = e.mode
                os.fchmod(fd, e.mode | 0o700)
            else:
                os.fchmod(fd, e.mode)
        except BaseException:
            os.close(fd)
            raise
        if real in self._fds:
            os.close(fd)
            self._dir_gid.pop(self._fds[real], None)  # its owner may just have changed
        else:
            self._fds[real] = fd
        self._lex[b"/".join(comps)] = real
        self._dir_times.append((real, *_times(e), deferred_mode))
        self._mark(real)

    def _symlink(self, e: Entry, comps: list[bytes]) -> None:
        if b"\0" in e.linkname:
            raise _EntryError("symlink target contains a NUL byte")
        dirfd, preal = self._parent(comps)
        base = comps[-1]
        try:
            os.symlink(e.linkname, base, dir_fd=dirfd)
        except FileExistsError:
            self._remove(dirfd, base)
            os.symlink(e.linkname, base, dir_fd=dirfd)
        real = preal + b"/" + base if preal else base
        self._meta_at(dirfd, base, real, e, True)
        self._mark(real)

    def _hardlink(self, e: Entry, comps: list[bytes]) -> None:
        if b"\0" in e.linkname:
            raise _EntryError("hardlink target contains a NUL byte")
        target = _clean(e.linkname)
        if not target:
            raise _EntryError("hardlink target is the layer root")
        tres = self._resolve(b"/".join(target[:-1]), False)
        if tres is None:
            raise _EntryError(f"hardlink target {_display(e.linkname)!r} does not exist")
        tfd, _ = tres
        tbase = target[-1]
        dirfd, preal = self._parent(comps)
        base = comps[-1]
        try:
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=dirfd, follow_symlinks=False)
        except FileExistsError:
            try:
                tst = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise _EntryError(
                    f"hardlink target {_display(e.linkname)!r} does not exist"
                ) from None
            st = os.stat(base, dir_fd=dirfd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != (tst.st_dev, tst.st_ino):
                self._remove(dirfd, base)
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            raise _EntryError(f"hardlink target {_display(e.linkname)!r} does not exist") from None
        except PermissionError:
            raise _EntryError(f"hardlink target {_display(e.linkname)!r} is a directory") from None
        st = os.stat(base, dir_fd=dirfd, follow_symlinks=False)
        real = preal + b"/" + base if preal else base
        self._meta_at(dirfd, base, real, e, stat.S_ISLNK(st.st_mode), st)
        self._mark(real)

    def _node(self, e: Entry, comps: list[bytes]) -> None:
        t = e.type
        if t != FIFOTYPE and not self._privileged:
            self.warn(f"layer entry {_display(e.name)}: device node skipped: not running as root")
            return
        dirfd, preal = self._parent(comps)
        base = comps[-1]
        if t == FIFOTYPE:
            kind, dev = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if t == CHRTYPE else stat.S_IFBLK
            dev = os.makedev(e.devmajor, e.devminor)
        for attempt in range(2):
            try:
                os.mknod(base, kind | 0o600, dev, dir_fd=dirfd)
                break
            except FileExistsError:
                if attempt:
                    raise
                self._remove(dirfd, base)
            except PermissionError:
                if t == FIFOTYPE:
                    raise
                self.warn(f"layer entry {_display(e.name)}: device node skipped: mknod refused")
                return
        real = preal + b"/" + base if preal else base
        self._meta_at(dirfd, base, real, e, False)
        self._mark(real)

    def _whiteout(self, e: Entry, comps: list[bytes]) -> None:
        base = comps[-1]
        if base == _WH_OPAQUE:
            dirfd, preal = self._parent(comps)
            self._opaque(dirfd, preal)
            return
        if base.startswith(_WH_META):
            self.warn(f"layer entry {_display(e.name)}: reserved whiteout name skipped")
            return
        victim = base[len(_WH_PREFIX) :]
        if victim in (b"", b".", b".."):
            raise _EntryError("invalid whiteout name")
        res = self._resolve(b"/".join(comps[:-1]), False)
        if res is not None:
            self._remove(res[0], victim)

    def _opaque(self, dirfd: int, real: bytes) -> None:
        """Remove every child of the directory not unpacked from this layer, recursively."""
        removed = False
        top = os.open(b".", _O_DIR_READ, dir_fd=dirfd)
        stack: list[tuple[int, bytes]] = [(top, real)]
        try:
            while stack:
                dfd, dreal = stack.pop()
                try:
                    with os.scandir(dfd) as it:
                        children = [
                            (os.fsencode(d.name), d.is_dir(follow_symlinks=False)) for d in it
                        ]
                    for name, is_dir in children:
                        child = dreal + b"/" + name if dreal else name
                        if is_dir and (child in self._unpacked or child in self._unpacked_anc):
                            stack.append((os.open(name, _O_DIR_READ, dir_fd=dfd), child))
                        elif child not in self._unpacked:
                            if is_dir:
                                shutil.rmtree(name, dir_fd=dfd)
                            else:
                                os.unlink(name, dir_fd=dfd)
                            removed = True
                finally:
                    os.close(dfd)
        finally:
            for dfd, _ in stack:
                os.close(dfd)
        if removed:
            self._invalidate()

    def finish(self) -> None:
        """Directory modes (deferred, unprivileged only) and times, in entry order."""
        for real, atime, mtime, mode in self._dir_times:
            if len(self._fds) > self._fd_limit:
                self._invalidate()
                self._close_stale()
            parent, _, base = real.rpartition(b"/")
            try:
                dirfd = self._open_real(parent)
                if mode >= 0:
                    fd = os.open(base, _O_DIR_READ, dir_fd=dirfd)
                    try:
                        os.fchmod(fd, mode)
                    finally:
                        os.close(fd)
                os.utime(base, ns=(atime, mtime), dir_fd=dirfd, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue
                raise  # removed or replaced by a later entry of this layer


def apply_tar(
    stream: BinaryIO,
    root: str | os.PathLike[str],
    *,
    expected_diff_id: Digest | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Apply an uncompressed layer tar from ``stream`` onto the existing directory ``root``.

    The stream is read to its end (bytes after the end-of-archive marker included) and its
    digest is returned as ``diff_id`` (sha256, or the algorithm of ``expected_diff_id``).

    Args:
        stream: uncompressed tar bytes; ``readinto`` is used when available.
        root: the directory to apply onto (lower layers already applied); must exist.
        expected_diff_id: when given, the stream must hash to it.
        on_warning: called with each warning as it happens (they are also returned).

    Raises:
        InvalidArgument: the archive is malformed or an entry cannot be applied as written
            (``"layer entry <name>: <what>"``).
        Unsupported: an entry uses a tar feature pallet does not implement (GNU sparse files).
        DigestMismatch: the stream does not hash to ``expected_diff_id`` (checked after the
            apply; the tree is then already modified).
        NotFound: ``root`` does not exist.
        FailedPrecondition: the file system refused an operation (ENOSPC, EIO, EACCES...).
    """
    algorithm = expected_diff_id.algorithm if expected_diff_id is not None else "sha256"
    # a decoder that hashes what it produces on its own thread (pallet's gzip reader) saves the
    # applier's thread a pass over the stream
    produced: Callable[[], str] | None = None
    if algorithm == "sha256":
        produced = getattr(getattr(stream, "raw", stream), "stream_sha256", None)
    hasher = None if produced is not None else hashlib.new(algorithm)
    reader = TarReader(stream, hasher=hasher)
    applier = _Applier(root, reader, on_warning)
    try:
        while True:
            try:
                entry = reader.next()
                if entry is None:
                    break
                applier.apply(entry)
            except FormatError as exc:
                raise InvalidArgument(f"layer entry {_display(exc.entry)}: {exc.reason}") from None
            except _EntryError as exc:
                raise InvalidArgument(f"layer entry {_display(reader.current)}: {exc}") from None
            except ValueError as exc:  # embedded NUL and friends from os.*
                if isinstance(exc, InvalidArgument):
                    raise
                raise InvalidArgument(f"layer entry {_display(reader.current)}: {exc}") from None
            except OSError as exc:
                msg = f"layer entry {_display(reader.current)}: {exc.strerror or exc}"
                if exc.errno in _ARCHIVE_ERRNOS:
                    raise InvalidArgument(msg) from exc
                raise FailedPrecondition(msg) from exc
            finally:
                if applier._stale:
                    applier._close_stale()
        try:
            applier.finish()
        except OSError as exc:
            raise FailedPrecondition(f"layer: setting directory times: {exc}") from exc
        reader.drain()
    finally:
        applier.close()
    if produced is not None:
        hexdigest = produced()
    else:
        assert hasher is not None
        hexdigest = hasher.hexdigest()
    diff_id = Digest(f"{algorithm}:{hexdigest}")
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise DigestMismatch(f"layer {diff_id}: expected diff_id {expected_diff_id}")
    return ApplyResult(diff_id=diff_id, size=reader.size, warnings=tuple(applier.warnings))


def apply_blob(
    provider: Provider,
    blob: Descriptor,
    root: str | os.PathLike[str],
    *,
    expected_diff_id: Digest | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ApplyResult:
    """:func:`apply_tar` of the stored layer ``blob``, decompressed as its bytes say."""
    with (
        provider.open(blob) as raw,
        decompressed_reader(raw, name=f"layer {blob.digest}") as tar,
    ):
        return apply_tar(tar, root, expected_diff_id=expected_diff_id, on_warning=on_warning)
