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
import sys

import pallet

from ._common import add_containerd_arguments, command_parser, pallet_store

__all__ = ["build_parser"]


# --- save ---------------------------------------------------------------------------------------
def cmd_save(args: argparse.Namespace) -> int:
    out = args.output
    if out == "-" and sys.stdout.isatty():
        raise pallet.InvalidArgument("refusing to write an archive to a terminal; use -o FILE")
    with pallet_store(args) as store:
        try:
            written = store.save(
                args.refs,
                sys.stdout.buffer if out == "-" else out,
                format=args.archive_format,
                platform=args.platform,
            )
        except pallet.Unsupported as exc:
            if args.archive_format == "docker" and not args.platform:
                raise pallet.Unsupported(f"{exc}; choose one platform with --platform") from None
            raise
    # the archive may be on standard output: the report then goes to standard error
    report = sys.stderr if out == "-" else sys.stdout
    for image in written:
        print(f"{image.digest} {' '.join(image.names)}".rstrip(), file=report)
    return 0


# --- load ---------------------------------------------------------------------------------------
def cmd_load(args: argparse.Namespace) -> int:
    src = args.input
    if src == "-" and sys.stdin.isatty():
        raise pallet.InvalidArgument("refusing to read an archive from a terminal; use -i FILE")
    with pallet_store(args) as store:
        loaded = store.load(sys.stdin.buffer if src == "-" else src, tag=args.tag)
    if args.format == "json":
        doc = {
            "format": loaded[0].format,
            "images": [{"target": i.target.to_json(), "names": list(i.names)} for i in loaded],
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for i in loaded:
            for n in i.names:
                print(f"loaded {n} {i.digest}")
    return 0


# --- unpack -------------------------------------------------------------------------------------
def cmd_unpack(args: argparse.Namespace) -> int:
    def warn(msg: str) -> None:
        print(f"pallet: warning: {msg}", file=sys.stderr)

    platform = pallet.Platform.parse(args.platform) if args.platform else None
    with pallet_store(args) as store:
        res = store.unpack(args.ref, args.dest, platform=platform, on_warning=warn)
    if args.format == "json":
        doc = {
            "manifest": res.manifest.to_json(),
            "diff_ids": list(res.diff_ids),
            "dest": os.fspath(args.dest),
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        n = len(res.layers)
        print(f"{res.digest} -> {args.dest} ({n} layer{'s' if n != 1 else ''})")
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
    add_containerd_arguments(p)
    return p


_PARSERS = {"save": _save, "load": _load, "unpack": _unpack}


def build_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (save, load or unpack)."""
    return _PARSERS[name](prog)
