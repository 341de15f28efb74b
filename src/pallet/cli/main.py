"""The ``pallet`` command line: composition root, the only place that prints or exits.

As pip's ``parse_command``: a first parser knows the global flags and the command names (from
:data:`COMMANDS`); then only the chosen command's module is imported, and its ``build_parser``
parses the rest. Nothing heavy is imported before a command runs, so ``pallet --help`` and the
store commands start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import NamedTuple

from .. import Error, InvalidArgument, __version__
from ._common import EXIT_USAGE, Parser, add_global_flags

__all__ = ["COMMANDS", "CommandInfo", "command_parser", "main", "parse_args"]


class CommandInfo(NamedTuple):
    #: the module in ``pallet.cli`` whose ``build_parser(name, prog)`` defines the command
    module: str
    summary: str
    aliases: tuple[str, ...] = ()


#: every command, in ``pallet --help`` order
COMMANDS: dict[str, CommandInfo] = {
    "content": CommandInfo("store_cmds", "content store"),
    "images": CommandInfo("store_cmds", "image store", ("image", "i")),
    "leases": CommandInfo("store_cmds", "leases", ("lease",)),
    "gc": CommandInfo("store_cmds", "collect garbage"),
    "fsck": CommandInfo("store_cmds", "verify every blob and image graph"),
    "export": CommandInfo("export_cmds", "export directories and root filesystems as an image"),
    "save": CommandInfo("archive_cmds", "write images as an OCI layout or Docker archive tarball"),
    "load": CommandInfo("archive_cmds", "import an OCI layout or Docker archive"),
    "unpack": CommandInfo("archive_cmds", "write an image's root filesystem into a directory"),
    "pull": CommandInfo("registry_cmds", "pull an image from a registry into the store"),
    "push": CommandInfo("registry_cmds", "push an image from the store to a registry"),
    "login": CommandInfo("registry_cmds", "store credentials for a registry (as docker login)"),
    "logout": CommandInfo("registry_cmds", "remove stored credentials for a registry"),
    "containerd": CommandInfo("containerd_cmds", "a containerd daemon"),
}

#: a name or alias -> the command's name
_NAMES = {n: name for name, info in COMMANDS.items() for n in (name, *info.aliases)}


class _Command(argparse.Action):
    """The command and its arguments (``nargs=PARSER``, as argparse's sub-commands action: the
    first is checked against ``choices``, ``--`` is kept, options after it are the command's).

    ``pallet --help`` lists :data:`COMMANDS` under it as argparse lists sub-commands: its help
    formatter asks an action for ``_get_subactions()``.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)

    def _get_subactions(self) -> list[argparse.Action]:
        return [
            argparse.Action(
                [],
                dest=name,
                help=info.summary,
                metavar=f"{name} ({', '.join(info.aliases)})" if info.aliases else name,
            )
            for name, info in COMMANDS.items()
        ]


def _top_parser() -> Parser:
    p = Parser(prog="pallet", description="Daemonless container-image exporter and store.")
    add_global_flags(p)
    p.add_argument("--version", action="version", version=f"pallet {__version__}")
    p.add_argument("command", nargs=argparse.PARSER, choices=list(_NAMES), action=_Command)
    return p


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (or an alias), from its module."""
    name = _NAMES[name]
    module = import_module(f"{__package__}.{COMMANDS[name].module}")
    parser: argparse.ArgumentParser = module.build_parser(name, f"pallet {name}")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed by the top-level parser, then the rest by the command's parser."""
    top = _top_parser()
    args, extras = top.parse_known_args(argv)
    name, *rest = args.command
    args.command = _NAMES[name]
    args, more = command_parser(name).parse_known_args(rest, args)
    if extras or more:
        top.error(f"unrecognized arguments: {' '.join([*extras, *more])}")
    for attr, default in (("root", None), ("format", "text")):
        if not hasattr(args, attr):
            setattr(args, attr, default)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
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
