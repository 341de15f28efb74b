"""The command line's two-step parse: the top-level parser picks the command from the table, the
command's own module parses the rest. What users see (help, usage errors, where the global flags
go) is asserted here; which modules a command imports is in test_startup.py."""

from __future__ import annotations

import contextlib
import importlib
import io
import re

import pytest

from pallet.cli import main as cli

ALL_NAMES = [n for name, info in cli.COMMANDS.items() for n in (name, *info.aliases)]
CHOICES = ", ".join(repr(n) for n in ALL_NAMES)
BAD_COMMAND = "argument command: invalid choice: {!r} (choose from " + CHOICES + ")"
BAD_FORMAT = "argument --format: invalid choice: {!r} (choose from 'text', 'json')"
BAD_IMAGES = (
    "argument sub: invalid choice: {!r} (choose from 'ls', 'list', 'inspect', 'rm', 'delete', "
    "'tag')"
)
BAD_PROGRESS = (
    "argument --progress: invalid choice: {!r} (choose from 'auto', 'plain', 'tty', 'rawjson', "
    "'quiet')"
)


def _parse(argv: list[str]) -> object:
    """The parsed arguments (``func`` by name), else ``("exit", status, stderr)``."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            args = cli.parse_args(argv)
        except SystemExit as e:
            return ("exit", e.code, err.getvalue())
    return vars(args) | {"func": args.func.__name__}


def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        cli.parse_args(argv)
    assert e.value.code == 0
    return out.getvalue()


def test_every_command_module_builds_its_parser() -> None:
    for name, info in cli.COMMANDS.items():
        module = importlib.import_module(f"pallet.cli.{info.module}")
        p = module.build_parser(name, f"pallet {name}")
        assert p.prog == f"pallet {name}"
        for alias in info.aliases:
            assert cli.command_parser(alias).prog == f"pallet {name}"


def test_top_level_help_lists_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = _help(["--help"])
    assert out == _help(["-h", "gc"])  # options before the command are the top level's
    assert out.startswith(
        "usage: pallet [-h] [--root DIR] [--format {text,json}] [--version]\n"
        f"              {{{','.join(ALL_NAMES)}}}\n"
        "              ...\n\n"
        "Daemonless container-image exporter and store.\n\n"
        "positional arguments:\n"
        f"  {{{','.join(ALL_NAMES)}}}\n"
        "    content             content store\n"
        "    images (image, i)   image store\n"
        "    leases (lease)      leases\n"
        "    gc                  collect garbage\n"
    )
    listed = re.findall(r"^    (\w+)(?: \(([\w, ]+)\))? +(.+)$", out, re.M)
    assert listed == [
        (name, ", ".join(info.aliases), info.summary) for name, info in cli.COMMANDS.items()
    ]
    assert out.endswith(
        "options:\n"
        "  -h, --help            show this help message and exit\n"
        "  --root DIR            store root (default: $PALLET_ROOT or $XDG_DATA_HOME/pallet)\n"
        "  --format {text,json}  output format\n"
        "  --version             show program's version number and exit\n"
    )


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["gc", "--help"], "pallet gc"),
        (["i", "-h"], "pallet images"),
        (["image", "ls", "--help"], "pallet images ls"),
        (["lease", "delete", "-h"], "pallet leases rm"),
        (["content", "put", "--help"], "pallet content ingest"),
        (["containerd", "copy", "--help"], "pallet containerd copy"),
        (["save", "--help"], "pallet save"),
    ],
)
def test_command_help_names_the_command(argv: list[str], prog: str) -> None:
    assert _help(argv).startswith(f"usage: {prog} [-h]")


def test_store_group_help_has_no_global_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert _help(["images", "--help"]) == (
        "usage: pallet images [-h] {ls,list,inspect,rm,delete,tag} ...\n\n"
        "positional arguments:\n"
        "  {ls,list,inspect,rm,delete,tag}\n"
        "    ls (list)           list images\n"
        "    inspect             show an image and its graph\n"
        "    rm (delete)         delete images, then collect garbage\n"
        "    tag                 give an image more names\n\n"
        "options:\n"
        "  -h, --help            show this help message and exit\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: command"),
        (["-x"], "the following arguments are required: command"),
        (["bogus"], BAD_COMMAND.format("bogus")),
        # ``--`` is not taken as the end of options before the command (as argparse's
        # sub-commands action does)
        (["--", "gc", "--dry-run"], BAD_COMMAND.format("--")),
        (["-", "gc"], BAD_COMMAND.format("-")),
        (["--root"], "argument --root: expected one argument"),
        (["--format", "xml", "gc"], BAD_FORMAT.format("xml")),
        (["images", "ls", "--format", "yaml"], BAD_FORMAT.format("yaml")),
        (["content"], "the following arguments are required: sub"),
        (["images", "nope"], BAD_IMAGES.format("nope")),
        # the group itself takes no global flags
        (["images", "--root", "/r", "ls"], BAD_IMAGES.format("/r")),
        (["push"], "the following arguments are required: ref"),
        (["push", "--jobs", "x", "a"], "argument --jobs: invalid int value: 'x'"),
        (["push", "a", "--progress", "bad"], BAD_PROGRESS.format("bad")),
        (["push", "a", "b", "c"], "unrecognized arguments: c"),
        (["gc", "extra"], "unrecognized arguments: extra"),
        (["gc", "--version"], "unrecognized arguments: --version"),
        # unknown arguments before the command, then after it, in one message
        (["--bogus", "gc", "extra"], "unrecognized arguments: --bogus extra"),
        (["login"], "the following arguments are required: -u/--username"),
        (["load", "--bogus"], "unrecognized arguments: --bogus"),
        (["containerd", "version", "-a", "/s.sock"], "unrecognized arguments: -a /s.sock"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], message: str) -> None:
    assert _parse(argv) == ("exit", 2, f"pallet: error: {message}\n")


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        # global flags before or after the command, with argparse's unique prefixes
        (["gc"], {"root": None, "format": "text", "dry_run": False}),
        (["--root", "/r", "gc", "--dry-run"], {"root": "/r", "dry_run": True}),
        (["gc", "--dry-run", "--root", "/r"], {"root": "/r", "dry_run": True}),
        (
            ["--ro=/x", "--fo", "json", "gc", "--d"],
            {"root": "/x", "format": "json", "dry_run": True},
        ),
        (["--r", "/x", "gc", "--f", "json"], {"root": "/x", "format": "json"}),
        # after the command, the command's value wins
        (["--root", "/a", "gc", "--root", "/b"], {"root": "/b"}),
        (
            ["--ro", "/x", "--fo", "json", "content", "label", "sha256:a", "k=v"],
            {
                "root": "/x",
                "format": "json",
                "sub": "label",
                "labels": ["k=v"],
                "func": "cmd_content_label",
            },
        ),
        (
            ["i", "ls", "-q", "a", "b"],
            {"command": "images", "sub": "ls", "filters": ["a", "b"], "quiet": True},
        ),
        (["images", "ls", "--", "-q"], {"filters": ["-q"], "quiet": False}),
        (["lease", "list"], {"command": "leases", "sub": "list", "func": "cmd_leases_ls"}),
        (
            ["--root", "/x", "push", "a", "127.0.0.1:5000/x:1", "--insecure", "--jobs", "2"],
            {"root": "/x", "ref": "a", "dest": "127.0.0.1:5000/x:1", "insecure": True, "jobs": 2},
        ),
        (
            ["--ro=/x", "pull", "r", "--platform", "linux/arm64"],
            {"root": "/x", "platform": "linux/arm64"},
        ),
        (
            ["--format=json", "leases", "create", "--expires", "1h"],
            {"format": "json", "expires": "1h"},
        ),
        (["login", "-u", "me", "reg.example"], {"server": "reg.example", "username": "me"}),
        # save's --format is the archive's; a global --format before the command stays
        (
            ["save", "x", "--format", "docker", "-o", "f.tar"],
            {"archive_format": "docker", "format": "text"},
        ),
        (["--format", "json", "save", "x"], {"archive_format": "oci", "format": "json"}),
        (
            ["export", "--rootfs", "/d", "-t", "n", "--progress", "quiet"],
            {"inputs": [("rootfs", "/d")], "tag": ["n"], "progress": "quiet", "snapshotter": None},
        ),
        (["unpack", "r", "/dest", "--containerd"], {"ref": "r", "dest": "/dest", "containerd": ""}),
        (
            ["containerd", "copy", "r", "--name", "n", "--containerd=/s.sock", "--namespace", "ns"],
            {
                "sub": "copy",
                "names": ["n"],
                "containerd": "/s.sock",
                "namespace": "ns",
                "snapshotter": "native",
            },
        ),
        (["containerd", "version"], {"containerd": None, "namespace": None, "func": "cmd_version"}),
    ],
)
def test_parses(argv: list[str], want: dict[str, object]) -> None:
    got = _parse(argv)
    assert isinstance(got, dict), got
    assert {k: got.get(k, "<missing>") for k in want} == want


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from pallet import __version__

    for argv in (["--version"], ["--version", "gc"]):
        with pytest.raises(SystemExit) as e:
            cli.parse_args(argv)
        assert e.value.code == 0
        assert capsys.readouterr().out == f"pallet {__version__}\n"
