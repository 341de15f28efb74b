"""``pallet pull``, ``push``, ``login``, ``logout``: the registry client on the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, NotFound
from ..images import Image
from ..leases import temporary
from ..oci.reference import Reference
from ..remote import Options, login, logout, pull, push
from . import backend
from ._common import command_parser, open_store
from .progress import MODES, progress_session

if TYPE_CHECKING:
    from ..oci.descriptor import Descriptor
    from ..progress import ProgressWriter
    from ._common import Store

__all__ = ["build_parser", "name_image", "pull_into", "remote_options"]


def remote_options(args: argparse.Namespace, hosts: list[str]) -> Options:
    if args.jobs < 1:
        raise InvalidArgument(f"jobs {args.jobs}: must be at least 1")
    return Options(
        jobs=args.jobs,
        insecure=frozenset(hosts) if args.insecure else frozenset(),
        ca_file=args.ca_file,
    )


def name_image(db: Store, name: str, target: Descriptor) -> None:
    """Point ``name`` at ``target`` (update, else create), as the exporter names images."""
    try:
        db.images.update(Image(name=name, target=target), ["target"])
    except NotFound:
        db.images.create(Image(name=name, target=target))


def pull_into(
    db: Store,
    ref: str,
    *,
    platform: str | None,
    options: Options,
    progress: ProgressWriter,
    lease: str,
) -> Descriptor:
    return pull(
        ref,
        db.content,
        platform=platform,
        lease=lease,
        options=options,
        on_progress=progress.write,
    )


def cmd_pull(args: argparse.Namespace) -> int:
    ref = Reference.parse(args.ref)
    db = open_store(args)
    with progress_session(args.progress, f"pulling {ref}") as r, temporary(db.leases) as lease:
        root = pull_into(
            db,
            str(ref),
            platform=args.platform,
            options=remote_options(args, [ref.registry]),
            progress=r,
            lease=lease,
        )
        name_image(db, str(ref), root)
    print(root.digest)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    dest = Reference.parse(args.dest or args.ref)
    options = remote_options(args, [dest.registry])
    with backend.open_backend(args) as b:
        img = b.images.get(args.ref)
        with progress_session(args.progress, f"pushing {dest}") as r:
            results = push(
                b.content,
                img.target,
                str(dest),
                by_digest=args.by_digest,
                options=options,
                on_progress=r.write,
            )
    for res in results:
        print(f"{res.name}@{res.descriptor.digest}" if args.by_digest else res.name)
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    if args.password_stdin:
        if args.password:
            raise InvalidArgument("password: --password and --password-stdin are exclusive")
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    if not password:
        raise InvalidArgument("password: must not be empty")
    path = login(
        args.server,
        args.username,
        password,
        options=Options(
            ca_file=args.ca_file, insecure=frozenset([args.server] if args.insecure else [])
        ),
    )
    print(f"Login Succeeded (credentials in {path})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    if logout(args.server):
        print(f"Removed login credentials for {args.server}")
    else:
        print(f"Not logged in to {args.server}")
    return 0


# --- parser -------------------------------------------------------------------------------------
def _registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP and unverified TLS for this registry",
    )
    p.add_argument("--ca-file", metavar="PEM", help="extra trusted CA certificates")
    p.add_argument("--jobs", type=int, default=4, help="blobs in parallel (default 4)")
    p.add_argument("--progress", default="auto", choices=MODES)


def _pull(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_pull)
    p.add_argument("ref")
    p.add_argument("--platform", help="platform of an index to fetch (default: this machine)")
    _registry_flags(p)
    return p


def _push(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_push)
    p.add_argument("ref", help="image name in the store")
    p.add_argument("dest", nargs="?", help="push to this reference instead of REF")
    p.add_argument("--by-digest", action="store_true", help="push without a tag")
    _registry_flags(p)
    backend.add_arguments(p)
    return p


def _login(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_login)
    p.add_argument("server", nargs="?", default="docker.io")
    p.add_argument("-u", "--username", required=True)
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--ca-file", metavar="PEM", help="extra trusted CA certificates")
    return p


def _logout(prog: str) -> argparse.ArgumentParser:
    p = command_parser(prog, cmd_logout)
    p.add_argument("server", nargs="?", default="docker.io")
    return p


_PARSERS = {"pull": _pull, "push": _push, "login": _login, "logout": _logout}


def build_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (pull, push, login or logout)."""
    return _PARSERS[name](prog)
