"""Directory differ: the changes from a lower to an upper tree, as an OCI layer tar stream.

Theory of operation
-------------------
:func:`write_diff` walks both trees at once, in containerd's order (``continuity fs.Changes``
double walk, spec/containerd.md §4.4): the children of a directory in byte order of their
names, depth first. That is the same as sorting full paths with ``/`` ranking below every other
byte, so ``a``, ``a/b``, ``a.b``. Each path falls in one of three cases:

* only in lower: a **deletion**, written as a whiteout ``<dir>/.wh.<name>``. A deleted directory
  is one whiteout; nothing below it is visited. Opaque markers are never written.
* only in upper: an **addition**; a directory brings its whole subtree.
* in both: a **modification** unless :func:`_same` says the two are equal. We follow
  containerd's ``sameFile``: same inode, or same type/mode/uid/gid/rdev, same carried xattrs
  (containerd compares only ``security.capability``; we compare every xattr we write) and,
  for non-directories, same size and same mtime seconds. When the lower mtime has zero
  nanoseconds it may have been truncated (by a copy or a tar round trip: a base image unpacked
  under a user's tree of the same files), so the content (or the symlink target) is compared
  byte for byte; otherwise the nanoseconds must match. A changed
  file is re-emitted whole; a directory whose metadata (including its mtime, to the second,
  which containerd ignores) changed is re-emitted as a directory entry and its unchanged
  children are not, so applying the diff reproduces the upper tree's times exactly.

``lower=None`` turns the whole upper tree into one layer ("layer from a directory") through a
tight loop without any comparison.

Every emitted entry is preceded by its parent directories that were not written yet (the root
excluded), with their real metadata, as containerd's ``ChangeWriter.includeParents`` does.
With :attr:`DiffOptions.dest` the upper root becomes the directory ``dest`` of the layer (an
entry carrying the root's own metadata) and the directories above it are synthesized: mode
0755, owner 0:0, fixed timestamp.

Hard links: a non-directory with more than one link is keyed by (st_dev, st_ino). Its first
emitted path carries the data; later paths become typeflag ``1`` entries pointing at it, with
the same metadata and xattrs (appliers chown/chmod/setxattr the link path too, so a link entry
without ``security.capability`` would strip it from the shared inode). In a diff, an unchanged
path of a link group whose other member changed is also re-emitted as a link, because the
changed member replaces the inode in the applied tree (containerd's "unmodified" change kind).
Links therefore never point outside the layer.

Entry policy (the bytes)
------------------------
* Names are relative, without ``./``; directories end in ``/``; raw bytes from the filesystem
  (non-UTF-8 names survive, see :mod:`pallet.archive.tar`).
* mode = permission bits with setuid/setgid/sticky; uid/gid numeric; uname/gname empty.
* mtime truncated to whole seconds and clamped to :attr:`DiffOptions.source_date_epoch` when
  that is set. Whiteouts and synthesized directories get the fixed time ``source_date_epoch``
  or 0, never "now", so the same trees always give the same bytes. No atime/ctime.
* Whiteouts: empty regular file, mode 0, owner 0:0.
* xattrs: ``security.capability`` and ``user.*``, read from regular files and directories
  (Linux allows ``user.*`` on nothing else, and does not allow xattrs on symlinks at all).
  Others (``security.selinux``, ``trusted.*``, ACLs) describe the host, not the image.
* Sockets cannot be stored in a tar: they are skipped and reported through
  :attr:`DiffOptions.on_warning`; a socket replacing a lower file deletes that file.

Both trees must hold still during the walk (snapshots are). A file that changes while it is
read raises :class:`~pallet.errors.FailedPrecondition` naming it, and the stream stops before its
end marker: one that shrank or grew (the last read asks for a byte more than the header's size,
see :meth:`~pallet.archive.tar.TarWriter.copy_fd`), and one read in several calls whose inode,
size or mtime afterwards (``fstat``) differs from the listing (rewritten in place or replaced).
A file read in one call is one version of it, so small files cost no extra system call. Files
listed empty are not read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Final

from ..errors import Error, FailedPrecondition, InvalidArgument, NotFound, Unsupported
from .tar import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    Sink,
    TarWriter,
)

__all__ = ["DiffOptions", "DiffStats", "Sink", "write_diff"]

_S_IFMT: Final = 0o170000
_S_IFDIR: Final = stat.S_IFDIR
_S_IFREG: Final = stat.S_IFREG
_S_IFLNK: Final = stat.S_IFLNK
_S_IFCHR: Final = stat.S_IFCHR
_S_IFBLK: Final = stat.S_IFBLK
_S_IFIFO: Final = stat.S_IFIFO
_S_IFSOCK: Final = stat.S_IFSOCK
_NS: Final = 1_000_000_000
_NO_CLAMP: Final = 1 << 62
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
_NAME: Final = attrgetter("name")
_STORABLE: Final = frozenset({_S_IFREG, _S_IFLNK, _S_IFCHR, _S_IFBLK, _S_IFIFO})
_CAPABILITY: Final = "security.capability"
_XATTR_UNSUPPORTED: Final = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})

Xattrs = dict[bytes, bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffOptions:
    """How :func:`write_diff` builds the layer.

    Attributes:
        source_date_epoch: when set, every mtime later than it is clamped to it, and it is the
            timestamp of whiteouts and synthesized directories (otherwise 0).
        dest: place the upper tree under this path inside the layer (``"/app"``); the
            directories above it are synthesized. ``""`` or ``"/"``: at the root.
        on_warning: receives one line per skipped entry (sockets, unrepresentable xattrs).
    """

    source_date_epoch: int | None = None
    dest: str = ""
    on_warning: Callable[[str], None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffStats:
    """What :func:`write_diff` wrote: tar entries (PAX headers not counted) and stream bytes."""

    entries: int
    bytes_written: int


_DEFAULT_OPTIONS: Final = DiffOptions()


def write_diff(
    lower: str | os.PathLike[str] | None,
    upper: str | os.PathLike[str],
    sink: Sink,
    opts: DiffOptions = _DEFAULT_OPTIONS,
) -> DiffStats:
    """Write the tar stream of the changes from ``lower`` to ``upper`` to ``sink``.

    ``lower=None`` writes the whole ``upper`` tree. The stream is complete (end-of-archive
    blocks included) when this returns; ``sink`` is not closed.

    Raises:
        NotFound: ``lower`` or ``upper`` does not exist, or a file vanished during the walk.
        InvalidArgument: ``lower``/``upper`` is not a directory; bad ``dest`` or epoch.
        FailedPrecondition: a file is unreadable (permissions) or changed while being read.
        Unsupported: the filesystem refused an operation we need.
        Error: any other OS error while reading the trees.
    """
    up = _root(upper)
    lo = None if lower is None else _root(lower)
    sde = opts.source_date_epoch
    if sde is not None and sde < 0:
        raise InvalidArgument(f"source date epoch {sde}: must not be negative")
    dest = _dest(opts.dest)
    tw = TarWriter(sink)
    walker = _Walker(tw, sde, opts.on_warning)
    try:
        walker.run(lo, up, dest)
    except OSError as exc:
        if exc.filename is None:  # not ours: the sink failed
            raise
        raise _translate(exc) from exc
    tw.close()
    return DiffStats(entries=tw.entries, bytes_written=tw.bytes_written)


# -- arguments and errors ----------------------------------------------------------------------


def _show(path: bytes | str) -> str:
    if isinstance(path, str):
        path = os.fsencode(path)
    return path.decode("utf-8", "backslashreplace")


def _root(p: str | os.PathLike[str]) -> bytes:
    path = os.fsencode(p)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _translate(exc, "directory") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"directory {_show(path)}: not a directory")
    return path


def _dest(dest: str) -> bytes:
    parts = [p for p in dest.split("/") if p and p != "."]
    if ".." in parts or any("\0" in p for p in parts):
        raise InvalidArgument(f"destination {dest!r}: must not contain '..' or NUL")
    return os.fsencode("/".join(parts))


def _translate(exc: OSError, noun: str = "path") -> Error:
    """Map an OSError from reading the trees to pallet's error classes."""
    name = exc.filename if exc.filename is not None else "?"
    msg = f"{noun} {_show(name)}: {exc.strerror or exc}"
    code = exc.errno
    if code == errno.ENOENT:
        return NotFound(msg)
    if code == errno.ENOTDIR:
        return InvalidArgument(msg)
    if code in (errno.EACCES, errno.EPERM, errno.ELOOP):
        return FailedPrecondition(msg)
    if code in _XATTR_UNSUPPORTED:
        return Unsupported(msg)
    return Error(msg)


