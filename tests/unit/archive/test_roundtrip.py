"""Property: for random trees A and B, applying diff(A, B) onto a copy of A gives B exactly.

Compared: entry types, content, modes (with setuid/setgid/sticky), owners, symlink targets,
hard-link groups, user.* xattrs and mtimes to the second (directories included).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.archive.apply import apply_tar
from pallet.archive.diff import write_diff
from pallet.snapshots._copy import copy_tree

NAMES = ["a", "b", "c.txt", "d", "long-" + "x" * 120, "ü"]
MODES = [0o644, 0o755, 0o600, 0o4755, 0o2755, 0o1777, 0o444]
TIMES = [0, 1, 1_000_000_000, 1_700_000_000, 1_700_000_001]

file_node = st.tuples(
    st.just("file"),
    st.sampled_from([b"", b"same", b"other", b"x" * 5000]),
    st.sampled_from(MODES),
    st.sampled_from(TIMES),
    st.sampled_from([None, b"1", b"2"]),
)
link_node = st.tuples(
    st.just("symlink"), st.sampled_from(["a", "../b", "/etc/passwd", "d/a"]), st.sampled_from(TIMES)
)
hard_node = st.tuples(st.just("hardlink"), st.integers(0, 3))
fifo_node = st.tuples(st.just("fifo"), st.sampled_from([0o644, 0o600]), st.sampled_from(TIMES))


def dir_node(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(
        st.just("dir"), st.sampled_from([0o755, 0o700, 0o1777]), st.sampled_from(TIMES), children
    )


trees = st.recursive(
    st.dictionaries(
        st.sampled_from(NAMES), st.one_of(file_node, link_node, hard_node, fifo_node), max_size=4
    ),
    lambda children: st.dictionaries(
        st.sampled_from(NAMES),
        st.one_of(file_node, link_node, hard_node, dir_node(children)),
        max_size=4,
    ),
    max_leaves=12,
)


def mix(a: dict[str, Any], b: dict[str, Any], picks: list[int]) -> dict[str, Any]:
    """B built from A: per name keep A's node, take another, or drop it; recurse into dirs."""
    out: dict[str, Any] = {}
    for i, name in enumerate(sorted(set(a) | set(b))):
        p = picks[i % len(picks)] if picks else 0
        na, nb = a.get(name), b.get(name)
        if na is not None and nb is not None and na[0] == nb[0] == "dir" and p == 1:
            out[name] = ("dir", nb[1], nb[2], mix(na[3], nb[3], picks[1:] or [0]))
        elif p == 0 and na is not None:
            out[name] = na
        elif p in (1, 2) and nb is not None:
            out[name] = nb
    return out


def build(root: Path, tree: dict[str, Any]) -> None:
    files: list[Path] = []
    dirs: list[tuple[Path, int, int]] = []

    def go(d: Path, t: dict[str, Any]) -> None:
        for name in sorted(t):
            node, p = t[name], d / name
            kind = node[0]
            if kind == "file":
                p.write_bytes(node[1])
                if node[4] is not None:
                    os.setxattr(p, "user.k", node[4])
                os.chmod(p, node[2])
                os.utime(p, (node[3], node[3]))
                files.append(p)
            elif kind == "symlink":
                os.symlink(node[1], p)
                os.utime(p, (node[2], node[2]), follow_symlinks=False)
            elif kind == "hardlink":
                if files:
                    os.link(files[node[1] % len(files)], p)
                else:
                    p.write_bytes(b"lonely")
                    os.utime(p, (5, 5))
                    files.append(p)
            elif kind == "fifo":
                os.mkfifo(p, node[1])
                os.chmod(p, node[1])
                os.utime(p, (node[2], node[2]))
            else:
                p.mkdir()
                go(p, node[3])
                dirs.append((p, node[1], node[2]))

    go(root, tree)
    for p, mode, t in dirs:  # deepest first: os.walk order reversed by construction
        os.chmod(p, mode)
        os.utime(p, (t, t))


def snapshot(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            s = os.lstat(p)
            rec: dict[str, Any] = {
                "fmt": stat.S_IFMT(s.st_mode),
                "uid": s.st_uid,
                "gid": s.st_gid,
                "mtime": int(s.st_mtime),
            }
            if not stat.S_ISLNK(s.st_mode):
                rec["mode"] = stat.S_IMODE(s.st_mode)
                rec["xattrs"] = {
                    k: os.getxattr(p, k) for k in os.listxattr(p) if k.startswith("user.")
                }
            if stat.S_ISREG(s.st_mode):
                rec["sha"] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                inodes.setdefault(s.st_ino, []).append(rel)
            elif stat.S_ISLNK(s.st_mode):
                rec["target"] = os.readlink(p)
            out[rel] = rec
    out["<links>"] = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
    return out


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=trees, b=trees, picks=st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_apply_diff_onto_copy_of_a_gives_b(
    a: dict[str, Any], b: dict[str, Any], picks: list[int]
) -> None:
    bt = mix(a, b, picks)
    with tempfile.TemporaryDirectory() as tmp:
        ta, tb, tc = Path(tmp, "a"), Path(tmp, "b"), Path(tmp, "c")
        for d in (ta, tb, tc):
            d.mkdir()
        build(ta, a)
        build(tb, bt)
        copy_tree(str(ta), str(tc))
        buf = io.BytesIO()
        write_diff(ta, tb, buf)
        buf.seek(0)
        res = apply_tar(buf, tc)
        assert res.diff_id == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
        assert snapshot(tc) == snapshot(tb)
        shutil.rmtree(tmp, ignore_errors=True)
