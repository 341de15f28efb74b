"""``pallet save``, ``pallet load`` and ``pallet unpack``: archives and root filesystems.

* ``save REF… [-o FILE|-] [--format oci|docker] [--platform P]`` streams an OCI layout tarball
  (or a Docker archive, which is also an OCI layout) to a file or standard output.
* ``load [-i FILE|DIR|-] [--tag NAME]`` imports an OCI layout (tarball or directory) or a Docker
  archive; nothing is kept unless every blob verified.
* ``unpack REF DEST [--platform P]`` writes an image's root filesystem into a directory; with
  ``--containerd[=SOCKET]`` the image and its blobs are read from a containerd daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import InvalidArgument, Unsupported
from ..labels import GC_EXPIRE
from ..layout import (
    ArchiveImage,
    Format,
    LoadResult,
    load_archive,
    load_directory,
    plan_layout,
    unpack,
    write_archive,
)
from ..leases import new_id
from ..oci.descriptor import Platform
from ..oci.reference import Reference
from . import backend
from ._common import command_parser, find_image, open_store

__all__ = ["build_parser"]


def _platform(args: argparse.Namespace) -> Platform | None:
    return Platform.parse(args.platform) if args.platform else None


def _archive_names(name: str) -> tuple[str, ...]:
    """The image's store name, if it can be written into an archive (a reference)."""
    try:
        Reference.parse(name)
    except InvalidArgument:
        return ()
    return (name,)


# --- save ---------------------------------------------------------------------------------------
def cmd_save(args: argparse.Namespace) -> int:
    db = open_store(args)
    imgs = []
    for ref in args.refs:
        img = find_image(db.images, ref)
        names = _archive_names(img.name)
        if not names:
            raise InvalidArgument(f"image {img.name}: its name is not an image reference")
        imgs.append(ArchiveImage(target=img.target, names=names))
    fmt = Format(args.archive_format)
    try:
        plan = plan_layout(db.content, imgs, format=fmt, platform=_platform(args))
    except Unsupported as exc:
        if fmt is Format.DOCKER and not args.platform:
            raise Unsupported(f"{exc}; choose one platform with --platform") from None
        raise
    out = args.output
    if out == "-":
        if sys.stdout.isatty():
            raise InvalidArgument("refusing to write an archive to a terminal; use -o FILE")
        sink = sys.stdout.buffer
        write_archive(sink, db.content, plan)
        sink.flush()
        report = sys.stderr
    else:
        path = Path(out)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                write_archive(f, db.content, plan)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        report = sys.stdout
    for root in plan.images:
        print(f"{root.target.digest} {' '.join(root.names)}".rstrip(), file=report)
    return 0


# --- load ---------------------------------------------------------------------------------------
def cmd_load(args: argparse.Namespace) -> int:
    db = open_store(args)
    src = args.input
    if src == "-" and sys.stdin.isatty():
        raise InvalidArgument("refusing to read an archive from a terminal; use -i FILE")
    expire = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    lease = db.leases.create(new_id("pallet-load"), {GC_EXPIRE: expire}).id
    ok = False
    try:
        res: LoadResult
        if src == "-":
            res = load_archive(sys.stdin.buffer, db.content, db.images, lease=lease, tag=args.tag)
        elif os.path.isdir(src):
            res = load_directory(src, db.content, db.images, lease=lease, tag=args.tag)
        else:
            with open(src, "rb") as f:
                res = load_archive(f, db.content, db.images, lease=lease, tag=args.tag)
        ok = True
    finally:
        # on failure, collect what was written: nothing of the archive stays
        db.leases.delete(lease, sync=not ok)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "format": res.format,
                    "images": [
                        {"target": i.target.to_json(), "names": list(i.names)} for i in res.images
                    ],
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        for i in res.images:
            for n in i.names:
                print(f"loaded {n} {i.target.digest}")
    return 0


# --- unpack -------------------------------------------------------------------------------------
def cmd_unpack(args: argparse.Namespace) -> int:
    def warn(msg: str) -> None:
        print(f"pallet: warning: {msg}", file=sys.stderr)

    platform = _platform(args)
    with backend.open_backend(args) as b:
        img = find_image(b.images, args.ref)
        res = unpack(b.content, img.target, args.dest, platform=platform, on_warning=warn)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "manifest": res.manifest.to_json(),
                    "diff_ids": list(res.diff_ids),
                    "dest": os.fspath(args.dest),
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        n = len(res.layers)
        print(f"{res.manifest.digest} -> {args.dest} ({n} layer{'s' if n != 1 else ''})")
    return 0


# --- parser -------------------------------------------------------------------------------------
def _save(prog: str) -> argparse.ArgumentParser:
    # ``save --format`` names the archive format, so it cannot take the global --format
    p = command_parser(
        prog,
        cmd_save,
        format=False,
        description="Write images to a tarball that docker load, podman load, ctr images "
        "import, skopeo (oci-archive:) and umoci read.",
    )
    p.add_argument("refs", nargs="+", metavar="REF", help="image names in the store")
    p.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="output file, - for stdout (default)"
    )
    p.add_argument(
        "--format",
        dest="archive_format",
        choices=("oci", "docker"),
        default="oci",
        help="oci: OCI layout; docker: also manifest.json for docker load (default: oci)",
    )
    p.add_argument("--platform", help="only this platform's manifest (os/arch[/variant])")
    return p


def _load(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_load)
    p.add_argument(
        "-i",
        "--input",
        default="-",
        metavar="FILE",
        help="tarball (plain, gzip or zstd) or OCI layout directory; - for stdin (default)",
    )
    p.add_argument("--tag", metavar="NAME", help="a name for the archive's image")
    return p


def _unpack(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_unpack)
    p.add_argument("ref", metavar="REF")
    p.add_argument("dest", metavar="DEST", help="directory; must not exist or be empty")
    p.add_argument("--platform", help="platform of an index image (default: this host's)")
    backend.add_arguments(p)
    return p


_PARSERS = {"save": _save, "load": _load, "unpack": _unpack}


def build_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (save, load or unpack)."""
    return _PARSERS[name](prog)
