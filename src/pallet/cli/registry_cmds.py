"""``pallet pull``, ``push``, ``login``, ``logout``: the registry client on the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..metadata.store import Store
    from ..oci.descriptor import Descriptor
    from ..remote import Options

__all__ = ["name_image", "pull_into", "register", "remote_options"]


def _registry_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP and unverified TLS for this registry",
    )
    sp.add_argument("--ca-file", metavar="PEM", help="extra trusted CA certificates")
    sp.add_argument("--jobs", type=int, default=4, help="blobs in parallel (default 4)")
    from .progress import MODES

    sp.add_argument("--progress", default="auto", choices=MODES)


def register(sub: Any, common: Any, add: Any) -> None:
    sp = add(sub, "pull", cmd_pull, "pull an image from a registry into the store")
    sp.add_argument("ref")
    sp.add_argument("--platform", help="platform of an index to fetch (default: this machine)")
    _registry_flags(sp)
    sp = add(sub, "push", cmd_push, "push an image from the store to a registry")
    sp.add_argument("ref", help="image name in the store")
    sp.add_argument("dest", nargs="?", help="push to this reference instead of REF")
    sp.add_argument("--by-digest", action="store_true", help="push without a tag")
    _registry_flags(sp)
    from . import backend

    backend.add_arguments(sp)
    sp = add(sub, "login", cmd_login, "store credentials for a registry (as docker login)")
    sp.add_argument("server", nargs="?", default="docker.io")
    sp.add_argument("-u", "--username", required=True)
    sp.add_argument("-p", "--password")
    sp.add_argument("--password-stdin", action="store_true")
    sp.add_argument("--insecure", action="store_true")
    sp.add_argument("--ca-file", metavar="PEM", help="extra trusted CA certificates")
    sp = add(sub, "logout", cmd_logout, "remove stored credentials for a registry")
    sp.add_argument("server", nargs="?", default="docker.io")


def remote_options(args: argparse.Namespace, hosts: list[str]) -> Options:
    from ..remote import Options

    if args.jobs < 1:
        raise InvalidArgument(f"jobs {args.jobs}: must be at least 1")
    return Options(
        jobs=args.jobs,
        insecure=frozenset(hosts) if args.insecure else frozenset(),
        ca_file=args.ca_file,
    )


def name_image(db: Store, name: str, target: Descriptor) -> None:
    """Point ``name`` at ``target`` (update, else create), as the exporter names images."""
    from ..errors import NotFound
    from ..images import Image

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
    progress: Any,
    lease: str,
) -> Descriptor:
    from ..remote import pull

    return pull(
        ref,
        db.content,
        platform=platform,
        lease=lease,
        options=options,
        on_progress=progress.write,
    )


def cmd_pull(args: argparse.Namespace) -> int:
    from ..leases import temporary
    from ..oci.reference import Reference
    from . import progress as _progress
    from .main import _db

    ref = Reference.parse(args.ref)
    db = _db(args)
    r = _progress.make(args.progress, vertex=f"pulling {ref}")
    err = ""
    try:
        with temporary(db.leases) as lease:
            root = pull_into(
                db,
                str(ref),
                platform=args.platform,
                options=remote_options(args, [ref.registry]),
                progress=r,
                lease=lease,
            )
            name_image(db, str(ref), root)
    except BaseException as exc:
        err = str(exc)
        raise
    finally:
        getattr(r, "close", lambda e: None)(err)
    print(root.digest)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from ..oci.reference import Reference
    from ..remote import push
    from . import progress as _progress
    from .main import _backend

    dest = Reference.parse(args.dest or args.ref)
    options = remote_options(args, [dest.registry])
    with _backend(args) as b:
        img = b.images.get(args.ref)
        r = _progress.make(args.progress, vertex=f"pushing {dest}")
        err = ""
        try:
            results = push(
                b.content,
                img.target,
                str(dest),
                by_digest=args.by_digest,
                options=options,
                on_progress=r.write,
            )
        except BaseException as exc:
            err = str(exc)
            raise
        finally:
            getattr(r, "close", lambda e: None)(err)
    for res in results:
        print(f"{res.name}@{res.descriptor.digest}" if args.by_digest else res.name)
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    from ..remote import login

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
    from ..remote import Options

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
    from ..remote import logout

    if logout(args.server):
        print(f"Removed login credentials for {args.server}")
    else:
        print(f"Not logged in to {args.server}")
    return 0
