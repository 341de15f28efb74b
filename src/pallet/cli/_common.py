"""What the command modules share: the parser class and global flags, the store a command opens,
and the output helpers.

``pallet --help`` imports this module, so it imports only the standard library and
:mod:`pallet.errors` at its top; the store and the reference parser are imported by the function
that needs them.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .. import InvalidArgument

if TYPE_CHECKING:
    from .. import Image as PublicImage
    from .. import Store as PublicStore

    #: a command's function: parsed arguments in, exit status out
    Run = Callable[[argparse.Namespace], int]
    Group = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "EXIT_USAGE",
    "Parser",
    "add_command",
    "add_containerd_arguments",
    "add_global_flags",
    "command_group",
    "command_parser",
    "human",
    "image_json",
    "output",
    "pallet_store",
    "parse_kv",
    "table",
    "wants_containerd",
]

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"pallet: error: {message}\n")


def add_global_flags(p: argparse.ArgumentParser, *, format: bool = True) -> None:
    """``--root`` and ``--format``, accepted before the command and after it.

    Their defaults are suppressed so that a value given before the command survives the command's
    own parser; :func:`pallet.cli.main.main` fills in the defaults.
    """
    p.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="store root (default: $PALLET_ROOT or $XDG_DATA_HOME/pallet)",
    )
    if format:
        p.add_argument(
            "--format", choices=("text", "json"), default=argparse.SUPPRESS, help="output format"
        )


def command_parser(prog: str, fn: Run, *, format: bool = True, **kw: Any) -> Parser:
    """The parser of a command without sub-commands (``pallet gc``), running ``fn``."""
    p = Parser(prog=prog, **kw)
    add_global_flags(p, format=format)
    p.set_defaults(func=fn)
    return p


def command_group(prog: str) -> tuple[Parser, Group]:
    """The parser of a command with sub-commands (``pallet images``) and the action to add them
    to with :func:`add_command`."""
    p = Parser(prog=prog)
    return p, p.add_subparsers(dest="sub", required=True, parser_class=Parser)


def add_command(group: Group, name: str, fn: Run, help: str, **kw: Any) -> argparse.ArgumentParser:
    """Add sub-command ``name`` running ``fn`` (with ``--root`` and ``--format``) to ``group``."""
    sp = group.add_parser(name, help=help, **kw)
    add_global_flags(sp)
    sp.set_defaults(func=fn)
    return sp


def add_containerd_arguments(
    p: argparse.ArgumentParser,
    *,
    snapshotter: bool = False,
    what: str = "work on a containerd daemon instead of the embedded store",
) -> None:
    """Add ``--containerd[=SOCKET]`` (help: ``what`` and the default socket) and
    ``--namespace`` (and ``--snapshotter``) to ``p``."""
    p.add_argument(
        "--containerd",
        nargs="?",
        const="",
        default=None,
        metavar="SOCKET",
        help=f"{what} (default socket: "
        "$PALLET_CONTAINERD_ADDRESS, $CONTAINERD_ADDRESS, /run/containerd/containerd.sock)",
    )
    p.add_argument(
        "--namespace",
        metavar="NS",
        help="containerd namespace (default: $PALLET_CONTAINERD_NAMESPACE, "
        "$CONTAINERD_NAMESPACE, default)",
    )
    if snapshotter:
        p.add_argument(
            "--snapshotter",
            metavar="NAME",
            help="containerd snapshotter for unpack (default: $CONTAINERD_SNAPSHOTTER or "
            "overlayfs)",
        )


def wants_containerd(args: argparse.Namespace) -> bool:
    """``--containerd`` given, or ``$PALLET_CONTAINERD_ADDRESS`` set."""
    if getattr(args, "containerd", None) is not None:
        return True
    return bool(os.environ.get("PALLET_CONTAINERD_ADDRESS"))


def pallet_store(args: argparse.Namespace, *, containerd: bool | None = None) -> PublicStore:
    """The :class:`pallet.Store` a command works on: containerd if ``containerd`` (default:
    the command takes ``--containerd`` and :func:`wants_containerd`), else the embedded store
    at ``--root``. Close it (``with``) when done."""
    from .. import Store

    if containerd is None:
        containerd = hasattr(args, "containerd") and wants_containerd(args)
    if not containerd:
        return Store(args.root)
    return Store.containerd(
        args.containerd or None,
        args.namespace,
        snapshotter=getattr(args, "snapshotter", None),
        root=args.root,
    )


def output(args: argparse.Namespace, obj: Any, text: Callable[[], str]) -> None:
    """Print ``obj`` as JSON with ``--format json``, else ``text()`` (if not empty)."""
    if args.format == "json":
        print(json.dumps(obj, indent=2, sort_keys=True))
    else:
        s = text()
        if s:
            print(s)


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned columns two spaces apart, as ``ctr``'s tables."""
    allrows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in allrows
    )


def human(n: int) -> str:
    """``n`` bytes in binary units: ``512 B``, ``1.5 KiB``."""
    f = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if f < 1024 or unit == "TiB":
            break
        f /= 1024
    return f"{f:.0f} {unit}" if unit == "B" else f"{f:.1f} {unit}"


def image_json(i: PublicImage) -> dict[str, Any]:
    """An image as ``--format json`` prints it: ``size`` is everything it references,
    ``root_size`` the manifest's or index's own (``target.size``)."""
    target = (
        i.target.to_json()
        if i.target is not None
        else {"mediaType": i.media_type, "digest": i.digest, "size": i.root_size}
    )
    return {
        "name": i.name,
        "target": target,
        "size": i.size,
        "root_size": i.root_size,
        "labels": dict(i.labels),
        "created": i.created.isoformat() if i.created else None,
        "updated": i.updated.isoformat() if i.updated else None,
    }


def parse_kv(items: Sequence[str], what: str) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; ``what`` names an item in the error."""
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"{what} {it!r}: want key=value")
        out[k] = v
    return out
