"""The ``pallet`` command line: composition root, the only place that prints or exits.

Imports of anything heavy happen inside the command that needs it, so ``pallet --help`` and the
store commands start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from pathlib import Path

    from ..content import Info
    from ..images import Image
    from ..metadata.store import Store
    from .backend import Backend

__all__ = ["default_root", "main"]

EXIT_USAGE = 2


def default_root() -> Path:
    """``$PALLET_ROOT``, else ``$XDG_DATA_HOME/pallet``, else ``~/.local/share/pallet``."""
    from pathlib import Path

    env = os.environ.get("PALLET_ROOT")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "pallet"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"pallet: error: {message}\n")


def _out(args: argparse.Namespace, obj: Any, text: Callable[[], str]) -> None:
    import json

    if args.format == "json":
        print(json.dumps(obj, indent=2, sort_keys=True))
    else:
        s = text()
        if s:
            print(s)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    allrows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in allrows
    )


def _human(n: int) -> str:
    f = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if f < 1024 or unit == "TiB":
            return f"{f:.0f} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1024
    return str(n)


def _db(args: argparse.Namespace) -> Store:
    from ..metadata.store import open_store

    return open_store(args.root or default_root())


@contextlib.contextmanager
def _backend(args: argparse.Namespace) -> Iterator[Backend]:
    """The store the command works on (embedded, or containerd with ``--containerd``), closed
    when the block ends."""
    from .backend import open_backend

    b = open_backend(args)
    try:
        yield b
    finally:
        b.close()


def _parse_kv(items: Sequence[str], what: str) -> dict[str, str]:
    from ..errors import InvalidArgument

    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"{what} {it!r}: want key=value")
        out[k] = v
    return out


def _digest(s: str) -> Any:
    from ..oci.digest import Digest

    return Digest.parse(s)


def _info_json(i: Info) -> dict[str, Any]:
    return {
        "digest": i.digest,
        "size": i.size,
        "created": i.created_at.isoformat(),
        "updated": i.updated_at.isoformat(),
        "labels": dict(i.labels),
    }


def _image_json(i: Image) -> dict[str, Any]:
    return {
        "name": i.name,
        "target": i.target.to_json(),
        "labels": dict(i.labels),
        "created": i.created_at.isoformat() if i.created_at else None,
        "updated": i.updated_at.isoformat() if i.updated_at else None,
    }


# --- content ------------------------------------------------------------------------------------
def cmd_content_ls(args: argparse.Namespace) -> int:
    with _backend(args) as b:
        infos = list(b.content.walk(args.filters))
    if args.quiet:
        for i in infos:
            print(i.digest)
        return 0
    _out(
        args,
        [_info_json(i) for i in infos],
        lambda: _table(
            [
                (
                    i.digest,
                    _human(i.size),
                    i.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    ",".join(f"{k}={v}" for k, v in sorted(i.labels.items())),
                )
                for i in infos
            ],
            ("DIGEST", "SIZE", "CREATED", "LABELS"),
        ),
    )
    return 0


def cmd_content_info(args: argparse.Namespace) -> int:
    import json

    i = _db(args).content.info(_digest(args.digest))
    _out(args, _info_json(i), lambda: json.dumps(_info_json(i), indent=2, sort_keys=True))
    return 0


def cmd_content_cat(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    with _db(args).content.open(_digest(args.digest)) as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
    out.flush()
    return 0


def cmd_content_rm(args: argparse.Namespace) -> int:
    db = _db(args)
    for d in args.digests:
        db.content.delete(_digest(d))
        print(d)
    return 0


def cmd_content_label(args: argparse.Namespace) -> int:
    from dataclasses import replace

    new = _parse_kv(args.labels, "label")
    db = _db(args)
    info = db.content.info(_digest(args.digest))
    paths = [f"labels.{k}" for k in new]
    info = db.content.update(replace(info, labels=new), paths)
    _out(
        args, _info_json(info), lambda: ",".join(f"{k}={v}" for k, v in sorted(info.labels.items()))
    )
    return 0


def cmd_content_ingest(args: argparse.Namespace) -> int:
    from ..errors import AlreadyExists

    db = _db(args)
    expected = _digest(args.expected_digest) if args.expected_digest else None
    labels = _parse_kv(args.label, "label")
    src = open(args.file, "rb") if args.file else sys.stdin.buffer  # noqa: SIM115
    try:
        with db.content.writer(args.ref, total=args.expected_size, expected=expected) as w:
            if w.offset:  # resume: skip what the store has
                if src.seekable():
                    src.seek(w.offset)
                else:
                    left = w.offset
                    while left and (chunk := src.read(min(left, 1 << 20))):
                        left -= len(chunk)
            while chunk := src.read(1 << 20):
                w.write(chunk)
            dgst = w.commit(args.expected_size, expected, labels=labels)
    except AlreadyExists:
        if expected is None:
            raise
        dgst = expected
    finally:
        if args.file:
            src.close()
    print(dgst)
    return 0


def cmd_content_active(args: argparse.Namespace) -> int:
    sts = _db(args).content.list_statuses(args.filters)
    _out(
        args,
        [
            {
                "ref": s.ref,
                "offset": s.offset,
                "total": s.total,
                "expected": s.expected,
                "started": s.started_at.isoformat(),
                "updated": s.updated_at.isoformat(),
            }
            for s in sts
        ],
        lambda: _table(
            [
                (
                    s.ref,
                    str(s.offset),
                    str(s.total or ""),
                    s.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
                )
                for s in sts
            ],
            ("REF", "OFFSET", "TOTAL", "UPDATED"),
        ),
    )
    return 0


def cmd_content_abort(args: argparse.Namespace) -> int:
    db = _db(args)
    for ref in args.refs:
        db.content.abort(ref)
        print(ref)
    return 0


# --- images -------------------------------------------------------------------------------------
def cmd_images_ls(args: argparse.Namespace) -> int:
    with _backend(args) as b:
        imgs = b.images.list(args.filters)
    if args.quiet:
        for i in imgs:
            print(i.name)
        return 0
    _out(
        args,
        [_image_json(i) for i in imgs],
        lambda: _table(
            [
                (
                    i.name,
                    i.target.media_type.rsplit(".", 2)[-2]
                    if "." in i.target.media_type
                    else i.target.media_type,
                    i.target.digest,
                    _human(i.target.size),
                )
                for i in imgs
            ],
            ("REF", "TYPE", "DIGEST", "SIZE"),
        ),
    )
    return 0


def cmd_images_inspect(args: argparse.Namespace) -> int:
    import json

    from ..images import walk

    db = _db(args)
    img = db.images.get(args.name)
    obj = _image_json(img)
    obj["graph"] = [d.to_json() for d in walk(db.content, img.target)]
    print(json.dumps(obj, indent=2, sort_keys=True))
    return 0


def cmd_images_rm(args: argparse.Namespace) -> int:
    # the last delete collects (sync): the embedded store runs its collector, containerd's
    # answers once its GC freed what no image, lease or label still holds
    with _backend(args) as b:
        last = len(args.names) - 1
        for idx, n in enumerate(args.names):
            b.images.delete(n, sync=idx == last and not args.no_gc)
            print(n)
    return 0


def cmd_images_tag(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..errors import NotFound

    db = _db(args)
    src = db.images.get(args.source)
    for name in args.targets:
        img = replace(src, name=name)
        try:
            db.images.update(img, ["target"])
        except NotFound:
            db.images.create(img)
        print(name)
    return 0


# --- leases -------------------------------------------------------------------------------------
def cmd_leases_ls(args: argparse.Namespace) -> int:
    db = _db(args)
    ls = db.leases.list(args.filters)
    _out(
        args,
        [
            {
                "id": x.id,
                "created": x.created_at.isoformat() if x.created_at else None,
                "labels": dict(x.labels),
                "resources": [{"type": r.type, "id": r.id} for r in db.leases.list_resources(x.id)],
            }
            for x in ls
        ],
        lambda: _table(
            [
                (
                    x.id,
                    x.created_at.strftime("%Y-%m-%d %H:%M:%S") if x.created_at else "",
                    ",".join(f"{k}={v}" for k, v in sorted(x.labels.items())),
                )
                for x in ls
            ],
            ("ID", "CREATED", "LABELS"),
        ),
    )
    return 0


def cmd_leases_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from ..labels import GC_EXPIRE
    from ..leases import new_id

    labels = _parse_kv(args.label, "label")
    if args.expires:
        labels[GC_EXPIRE] = (
            (datetime.now(UTC) + timedelta(seconds=_duration(args.expires)))
            .isoformat()
            .replace("+00:00", "Z")
        )
    lease = _db(args).leases.create(args.id or new_id(), labels)
    print(lease.id)
    return 0


def _duration(s: str) -> float:
    from ..errors import InvalidArgument

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if s[-1] in units:
            return float(s[:-1]) * units[s[-1]]
        return float(s)
    except (ValueError, IndexError):
        raise InvalidArgument(f"duration {s!r}: want e.g. 30s, 10m, 24h") from None


def cmd_leases_rm(args: argparse.Namespace) -> int:
    db = _db(args)
    for lid in args.ids:
        db.leases.delete(lid, sync=args.sync)
        print(lid)
    return 0


# --- gc / fsck ----------------------------------------------------------------------------------
def cmd_gc(args: argparse.Namespace) -> int:
    st = _db(args).collect(dry_run=args.dry_run)
    _out(
        args,
        {
            "blobs": st.blobs,
            "bytes": st.bytes,
            "leases": st.leases,
            "ingests": st.ingests,
            "snapshots": st.snapshots,
        },
        lambda: (
            f"{'would remove' if args.dry_run else 'removed'} {len(st.blobs)} blobs "
            f"({_human(st.bytes)}), {len(st.snapshots)} snapshots, {len(st.ingests)} "
            f"ingests, {len(st.leases)} expired leases"
        ),
    )
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    import json

    db = _db(args)
    n = 0

    def count(_: object) -> None:
        nonlocal n
        n += 1

    problems = db.fsck(repair=args.repair, on_blob=count)
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
        print(f"{n} blobs verified, {len(problems)} problems")
    unrepaired = [p for p in problems if not p.repaired]
    return 1 if unrepaired else 0


# --- parser -------------------------------------------------------------------------------------
#
# ``pallet CMD ...`` builds only CMD's parser (and the names and one-line helps of the others, for
# ``pallet --help`` and argparse's messages): building every command's arguments, and importing
# the modules that define them, was most of the start-up time of a short command.

Add = Callable[..., argparse.ArgumentParser]
Register = Callable[[Any, argparse.ArgumentParser, Add], None]


class _Unbuilt(Exception):
    """argparse chose a command whose parser was not built (``_command`` guessed another)."""


class _Stub(_Parser):
    """A placeholder subparser: a name and a help line in ``pallet --help``, nothing to parse.

    Nothing reads a subparser before argparse picks it, so a stub skips ``ArgumentParser``'s
    set-up (a third of a millisecond each).
    """

    def __init__(self, **kwargs: Any) -> None:
        self.prog = str(kwargs.get("prog", ""))

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        raise _Unbuilt


class _Sink:
    """Swallows what a module's ``register`` does to the parsers of commands not being built."""

    def __getattr__(self, name: str) -> Callable[..., _Sink]:
        return self._call

    def _call(self, *args: Any, **kwargs: Any) -> _Sink:
        return self


