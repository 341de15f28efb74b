"""``pallet content``, ``images``, ``leases``, ``gc`` and ``fsck``: the store commands.

``content ls``, ``images ls``, ``images rm`` work on containerd too (``--containerd``); the
others on the embedded store.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .. import InvalidArgument
from ._common import (
    add_command,
    add_containerd_arguments,
    command_group,
    command_parser,
    human,
    image_json,
    output,
    pallet_store,
    parse_kv,
    table,
)

if TYPE_CHECKING:
    from .. import ContentInfo

__all__ = ["build_parser"]


def _info_json(i: ContentInfo) -> dict[str, Any]:
    return {
        "digest": i.digest,
        "size": i.size,
        "created": i.created.isoformat(),
        "updated": i.updated.isoformat(),
        "labels": dict(i.labels),
    }


# --- content ------------------------------------------------------------------------------------
def cmd_content_ls(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        infos = store.content.list(args.filters)
    if args.quiet:
        for i in infos:
            print(i.digest)
        return 0
    output(
        args,
        [_info_json(i) for i in infos],
        lambda: table(
            [
                (
                    i.digest,
                    human(i.size),
                    i.created.strftime("%Y-%m-%d %H:%M:%S"),
                    ",".join(f"{k}={v}" for k, v in sorted(i.labels.items())),
                )
                for i in infos
            ],
            ("DIGEST", "SIZE", "CREATED", "LABELS"),
        ),
    )
    return 0


def cmd_content_info(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        i = store.content.info(args.digest)
    output(args, _info_json(i), lambda: json.dumps(_info_json(i), indent=2, sort_keys=True))
    return 0


def cmd_content_cat(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    with pallet_store(args) as store, store.content.open(args.digest) as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
    out.flush()
    return 0


def cmd_content_rm(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        for d in args.digests:
            store.content.remove(d)
            print(d)
    return 0


def cmd_content_label(args: argparse.Namespace) -> int:
    new = parse_kv(args.labels, "label")
    with pallet_store(args) as store:
        info = store.content.label(args.digest, new)
    output(
        args, _info_json(info), lambda: ",".join(f"{k}={v}" for k, v in sorted(info.labels.items()))
    )
    return 0


def cmd_content_ingest(args: argparse.Namespace) -> int:
    labels = parse_kv(args.label, "label")
    with pallet_store(args) as store:
        src = open(args.file, "rb") if args.file else sys.stdin.buffer  # noqa: SIM115
        try:
            dgst = store.content.ingest(
                args.ref,
                src,
                expected_size=args.expected_size,
                expected_digest=args.expected_digest,
                labels=labels,
            )
        finally:
            if args.file:
                src.close()
    print(dgst)
    return 0


def cmd_content_active(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        sts = store.content.active(args.filters)
    output(
        args,
        [
            {
                "ref": s.ref,
                "offset": s.offset,
                "total": s.total,
                "expected": s.expected,
                "started": s.started.isoformat(),
                "updated": s.updated.isoformat(),
            }
            for s in sts
        ],
        lambda: table(
            [
                (
                    s.ref,
                    str(s.offset),
                    str(s.total or ""),
                    s.updated.strftime("%Y-%m-%d %H:%M:%S"),
                )
                for s in sts
            ],
            ("REF", "OFFSET", "TOTAL", "UPDATED"),
        ),
    )
    return 0


def cmd_content_abort(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        for ref in args.refs:
            store.content.abort(ref)
            print(ref)
    return 0


# --- images -------------------------------------------------------------------------------------
def cmd_images_ls(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        imgs = store.images(args.filters)
    if args.quiet:
        for i in imgs:
            print(i.name)
        return 0
    output(
        args,
        [image_json(i) for i in imgs],
        lambda: table(
            [
                (
                    i.name,
                    i.media_type.rsplit(".", 2)[-2] if "." in i.media_type else i.media_type,
                    i.digest,
                    human(i.size),
                )
                for i in imgs
            ],
            ("REF", "TYPE", "DIGEST", "SIZE"),
        ),
    )
    return 0


def cmd_images_inspect(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        img = store.image(args.name)
        obj = image_json(img)
        obj["graph"] = [d.to_json() for d in store.graph(img)]
    print(json.dumps(obj, indent=2, sort_keys=True))
    return 0


def cmd_images_rm(args: argparse.Namespace) -> int:
    # the last delete collects (sync): the embedded store runs its collector, containerd's
    # answers once its GC freed what no image, lease or label still holds
    with pallet_store(args) as store:
        last = len(args.names) - 1
        for idx, n in enumerate(args.names):
            store.remove(n, gc=idx == last and not args.no_gc)
            print(n)
    return 0


def cmd_images_tag(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        for name in args.targets:
            store.tag(args.source, name)
            print(name)
    return 0


# --- leases -------------------------------------------------------------------------------------
def cmd_leases_ls(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        ls = store.leases.list(args.filters)
    output(
        args,
        [
            {
                "id": x.id,
                "created": x.created.isoformat() if x.created else None,
                "labels": dict(x.labels),
                "resources": [{"type": r.type, "id": r.id} for r in x.resources],
            }
            for x in ls
        ],
        lambda: table(
            [
                (
                    x.id,
                    x.created.strftime("%Y-%m-%d %H:%M:%S") if x.created else "",
                    ",".join(f"{k}={v}" for k, v in sorted(x.labels.items())),
                )
                for x in ls
            ],
            ("ID", "CREATED", "LABELS"),
        ),
    )
    return 0


def cmd_leases_create(args: argparse.Namespace) -> int:
    labels = parse_kv(args.label, "label")
    expires = timedelta(seconds=_duration(args.expires)) if args.expires else None
    with pallet_store(args) as store:
        lease = store.leases.create(args.id or None, expires=expires, labels=labels)
    print(lease.id)
    return 0


def _duration(s: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if s[-1] in units:
            return float(s[:-1]) * units[s[-1]]
        return float(s)
    except (ValueError, IndexError):
        raise InvalidArgument(f"duration {s!r}: want e.g. 30s, 10m, 24h") from None


def cmd_leases_rm(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        for lid in args.ids:
            store.leases.remove(lid, sync=args.sync)
            print(lid)
    return 0


# --- gc / fsck ----------------------------------------------------------------------------------
def cmd_gc(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        st = store.gc(dry_run=args.dry_run)
    output(
        args,
        {
            "blobs": list(st.blobs),
            "bytes": st.bytes,
            "leases": list(st.leases),
            "ingests": list(st.ingests),
            "snapshots": list(st.snapshots),
        },
        lambda: (
            f"{'would remove' if args.dry_run else 'removed'} {len(st.blobs)} blobs "
            f"({human(st.bytes)}), {len(st.snapshots)} snapshots, {len(st.ingests)} "
            f"ingests, {len(st.leases)} expired leases"
        ),
    )
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    with pallet_store(args) as store:
        report = store.fsck(repair=args.repair)
    problems = report.problems
    if args.format == "json":
        print(
            json.dumps(
                [
                    {
                        "kind": p.kind,
                        "subject": p.subject,
                        "detail": p.detail,
                        "repaired": p.repaired,
                    }
                    for p in problems
                ],
                indent=2,
            )
        )
    else:
        for p in problems:
            print(p)
        print(f"{report.blobs_verified} blobs verified, {len(problems)} problems")
    return 0 if report.ok else 1


# --- parser -------------------------------------------------------------------------------------
def _content(prog: str) -> argparse.ArgumentParser:
    p, c = command_group(prog)
    sp = add_command(c, "ls", cmd_content_ls, "list blobs", aliases=["list"])
    sp.add_argument("filters", nargs="*", help='filters such as labels."k"==v or digest~=^sha')
    sp.add_argument("-q", "--quiet", action="store_true", help="digests only")
    add_containerd_arguments(sp)
    sp = add_command(c, "info", cmd_content_info, "show a blob's info")
    sp.add_argument("digest")
    sp = add_command(c, "cat", cmd_content_cat, "write a blob to standard output", aliases=["get"])
    sp.add_argument("digest")
    sp = add_command(c, "rm", cmd_content_rm, "delete blobs", aliases=["delete"])
    sp.add_argument("digests", nargs="+")
    sp = add_command(c, "label", cmd_content_label, "set labels (k=v; an empty v removes k)")
    sp.add_argument("digest")
    sp.add_argument("labels", nargs="+", metavar="KEY=VALUE")
    sp = add_command(
        c,
        "ingest",
        cmd_content_ingest,
        "write a blob from standard input or a file",
        aliases=["put"],
    )
    sp.add_argument("ref", help="ingest ref: the same ref resumes an interrupted ingest")
    sp.add_argument("-f", "--file", help="read this file instead of standard input")
    sp.add_argument("--expected-size", type=int, default=0)
    sp.add_argument("--expected-digest")
    sp.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    sp = add_command(c, "active", cmd_content_active, "list ingests in progress or interrupted")
    sp.add_argument("filters", nargs="*")
    sp = add_command(c, "abort", cmd_content_abort, "drop ingests")
    sp.add_argument("refs", nargs="+")
    return p


def _images(prog: str) -> argparse.ArgumentParser:
    p, i = command_group(prog)
    sp = add_command(
        i,
        "ls",
        cmd_images_ls,
        "list images",
        aliases=["list"],
        description="List images. SIZE is the size of everything an image references (for an "
        "index, every platform's manifest, config and layers), as docker images shows; content "
        "not in the store counts by its descriptor. --format json also gives the manifest's or "
        "index's own size as root_size.",
    )
    sp.add_argument("filters", nargs="*", help="filters such as name~=^docker.io/")
    sp.add_argument("-q", "--quiet", action="store_true", help="names only")
    add_containerd_arguments(sp)
    sp = add_command(i, "inspect", cmd_images_inspect, "show an image and its graph")
    sp.add_argument("name")
    sp = add_command(
        i, "rm", cmd_images_rm, "delete images, then collect garbage", aliases=["delete"]
    )
    sp.add_argument("names", nargs="+")
    sp.add_argument(
        "--no-gc",
        action="store_true",
        help="do not collect garbage afterwards (containerd: do not wait for its collector)",
    )
    add_containerd_arguments(sp)
    sp = add_command(i, "tag", cmd_images_tag, "give an image more names")
    sp.add_argument("source")
    sp.add_argument("targets", nargs="+")
    return p


def _leases(prog: str) -> argparse.ArgumentParser:
    p, le = command_group(prog)
    sp = add_command(le, "ls", cmd_leases_ls, "list leases", aliases=["list"])
    sp.add_argument("filters", nargs="*")
    sp = add_command(le, "create", cmd_leases_create, "create a lease")
    sp.add_argument("--id")
    sp.add_argument("--expires", help="duration until expiry, e.g. 24h")
    sp.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    sp = add_command(le, "rm", cmd_leases_rm, "delete leases", aliases=["delete"])
    sp.add_argument("ids", nargs="+")
    sp.add_argument("--sync", action="store_true", help="collect garbage before returning")
    return p


def _gc(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_gc)
    p.add_argument("--dry-run", action="store_true", help="only report what would go")
    return p


def _fsck(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_fsck)
    p.add_argument(
        "--repair", action="store_true", help="remove what cannot be trusted (never a valid blob)"
    )
    return p


_PARSERS = {"content": _content, "images": _images, "leases": _leases, "gc": _gc, "fsck": _fsck}


def build_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (content, images, leases, gc or fsck)."""
    return _PARSERS[name](prog)
