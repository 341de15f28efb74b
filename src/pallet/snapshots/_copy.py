"""Copy a directory tree exactly: hardlinks, symlinks, devices, FIFOs, owners, modes, xattrs, times.

Used by the native snapshotter to give a new active snapshot its parent's contents. File data is
copied with ``os.copy_file_range`` (in-kernel, no user-space buffers; a reflink on filesystems
that support it), falling back to ``sendfile``/read-write. Directory times are set after their
contents, as the applier does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat

__all__ = ["copy_tree"]

_IS_ROOT = os.geteuid() == 0


def _copy_data(src: str, dst: str, size: int) -> None:
    with open(src, "rb") as fs, open(dst, "wb") as fd:
        left = size
        try:
            while left > 0:
                n = os.copy_file_range(fs.fileno(), fd.fileno(), min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
        except OSError:
            fs.seek(size - left)
            shutil.copyfileobj(fs, fd, 1 << 20)


def _meta(src: str, dst: str, st: os.stat_result, *, symlink: bool) -> None:
    if _IS_ROOT:
        with contextlib.suppress(OSError):
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        with contextlib.suppress(OSError):
            os.setxattr(
                dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False
            )
    if not symlink:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: str, dst: str) -> None:
    """Copy the contents of ``src`` into the existing empty directory ``dst``."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, str, os.stat_result]] = []

    def walk(s: str, d: str) -> None:
        with os.scandir(s) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            sp, dp = e.path, os.path.join(d, e.name)
            st = e.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dp, 0o700)
                walk(sp, dp)
                dirs.append((sp, dp, st))
                continue
            if st.st_nlink > 1 and not stat.S_ISDIR(mode):
                ident = (st.st_dev, st.st_ino)
                first = links.get(ident)
                if first is not None:
                    os.link(first, dp)
                    continue
                links[ident] = dp
            if stat.S_ISREG(mode):
                _copy_data(sp, dp, st.st_size)
                _meta(sp, dp, st, symlink=False)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(sp), dp)
                _meta(sp, dp, st, symlink=True)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(dp, stat.S_IMODE(mode))
                _meta(sp, dp, st, symlink=False)
            elif (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and _IS_ROOT:
                os.mknod(dp, mode, st.st_rdev)
                _meta(sp, dp, st, symlink=False)
            # sockets are not copied

    walk(src, dst)
    for sp, dp, st in dirs:
        _meta(sp, dp, st, symlink=False)
    _meta(src, dst, os.stat(src), symlink=False)
