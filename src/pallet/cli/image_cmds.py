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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..images import Image, ImageStore
    from ..metadata.store import Store
    from ..oci.descriptor import Platform

__all__ = ["register"]


def _db(args: argparse.Namespace) -> Store:
    from .main import _db as db

    return db(args)


def _platform(args: argparse.Namespace) -> Platform | None:
    from ..oci.descriptor import Platform

    return Platform.parse(args.platform) if args.platform else None


def _find(images: ImageStore, ref: str) -> Image:
    """The image named ``ref`` as written, else by its normalised form (``foo`` ->
    ``docker.io/library/foo:latest``)."""
    from ..errors import InvalidArgument, NotFound
    from ..oci.reference import Reference

    try:
        return images.get(ref)
    except NotFound:
        pass
    try:
        full = str(Reference.parse(ref))
    except InvalidArgument:
        raise NotFound(f"image {ref}: not found") from None
    try:
        return images.get(full)
    except NotFound:
        raise NotFound(f"image {ref}: not found") from None


def _archive_names(name: str) -> tuple[str, ...]:
    """The image's store name, if it can be written into an archive (a reference)."""
    from ..errors import InvalidArgument
    from ..oci.reference import Reference

    try:
        Reference.parse(name)
    except InvalidArgument:
        return ()
    return (name,)


# --- save ---------------------------------------------------------------------------------------
def cmd_save(args: argparse.Namespace) -> int:
    from ..errors import InvalidArgument, Unsupported
    from ..layout import ArchiveImage, Format, plan_layout, write_archive

    db = _db(args)
    imgs = []
    for ref in args.refs:
        img = _find(db.images, ref)
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
    from ..errors import InvalidArgument
    from ..labels import GC_EXPIRE
    from ..layout import LoadResult, load_archive, load_directory
    from ..leases import new_id

    db = _db(args)
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
    from ..layout import unpack
    from .main import _backend

    def warn(msg: str) -> None:
        print(f"pallet: warning: {msg}", file=sys.stderr)

    platform = _platform(args)
    with _backend(args) as b:
        img = _find(b.images, args.ref)
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
def register(sub: Any, common: Any, add: Any) -> None:
    """Add ``save``, ``load`` and ``unpack`` to the parser."""
    # ``save --format`` names the archive format, so it cannot inherit the common --format
    root_only = argparse.ArgumentParser(add_help=False)
    root_only.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="store root (default: $PALLET_ROOT or $XDG_DATA_HOME/pallet)",
    )
    sp = sub.add_parser(
        "save",
        parents=[root_only],
        help="write images as an OCI layout or Docker archive tarball",
        description="Write images to a tarball that docker load, podman load, ctr images "
        "import, skopeo (oci-archive:) and umoci read.",
    )
    sp.set_defaults(func=cmd_save)
    sp.add_argument("refs", nargs="+", metavar="REF", help="image names in the store")
    sp.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="output file, - for stdout (default)"
    )
    sp.add_argument(
        "--format",
        dest="archive_format",
        choices=("oci", "docker"),
        default="oci",
        help="oci: OCI layout; docker: also manifest.json for docker load (default: oci)",
    )
    sp.add_argument("--platform", help="only this platform's manifest (os/arch[/variant])")

    sp = add(sub, "load", cmd_load, "import an OCI layout or Docker archive")
    sp.add_argument(
        "-i",
        "--input",
        default="-",
        metavar="FILE",
        help="tarball (plain, gzip or zstd) or OCI layout directory; - for stdin (default)",
    )
    sp.add_argument("--tag", metavar="NAME", help="a name for the archive's image")

    sp = add(sub, "unpack", cmd_unpack, "write an image's root filesystem into a directory")
    sp.add_argument("ref", metavar="REF")
    sp.add_argument("dest", metavar="DEST", help="directory; must not exist or be empty")
    sp.add_argument("--platform", help="platform of an index image (default: this host's)")
    from . import backend

    backend.add_arguments(sp)
