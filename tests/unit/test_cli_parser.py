"""The command line builds only the parser of the command being run; everything it prints (help,
usage errors) must be what the full parser prints."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.cli import main as cli

ALL_NAMES = [n for name, aliases, _, _ in cli._COMMANDS for n in (name, *aliases)]


def _subactions(p: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return sub


def _run(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            ns: object = parser.parse_args(argv)
        except SystemExit as e:
            ns = ("exit", e.code)
    if isinstance(ns, argparse.Namespace):
        ns = {k: v for k, v in vars(ns).items() if k != "func"} | {
            "func": getattr(getattr(ns, "func", None), "__name__", None)
        }
    return ns, out.getvalue(), err.getvalue()


def test_the_table_names_every_command_with_its_help() -> None:
    full = _subactions(cli.build_parser())
    got = [(a.dest, a.help) for a in full._choices_actions]
    assert got == [(name, help) for name, _, help, _ in cli._COMMANDS]
    assert list(full.choices) == ALL_NAMES


def test_top_level_help_is_the_full_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    want = cli.build_parser().format_help()
    assert cli.build_parser([]).format_help() == want
    for name in ALL_NAMES:  # with one command built, the others stay stubs
        assert cli.build_parser([name]).format_help() == want


@pytest.mark.parametrize("name", ALL_NAMES)
def test_each_command_parser_is_the_full_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    full = _subactions(cli.build_parser()).choices[name]
    lazy = _subactions(cli.build_parser(["--root", "/r", name])).choices[name]
    assert not isinstance(lazy, cli._Stub)
    assert lazy.format_help() == full.format_help()
    nested = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in nested:  # content ls, images rm, containerd copy, ...
        for sname, sp in sub.choices.items():
            (lazy_sub,) = [a for a in lazy._actions if isinstance(a, argparse._SubParsersAction)]
            assert lazy_sub.choices[sname].format_help() == sp.format_help(), sname


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["--root"],
        ["--format", "xml", "gc"],
        ["content"],
        ["images", "nope"],
        ["i", "ls", "-q", "a", "b"],
        ["push"],
        ["push", "--jobs", "x", "a"],
        ["push", "a", "--progress", "bad"],
        ["push", "a", "b", "c"],
        ["--root", "/x", "push", "a", "127.0.0.1:5000/x:1", "--insecure", "--jobs", "2"],
        ["--ro=/x", "pull", "r", "--platform", "linux/arm64"],
        ["--ro", "/x", "--fo", "json", "content", "label", "sha256:a", "k=v"],
        ["--format=json", "leases", "create", "--expires", "1h"],
        ["--", "gc", "--dry-run"],
        ["-", "gc"],
        ["gc", "extra"],
        ["login"],
        ["login", "-u", "me", "reg.example"],
        ["save", "x", "--format", "docker", "-o", "f.tar"],
        ["load", "--bogus"],
        ["export", "--rootfs", "/d", "-t", "n", "--progress", "quiet"],
        ["containerd", "copy", "r", "--name", "n"],
        ["unpack", "r", "/dest"],
    ],
)
def test_parses_and_errors_as_the_full_parser(argv: list[str]) -> None:
    want = _run(cli.build_parser(), argv)
    got = _run(cli.build_parser(argv), argv) if cli._command(argv) else None
    if got is not None:
        assert got == want
    # what main does: the lazy parser, or the full one when argparse picked another command
    try:
        lazy = _run(cli.build_parser(argv), argv)
    except cli._Unbuilt:
        lazy = want
    assert lazy == want


def test_command_is_the_first_positional_after_the_global_options() -> None:
    assert cli._command([]) is None
    assert cli._command(["--root", "push", "pull", "x"]) == "pull"
    assert cli._command(["--root=push", "gc"]) == "gc"
    assert cli._command(["--r", "x", "--form", "json", "i", "ls"]) == "images"
    assert cli._command(["--version"]) is None
    assert cli._command(["--", "lease", "ls"]) == "leases"
    assert cli._command(["bogus", "push"]) is None


def test_main_falls_back_to_the_full_parser(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Should ``_command`` guess wrong, argparse meets a stub and main builds everything."""
    monkeypatch.setattr(cli, "_command", lambda argv: "push")
    assert cli.main(["--root", str(tmp_path / "store"), "gc", "--dry-run"]) == 0
    assert "would remove 0 blobs" in capsys.readouterr().out


def test_push_builds_and_imports_only_its_own_parser() -> None:
    code = (
        "import sys\n"
        "from pallet.cli.main import build_parser\n"
        "build_parser(['push', 'a', 'b']).parse_args(['push', 'a', 'b'])\n"
        "mods = ('export_cmd', 'image_cmds', 'containerd_cmds')\n"
        "print(sorted(m for m in mods if 'pallet.cli.' + m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_help_imports_no_command_module_nor_heavy_stdlib() -> None:
    code = (
        "import sys, contextlib, io\n"
        "before = set(sys.modules)\n"  # whatever site and .pth files loaded
        "from pallet.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "bad = ('platform', 'inspect', 'dataclasses', 'json', 'pathlib', 'httpx', 'ssl')\n"
        "new = set(sys.modules) - before\n"
        "print(sorted(m for m in new if m in bad or m.startswith('pallet.cli.')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['pallet.cli.main']"