class _Only:
    """The subparsers action, seen by a ``register`` that defines ``name`` among others: only
    ``name`` gets a real parser."""

    def __init__(self, sub: Any, name: str) -> None:
        self.sub = sub
        self.name = name

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self.name:
            return self.sub.add_parser(name, **kwargs)
        return _Sink()


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="store root (default: $PALLET_ROOT or $XDG_DATA_HOME/pallet)",
    )
    common.add_argument(
        "--format", choices=("text", "json"), default=argparse.SUPPRESS, help="output format"
    )
    return common


def _add(
    parent: Any, name: str, fn: Callable[[argparse.Namespace], int], help: str, **kw: Any
) -> argparse.ArgumentParser:
    """Add command ``name`` running ``fn`` (with --root and --format) to ``parent``."""
    sp: argparse.ArgumentParser = parent.add_parser(name, parents=[_COMMON], help=help, **kw)
    sp.set_defaults(func=fn)
    return sp


def _reg_content(sub: Any, common: argparse.ArgumentParser, add: Add) -> None:
    from . import backend

    c = sub.add_parser("content", help="content store").add_subparsers(
        dest="sub", required=True, parser_class=_Parser
    )
    sp = add(c, "ls", cmd_content_ls, "list blobs", aliases=["list"])
    sp.add_argument("filters", nargs="*", help='filters such as labels."k"==v or digest~=^sha')
    sp.add_argument("-q", "--quiet", action="store_true", help="digests only")
    backend.add_arguments(sp)
    sp = add(c, "info", cmd_content_info, "show a blob's info")
    sp.add_argument("digest")
    sp = add(c, "cat", cmd_content_cat, "write a blob to standard output", aliases=["get"])
    sp.add_argument("digest")
    sp = add(c, "rm", cmd_content_rm, "delete blobs", aliases=["delete"])
    sp.add_argument("digests", nargs="+")
    sp = add(c, "label", cmd_content_label, "set labels (k=v; an empty v removes k)")
    sp.add_argument("digest")
    sp.add_argument("labels", nargs="+", metavar="KEY=VALUE")
    sp = add(
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
    sp = add(c, "active", cmd_content_active, "list ingests in progress or interrupted")
    sp.add_argument("filters", nargs="*")
    sp = add(c, "abort", cmd_content_abort, "drop ingests")
    sp.add_argument("refs", nargs="+")


def _reg_images(sub: Any, common: argparse.ArgumentParser, add: Add) -> None:
    from . import backend

    i = sub.add_parser("images", aliases=["image", "i"], help="image store").add_subparsers(
        dest="sub", required=True, parser_class=_Parser
    )
    sp = add(i, "ls", cmd_images_ls, "list images", aliases=["list"])
    sp.add_argument("filters", nargs="*", help="filters such as name~=^docker.io/")
    sp.add_argument("-q", "--quiet", action="store_true", help="names only")
    backend.add_arguments(sp)
    sp = add(i, "inspect", cmd_images_inspect, "show an image and its graph")
    sp.add_argument("name")
    sp = add(i, "rm", cmd_images_rm, "delete images, then collect garbage", aliases=["delete"])
    sp.add_argument("names", nargs="+")
    sp.add_argument(
        "--no-gc",
        action="store_true",
        help="do not collect garbage afterwards (containerd: do not wait for its collector)",
    )
    backend.add_arguments(sp)
    sp = add(i, "tag", cmd_images_tag, "give an image more names")
    sp.add_argument("source")
    sp.add_argument("targets", nargs="+")


def _reg_leases(sub: Any, common: argparse.ArgumentParser, add: Add) -> None:
    le = sub.add_parser("leases", aliases=["lease"], help="leases").add_subparsers(
        dest="sub", required=True, parser_class=_Parser
    )
    sp = add(le, "ls", cmd_leases_ls, "list leases", aliases=["list"])
    sp.add_argument("filters", nargs="*")
    sp = add(le, "create", cmd_leases_create, "create a lease")
    sp.add_argument("--id")
    sp.add_argument("--expires", help="duration until expiry, e.g. 24h")
    sp.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    sp = add(le, "rm", cmd_leases_rm, "delete leases", aliases=["delete"])
    sp.add_argument("ids", nargs="+")
    sp.add_argument("--sync", action="store_true", help="collect garbage before returning")


def _reg_gc(sub: Any, common: argparse.ArgumentParser, add: Add) -> None:
    sp = add(sub, "gc", cmd_gc, "collect garbage")
    sp.add_argument("--dry-run", action="store_true", help="only report what would go")


def _reg_fsck(sub: Any, common: argparse.ArgumentParser, add: Add) -> None:
    sp = add(sub, "fsck", cmd_fsck, "verify every blob and image graph")
    sp.add_argument(
        "--repair", action="store_true", help="remove what cannot be trusted (never a valid blob)"
    )


def _register(module: str) -> Register:
    """The ``register`` function of the command module ``pallet.cli.<module>``."""
    from importlib import import_module

    fn: Register = import_module(f"{__package__}.{module}").register
    return fn


#: every command in ``pallet --help`` order: (name, aliases, help, what defines it: a function
#: here or the name of a module whose ``register`` does). tests/unit/test_cli_parser.py checks
#: the names and helps against the modules.
_COMMANDS: tuple[tuple[str, tuple[str, ...], str, Register | str], ...] = (
    ("content", (), "content store", _reg_content),
    ("images", ("image", "i"), "image store", _reg_images),
    ("leases", ("lease",), "leases", _reg_leases),
    ("gc", (), "collect garbage", _reg_gc),
    ("fsck", (), "verify every blob and image graph", _reg_fsck),
    ("export", (), "export directories and root filesystems as an image", "export_cmd"),
    ("save", (), "write images as an OCI layout or Docker archive tarball", "image_cmds"),
    ("load", (), "import an OCI layout or Docker archive", "image_cmds"),
    ("unpack", (), "write an image's root filesystem into a directory", "image_cmds"),
    ("pull", (), "pull an image from a registry into the store", "registry_cmds"),
    ("push", (), "push an image from the store to a registry", "registry_cmds"),
    ("login", (), "store credentials for a registry (as docker login)", "registry_cmds"),
    ("logout", (), "remove stored credentials for a registry", "registry_cmds"),
    ("containerd", (), "a containerd daemon", "containerd_cmds"),
)

_COMMON = _common()


def _command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first positional argument), if it is one of ours."""
    names = {n: c[0] for c in _COMMANDS for n in (c[0], *c[1])}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return names.get(argv[i + 1]) if i + 1 < len(argv) else None
        if tok.startswith("-") and tok != "-":
            # --root DIR and --format F (argparse also takes unique prefixes: --ro, --form)
            takes_value = "=" not in tok and len(tok) > 2
            takes_value = takes_value and ("--root".startswith(tok) or "--format".startswith(tok))
            i += 2 if takes_value else 1
            continue
        return names.get(tok)
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``pallet`` parser; given ``argv``, only the command it names is built in full."""
    from .. import __version__

    p = _Parser(
        prog="pallet",
        parents=[_COMMON],
        description="Daemonless container-image exporter and store.",
    )
    p.add_argument("--version", action="version", version=f"pallet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    only = _command(argv) if argv is not None else None
    done: set[str] = set()
    for name, aliases, help, reg in _COMMANDS:
        if argv is None:
            if isinstance(reg, str):
                if reg in done:
                    continue
                done.add(reg)
                reg = _register(reg)
            reg(sub, _COMMON, _add)
        elif name == only:
            fn = _register(reg) if isinstance(reg, str) else reg
            fn(_Only(sub, name), _COMMON, _add)
        else:
            sub._parser_class = _Stub
            sub.add_parser(name, aliases=list(aliases), help=help)
            sub._parser_class = _Parser
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
    except _Unbuilt:  # argparse read argv otherwise than _command: build everything
        args = build_parser().parse_args(argv)
    for attr, default in (("root", None), ("format", "text")):
        if not hasattr(args, attr):
            setattr(args, attr, default)
    from ..errors import Error, InvalidArgument

    try:
        rc: int = args.func(args)
        return rc
    except InvalidArgument as exc:
        print(f"pallet: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Error as exc:
        print(f"pallet: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("pallet: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"pallet: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
