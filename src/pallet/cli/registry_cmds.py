"""``pallet pull``, ``push``, ``login``, ``logout``: the registry client on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import pallet

from ._common import add_containerd_arguments, command_parser, pallet_store
from .progress import MODES, progress_session

__all__ = ["build_parser"]


def cmd_pull(args: argparse.Namespace) -> int:
    ref = pallet.Reference.parse(args.ref)
    with pallet_store(args) as store, progress_session(args.progress, f"pulling {ref}") as r:
        image = store.pull(
            str(ref),
            platform=args.platform,
            insecure=args.insecure,
            ca_file=args.ca_file,
            jobs=args.jobs,
            progress=r.write,
        )
    print(image.digest)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    dest = pallet.Reference.parse(args.dest or args.ref, default_tag=not args.by_digest)
    if not args.dest and args.by_digest:  # the image's own name: push it by digest, untagged
        dest = dataclasses.replace(dest, tag="")
    # the renderer starts after the store opened: a daemon that is not there is one line
    with pallet_store(args) as store, progress_session(args.progress, f"pushing {dest}") as r:
        digest = store.push(
            args.ref,
            str(dest),
            by_digest=args.by_digest,
            insecure=args.insecure,
            ca_file=args.ca_file,
            jobs=args.jobs,
            progress=r.write,
        )
    name = dest.name + (f":{dest.tag}" if dest.tag else "")
    print(f"{name}@{digest}" if args.by_digest else name)
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    if args.password_stdin:
        if args.password:
            raise pallet.InvalidArgument("password: --password and --password-stdin are exclusive")
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    if not password:
        raise pallet.InvalidArgument("password: must not be empty")
    # credentials are the user's, not a store's: no store is opened
    path = pallet.Store.login(
        args.server, args.username, password, insecure=args.insecure, ca_file=args.ca_file
    )
    print(f"Login Succeeded (credentials in {path})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    if pallet.Store.logout(args.server):
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
    add_containerd_arguments(p)
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
