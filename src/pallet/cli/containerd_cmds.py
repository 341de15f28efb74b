"""``pallet containerd …``: talk to a containerd daemon with pallet's containerd client.

* ``containerd version``: the daemon's version (a health check: exits 1 with one line naming
  the socket when no daemon answers).
* ``containerd copy REF [--name NAME]… [--unpack] [--snapshotter S] [--platform P]``: copy an
  image from pallet's store into containerd (children first, GC labels, under a temporary lease),
  name it, and optionally unpack it with the daemon's ``Diff.Apply``.
* ``containerd images [FILTER]…``: the daemon's images in the namespace.

Every command takes ``--containerd[=SOCKET]`` (default ``$PALLET_CONTAINERD_ADDRESS``, else
``$CONTAINERD_ADDRESS``, else ``/run/containerd/containerd.sock``) and ``--namespace NS``
(default ``$PALLET_CONTAINERD_NAMESPACE``, else ``$CONTAINERD_NAMESPACE``, else ``default``), as
the other commands that can work on containerd. The containerd client (and grpc) is imported
only when one of these commands runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ._common import (
    add_command,
    add_containerd_arguments,
    command_group,
    human,
    image_json,
    output,
    pallet_store,
    table,
)

__all__ = ["build_parser"]


def cmd_version(args: argparse.Namespace) -> int:
    with pallet_store(args, containerd=True) as c:
        v = c.version()
    obj = {
        "address": v.address,
        "namespace": v.namespace,
        "version": v.version,
        "revision": v.revision,
    }
    output(args, obj, lambda: f"containerd {v.version} ({v.revision}) at {v.address}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    with pallet_store(args, containerd=False) as src:
        img = src.image(args.ref)  # before connecting: a name pallet lacks is the first error
        with pallet_store(args, containerd=True) as dst:
            res = src.copy(
                img,
                dst,
                names=args.names or (),
                unpack=args.unpack,
                snapshotter=args.snapshotter,
                platform=args.platform,
            )
    obj = {
        "names": list(res.names),
        "digest": res.digest,
        "chain_id": res.chain_id,
        "blobs_written": res.blobs_written,
        "blobs_present": res.blobs_present,
        "bytes_written": res.bytes_written,
    }

    def text() -> str:
        lines = [f"{n}: {res.digest}" for n in res.names]
        lines.append(
            f"{res.blobs_written} blobs written ({res.bytes_written} bytes), "
            f"{res.blobs_present} already present"
        )
        if res.chain_id:
            lines.append(f"unpacked into {args.snapshotter}: {res.chain_id}")
        return "\n".join(lines)

    output(args, obj, text)
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    with pallet_store(args, containerd=True) as c:
        imgs = c.images(args.filters)
    output(
        args,
        [image_json(i) for i in imgs],
        lambda: table(
            [(i.name, i.digest, human(i.size)) for i in imgs],
            ("NAME", "DIGEST", "SIZE"),
        ),
    )
    return 0


def build_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """The parser of ``containerd version|copy|images``."""
    p, grp = command_group(prog)

    def cadd(
        name: str, fn: Callable[[argparse.Namespace], int], help: str, **kw: str
    ) -> argparse.ArgumentParser:
        sp = add_command(grp, name, fn, help, **kw)
        add_containerd_arguments(sp, what="the containerd daemon to talk to")
        return sp

    cadd("version", cmd_version, "show the daemon's version (checks that it answers)")
    sp = cadd("copy", cmd_copy, "copy an image from pallet's store into containerd")
    sp.add_argument("ref", metavar="REF", help="image name in pallet's store")
    sp.add_argument(
        "--name",
        dest="names",
        action="append",
        metavar="NAME",
        help="name in containerd (repeatable; default: the image's own name)",
    )
    sp.add_argument("--unpack", action="store_true", help="unpack into a snapshotter")
    sp.add_argument("--snapshotter", default="native", help="snapshotter (default: native)")
    sp.add_argument("--platform", help="the manifest to unpack (default: this machine's)")
    sp = cadd(
        "images",
        cmd_images,
        "list the daemon's images",
        description="List the daemon's images. SIZE is the size of everything an image "
        "references (for an index, every platform), as ctr images ls shows; --format json also "
        "gives the manifest's or index's own size as root_size.",
    )
    sp.add_argument("filters", nargs="*", help="filters such as name~=^docker.io/")
    return p
