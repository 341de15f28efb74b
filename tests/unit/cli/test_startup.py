"""What a fresh process imports to start: the short paths must not load the HTTP stack, the
compression codecs or grpc, and a command loads its own module only. Module sets, not timings
(the timings are in BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HTTP = {"httpcore", "httpx", "h11", "ssl", "_ssl", "certifi", "anyio"}
CODECS = {"isal", "zlib_ng", "zstandard"}
GRPC = {"grpc", "google"}
COMMAND_MODULES = {
    "pallet.cli.archive_cmds",
    "pallet.cli.containerd_cmds",
    "pallet.cli.export_cmds",
    "pallet.cli.registry_cmds",
    "pallet.cli.store_cmds",
}

# run ``pallet ARGV…`` as the console script does, then print what it imported
_MAIN = """
import contextlib, io, json, sys
from pallet.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        rc = main(sys.argv[1:])
    except SystemExit as e:
        rc = e.code
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


def _modules(code: str, *argv: str) -> tuple[object, set[str]]:
    """(exit status, imported modules) of a fresh interpreter running ``code`` with ``argv``."""
    r = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out.get("rc"), set(out["modules"])


def _tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_loads_no_http_codecs_grpc_nor_command_module() -> None:
    rc, mods = _modules(_MAIN, "--help")
    assert rc == 0
    assert _tops(mods) & (HTTP | CODECS | GRPC) == set()
    assert {m for m in mods if m.startswith("pallet.cli.")} == {
        "pallet.cli.main",
        "pallet.cli._common",
    }
    assert "pallet.metadata.db" not in mods


@pytest.mark.parametrize("argv", [["images", "ls"], ["i", "ls", "-q"], ["content", "ls"]])
def test_store_listing_loads_no_http_codecs_grpc(tmp_path: Path, argv: list[str]) -> None:
    rc, mods = _modules(_MAIN, "--root", str(tmp_path / "store"), *argv)
    assert rc == 0
    assert _tops(mods) & (HTTP | CODECS | GRPC) == set()
    assert mods & COMMAND_MODULES == {"pallet.cli.store_cmds"}


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["push", "--help"], "pallet.cli.registry_cmds"),
        (["export", "--help"], "pallet.cli.export_cmds"),
        (["save", "--help"], "pallet.cli.archive_cmds"),
        (["containerd", "copy", "--help"], "pallet.cli.containerd_cmds"),
        (["gc", "--help"], "pallet.cli.store_cmds"),
    ],
)
def test_a_command_imports_only_its_own_module(argv: list[str], module: str) -> None:
    rc, mods = _modules(_MAIN, *argv)
    assert rc == 0
    assert mods & COMMAND_MODULES == {module}
    assert _tops(mods) & GRPC == set()


def test_import_pallet_loads_no_http_nor_codecs() -> None:
    code = "import json, sys\nimport pallet\nprint(json.dumps({'modules': sorted(sys.modules)}))"
    _, mods = _modules(code)
    assert _tops(mods) & (HTTP | CODECS) == set()
