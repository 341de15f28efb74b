"""``pallet containerd …``: talk to a containerd daemon with pallet's containerd client.

* ``containerd version``: the daemon's version (a health check: exits 1 with one line naming
  the socket when no daemon answers).
* ``containerd copy REF [--name NAME]… [--unpack] [--snapshotter S] [--platform P]``: copy an
  image from pallet's store into containerd (children first, GC labels, under a temporary lease),
  name it, and optionally unpack it with the daemon's ``Diff.Apply``.
* ``containerd images [FILTER]…``: the daemon's images in the namespace.

Every command takes ``-a/--address SOCKET`` (default ``$PALLET_CONTAINERD_ADDRESS``, else
``$CONTAINERD_ADDRESS``, else ``/run/containerd/containerd.sock``) and ``-n/--namespace NS``
(default ``$PALLET_CONTAINERD_NAMESPACE``, else ``$CONTAINERD_NAMESPACE``, else ``default``).
The containerd client (and grpc) is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..containerd import Client

__all__ = ["register"]


def _client(args: argparse.Namespace) -> Client:
    from ..containerd import connect, from_env, namespace_from_env

    return connect(from_env(args.address), namespace_from_env(args.namespace))


def cmd_version(args: argparse.Namespace) -> int:
    from .main import _out

    with _client(args) as c:
        v = c.version()
        obj = {
            "address": c.address,
            "namespace": c.namespace,
            "version": v.version,
            "revision": v.revision,
        }
    _out(args, obj, lambda: f"containerd {v.version} ({v.revision}) at {obj['address']}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from ..containerd import copy_image
    from ..oci.descriptor import Platform
    from .image_cmds import _find
    from .main import _db, _out

    db = _db(args)
    img = _find(db.images, args.ref)
    platform = Platform.parse(args.platform) if args.platform else None
    with _client(args) as c:
        res = copy_image(
            c,
            db.content,
            img,
            names=args.names or (),
            unpack=args.unpack,
            snapshotter=args.snapshotter,
            platform=platform,
        )
    obj = {
        "names": list(res.names),
        "digest": str(res.image.target.digest),
        "chain_id": str(res.chain_id) if res.chain_id else None,
        "blobs_written": res.blobs_written,
        "blobs_present": res.blobs_present,
        "bytes_written": res.bytes_written,
    }

    def text() -> str:
        lines = [f"{n}: {res.image.target.digest}" for n in res.names]
        lines.append(
            f"{res.blobs_written} blobs written ({res.bytes_written} bytes), "
            f"{res.blobs_present} already present"
        )
        if res.chain_id:
            lines.append(f"unpacked into {args.snapshotter}: {res.chain_id}")
        return "\n".join(lines)

    _out(args, obj, text)
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    from .main import _human, _image_json, _out, _table

    with _client(args) as c:
        imgs = c.images.list(args.filters)
    _out(
        args,
        [_image_json(i) for i in imgs],
        lambda: _table(
            [(i.name, str(i.target.digest), _human(i.target.size)) for i in imgs],
            ("NAME", "DIGEST", "SIZE"),
        ),
    )
    return 0


def register(sub: Any, common: Any, add: Any) -> None:
    """Add ``containerd version|copy|images`` to the parser."""
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument(
        "-a",
        "--address",
        metavar="SOCKET",
        help="containerd socket (default: $PALLET_CONTAINERD_ADDRESS, $CONTAINERD_ADDRESS, "
        "/run/containerd/containerd.sock)",
    )
    conn.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="containerd namespace (default: $PALLET_CONTAINERD_NAMESPACE, "
        "$CONTAINERD_NAMESPACE, default)",
    )
    from .main import _Parser

    grp = sub.add_parser("containerd", help="a containerd daemon").add_subparsers(
        dest="sub", required=True, parser_class=_Parser
    )

    def cadd(name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = grp.add_parser(name, parents=[common, conn], help=help)
        sp.set_defaults(func=fn)
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
    sp = cadd("images", cmd_images, "list the daemon's images")
    sp.add_argument("filters", nargs="*", help="filters such as name~=^docker.io/")