def _changed(listed: os.stat_result, read: os.stat_result, failed: bool) -> str:
    """Why a file read after ``listed`` (its header) does not match it; ``""`` if it does.

    ``read`` is the open file's status after its data was copied, ``failed`` whether the copy
    found it shorter or longer than listed. A file that grew would otherwise be cut at its
    listed size, and one rewritten in place or swapped for another would give an entry of
    bytes the file never held at once: GNU tar warns "file changed as we read it",
    containerd's writer fails, and so does this one.
    """
    if (read.st_ino, read.st_dev) != (listed.st_ino, listed.st_dev):
        return "replaced by another file"
    if read.st_size != listed.st_size:
        return f"{listed.st_size} bytes when listed, {read.st_size} after reading"
    if failed:
        return f"its size moved away from {listed.st_size} bytes and back"
    if read.st_mtime_ns != listed.st_mtime_ns:
        return "modified: its mtime moved"
    return ""


def _scan(path: bytes) -> list[os.DirEntry[bytes]]:
    with os.scandir(path) as it:
        return sorted(it, key=_NAME)


def _xattrs(path: bytes, warn: Callable[[str], None] | None = None) -> Xattrs | None:
    """The xattrs we carry (``security.capability``, ``user.*``) of ``path``, or None.

    A name containing ``=`` cannot be a PAX record key; it is left out (and reported to
    ``warn``), the same way on both sides of a comparison.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _XATTR_UNSUPPORTED:
            return None
        raise
    if not names:
        return None
    out: Xattrs = {}
    for n in names:
        if n.startswith("user.") or n == _CAPABILITY:
            if "=" in n:
                if warn is not None:
                    warn(f"xattr {n} of {_show(path)}: skipped, a PAX record cannot name it")
                continue
            try:
                out[os.fsencode(n)] = os.getxattr(path, n, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.ENODATA:  # removed since listxattr
                    raise
    return out or None


# -- the walk ----------------------------------------------------------------------------------


class _Dir:
    """A directory on the current path whose entry may not have been written yet."""

    __slots__ = ("emitted", "name", "st", "xattrs")

    def __init__(self, name: bytes, st: os.stat_result | None, xattrs: Xattrs | None) -> None:
        self.name = name  # with trailing "/"
        self.st = st  # None: synthesized (a parent of dest)
        self.xattrs = xattrs
        self.emitted = False


# an unchanged member of a link group seen before any changed one: (name, its parents)
_LinkRef = tuple[bytes, list[_Dir]]
# (name, entry in lower or None, entry in upper or None)
_Pair = tuple[bytes, os.DirEntry[bytes] | None, os.DirEntry[bytes] | None]


class _Walker:
    """State of one :func:`write_diff` call."""

    __slots__ = (
        "_clamp",
        "_fixed",
        "_inode_refs",
        "_inode_src",
        "_lo2up",
        "_tw",
        "_up2lo",
        "_warn",
    )

    def __init__(self, tw: TarWriter, sde: int | None, warn: Callable[[str], None] | None) -> None:
        self._tw = tw
        self._clamp = _NO_CLAMP if sde is None else sde
        self._fixed = 0 if sde is None else sde
        self._warn = warn
        self._inode_src: dict[tuple[int, int], bytes] = {}  # first name of each link group
        self._inode_refs: dict[tuple[int, int], list[_LinkRef]] = {}
        # inode pairing of unchanged link-group members, upper -> lower and back
        self._up2lo: dict[tuple[int, int], tuple[int, int]] = {}
        self._lo2up: dict[tuple[int, int], tuple[int, int]] = {}

    def run(self, lower: bytes | None, upper: bytes, dest: bytes) -> None:
        ancestors: list[_Dir] = []
        prefix = b""
        if dest:
            parts = dest.split(b"/")
            for i in range(1, len(parts)):
                ancestors.append(_Dir(b"/".join(parts[:i]) + b"/", None, None))
            prefix = dest + b"/"
            ust = os.stat(upper)
            root = _Dir(prefix, ust, _xattrs(upper, self._warn))
            ancestors.append(root)
            if lower is None or not self._same_dir(lower, os.stat(lower), ust, root.xattrs):
                self._flush(ancestors)
        if lower is None:
            self._add_tree(upper, prefix)
        else:
            self._diff_tree(lower, upper, prefix, ancestors)

    # -- emission helpers ---------------------------------------------------------------------

    def _warning(self, msg: str) -> None:
        if self._warn is not None:
            self._warn(msg)

    def _skip(self, name: bytes, fmt: int) -> None:
        what = "socket" if fmt == _S_IFSOCK else f"file of type {fmt:#o}"
        self._warning(f"{what} {_show(name)}: skipped, a layer cannot store it")

    def _flush(self, ancestors: list[_Dir]) -> None:
        """Write every directory in ``ancestors`` (root first) that was not written yet."""
        if not ancestors or ancestors[-1].emitted:
            return
        for d in ancestors:
            if not d.emitted:
                self._emit_dir(d.name, d.st, d.xattrs)
                d.emitted = True

    def _emit_dir(self, name: bytes, st: os.stat_result | None, xattrs: Xattrs | None) -> None:
        if st is None:
            self._tw.add_header(name, DIRTYPE, 0o755, 0, 0, self._fixed)
            return
        mt = st.st_mtime_ns // _NS
        if mt > self._clamp:
            mt = self._clamp
        self._tw.add_header(
            name, DIRTYPE, st.st_mode & 0o7777, st.st_uid, st.st_gid, mt, xattrs=xattrs
        )

    def _emit(self, name: bytes, path: bytes, st: os.stat_result) -> bool:
        """Write the non-directory ``path`` as ``name``. False: not representable (skipped)."""
        tw = self._tw
        fmt = st.st_mode & _S_IFMT
        size = 0
        link = b""
        major = minor = 0
        xattrs = None
        if fmt == _S_IFREG:
            tf = REGTYPE
            size = st.st_size
            xattrs = _xattrs(path, self._warn)
        elif fmt == _S_IFLNK:
            tf = SYMTYPE
            link = os.readlink(path)
        elif fmt in (_S_IFCHR, _S_IFBLK):
            tf = CHRTYPE if fmt == _S_IFCHR else BLKTYPE
            major = os.major(st.st_rdev)
            minor = os.minor(st.st_rdev)
        elif fmt == _S_IFIFO:
            tf = FIFOTYPE
        else:
            self._skip(name, fmt)
            return False
        mode = st.st_mode & 0o7777
        mt = st.st_mtime_ns // _NS
        if mt > self._clamp:
            mt = self._clamp
        refs = None
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            src = self._inode_src.get(key)
            if src is not None:
                tw.add_header(name, LNKTYPE, mode, st.st_uid, st.st_gid, mt, 0, src, 0, 0, xattrs)
                return True
            self._inode_src[key] = name
            refs = self._inode_refs.pop(key, None)
        tw.add_header(name, tf, mode, st.st_uid, st.st_gid, mt, size, link, major, minor, xattrs)
        if size:
            self._copy(path, st)
        if refs:
            for rname, ranc in refs:
                self._flush(ranc)
                tw.add_header(rname, LNKTYPE, mode, st.st_uid, st.st_gid, mt, 0, name, 0, 0, xattrs)
        return True

    def _copy(self, path: bytes, st: os.stat_result) -> None:
        """Write the data of the file that ``st`` (the header's size) describes.

        Raises:
            FailedPrecondition: the file is not what ``st`` says any more (see :func:`_changed`).
        """
        fd = os.open(path, _OPEN_FLAGS)
        try:
            try:
                reads = self._tw.copy_fd(fd)
            except FailedPrecondition:  # it ended before the header's size, or went on past it
                reads = -1
            # one read is one version of the file, and copy_fd saw whether it grew; after
            # several (the sink ran in between) it may have been rewritten in place
            now = os.fstat(fd) if reads != 1 else None
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, path) from exc
        finally:
            os.close(fd)
        why = _changed(st, now, reads < 0) if now is not None else ""
        if why:
            raise FailedPrecondition(f"file {_show(path)}: changed while being read ({why})")

    # -- layer from a directory (hot loop) ----------------------------------------------------

    def _add_tree(self, root: bytes, prefix: bytes) -> None:
        """Write everything below ``root`` (not ``root`` itself), names under ``prefix``."""
        add_header = self._tw.add_header
        emit = self._emit
        clamp = self._clamp
        xattrs_of = _xattrs
        warn = self._warn
        stack: list[tuple[Iterator[os.DirEntry[bytes]], bytes]] = [(iter(_scan(root)), prefix)]
        while stack:
            it, pfx = stack[-1]
            for e in it:
                st = e.stat(follow_symlinks=False)
                m = st.st_mode
                fmt = m & _S_IFMT
                if fmt == _S_IFDIR:
                    path = e.path
                    mt = st.st_mtime_ns // _NS
                    name = pfx + e.name + b"/"
                    add_header(
                        name,
                        DIRTYPE,
                        m & 0o7777,
                        st.st_uid,
                        st.st_gid,
                        mt if mt < clamp else clamp,
                        0,
                        b"",
                        0,
                        0,
                        xattrs_of(path, warn),
                    )
                    stack.append((iter(_scan(path)), name))
                    break
                if fmt == _S_IFREG and st.st_nlink == 1:
                    path = e.path
                    size = st.st_size
                    mt = st.st_mtime_ns // _NS
                    add_header(
                        pfx + e.name,
                        REGTYPE,
                        m & 0o7777,
                        st.st_uid,
                        st.st_gid,
                        mt if mt < clamp else clamp,
                        size,
                        b"",
                        0,
                        0,
                        xattrs_of(path, warn),
                    )
                    if size:
                        self._copy(path, st)
                else:
                    emit(pfx + e.name, e.path, st)
            else:
                stack.pop()

    # -- diff ----------------------------------------------------------------------------------

    def _diff_tree(self, lower: bytes, upper: bytes, prefix: bytes, ancestors: list[_Dir]) -> None:
        """Write the changes below ``lower``/``upper`` (directories known to exist in both).

        ``ancestors`` holds the directories of the current path whose entries are written
        only when something below them is (containerd's includeParents).
        """
        stack: list[tuple[Iterator[_Pair], bytes]] = [(_merge(lower, upper), prefix)]
        while stack:
            it, pfx = stack[-1]
            for name, le, ue in it:
                if ue is None:  # deleted
                    self._flush(ancestors)
                    self._tw.add_whiteout(pfx + name, self._fixed)
                    continue
                ust = ue.stat(follow_symlinks=False)
                ufmt = ust.st_mode & _S_IFMT
                if ufmt == _S_IFDIR:
                    dname = pfx + name + b"/"
                    uxattrs = _xattrs(ue.path, self._warn)
                    if le is not None:
                        lst = le.stat(follow_symlinks=False)
                        if stat.S_ISDIR(lst.st_mode):
                            d = _Dir(dname, ust, uxattrs)
                            if not self._same_dir(le.path, lst, ust, uxattrs):
                                self._flush(ancestors)
                                self._emit_dir(dname, ust, uxattrs)
                                d.emitted = True
                            ancestors.append(d)
                            stack.append((_merge(le.path, ue.path), dname))
                            break
                    # new directory, or one that replaces a non-directory: all of it
                    self._flush(ancestors)
                    self._emit_dir(dname, ust, uxattrs)
                    self._add_tree(ue.path, dname)
                    continue
                if le is not None:
                    lst = le.stat(follow_symlinks=False)
                    if _same(le.path, lst, ue.path, ust) and (
                        ust.st_nlink == 1 or self._same_group(lst, ust)
                    ):
                        if ust.st_nlink > 1:
                            self._unmodified_link(pfx + name, ue.path, ust, ancestors)
                        continue
                if ufmt not in _STORABLE:
                    self._skip(pfx + name, ufmt)
                    if le is not None:  # the lower entry must not show through
                        self._flush(ancestors)
                        self._tw.add_whiteout(pfx + name, self._fixed)
                    continue
                self._flush(ancestors)
                self._emit(pfx + name, ue.path, ust)
            else:
                stack.pop()
                if stack:
                    ancestors.pop()

    def _same_group(self, lst: os.stat_result, ust: os.stat_result) -> bool:
        """Whether an unchanged multi-link file keeps its link partners.

        Equal link counts do not prove equal groups: the members of one upper group must all
        pair with one lower inode, and that inode with no other upper group. A member that
        breaks the pairing is a change; emitting it re-emits the group's deferred members as
        links (:meth:`_unmodified_link`), so the applied tree gets the upper group.
        """
        uk = (ust.st_dev, ust.st_ino)
        lk = (lst.st_dev, lst.st_ino)
        if self._up2lo.setdefault(uk, lk) != lk:
            return False
        return self._lo2up.setdefault(lk, uk) == uk

    def _same_dir(
        self, lpath: bytes, lst: os.stat_result, ust: os.stat_result, uxattrs: Xattrs | None
    ) -> bool:
        if lst.st_ino == ust.st_ino and lst.st_dev == ust.st_dev:
            return True
        return (
            lst.st_mode == ust.st_mode
            and lst.st_uid == ust.st_uid
            and lst.st_gid == ust.st_gid
            # unlike containerd, a directory whose mtime (to the second) changed is emitted, so
            # that applying the diff reproduces the upper tree's times exactly
            and lst.st_mtime_ns // _NS == ust.st_mtime_ns // _NS
            and _xattrs(lpath) == uxattrs
        )

    def _unmodified_link(
        self, name: bytes, path: bytes, st: os.stat_result, ancestors: list[_Dir]
    ) -> None:
        """An unchanged member of a hard-link group (see the module docstring)."""
        key = (st.st_dev, st.st_ino)
        if key in self._inode_src:
            self._flush(ancestors)
            self._emit(name, path, st)
        else:
            self._inode_refs.setdefault(key, []).append((name, list(ancestors)))


def _merge(lower: bytes, upper: bytes) -> Iterator[_Pair]:
    """The children of both directories, by name, as (name, lower entry, upper entry)."""
    lents = _scan(lower)
    uents = _scan(upper)
    i = j = 0
    nl, nu = len(lents), len(uents)
    while i < nl and j < nu:
        le, ue = lents[i], uents[j]
        if le.name == ue.name:
            yield le.name, le, ue
            i += 1
            j += 1
        elif le.name < ue.name:
            yield le.name, le, None
            i += 1
        else:
            yield ue.name, None, ue
            j += 1
    for le in lents[i:]:
        yield le.name, le, None
    for ue in uents[j:]:
        yield ue.name, None, ue


def _same(lpath: bytes, lst: os.stat_result, upath: bytes, ust: os.stat_result) -> bool:
    """containerd's ``sameFile`` for non-directories, plus user.* xattrs (module docstring)."""
    if lst.st_ino == ust.st_ino and lst.st_dev == ust.st_dev:
        return True
    if (
        lst.st_mode != ust.st_mode
        or lst.st_uid != ust.st_uid
        or lst.st_gid != ust.st_gid
        or lst.st_rdev != ust.st_rdev
        or lst.st_size != ust.st_size
        # a changed hard-link count means the link structure changed (containerd misses this)
        or lst.st_nlink != ust.st_nlink
    ):
        return False
    lsec, lns = divmod(lst.st_mtime_ns, _NS)
    usec, uns = divmod(ust.st_mtime_ns, _NS)
    # lower with whole seconds and upper with the same second: lower may be upper's truncated
    # copy (a tar round trip, e.g. a base image unpacked under a user's tree), whose entry in
    # the layer would be the same: decide by content
    if lsec != usec or (lns != uns and lns != 0):
        return False
    fmt = ust.st_mode & _S_IFMT
    if fmt == _S_IFREG and _xattrs(lpath) != _xattrs(upath):
        return False
    if lns:  # equal, non-zero nanoseconds: trusted
        return True
    # lower's timestamp is whole seconds and may have been truncated: compare content.
    if fmt == _S_IFLNK:
        return os.readlink(lpath) == os.readlink(upath)
    if fmt == _S_IFREG and ust.st_size:
        return _same_content(lpath, upath)
    return True


def _same_content(a: bytes, b: bytes) -> bool:
    fa = os.open(a, _OPEN_FLAGS)
    try:
        fb = os.open(b, _OPEN_FLAGS)
        try:
            while True:
                ca = os.read(fa, 1 << 20)
                cb = os.read(fb, 1 << 20)
                if ca != cb:
                    return False
                if not ca:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)
