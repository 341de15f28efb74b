"""Generation and loading of the protobuf message classes for containerd's gRPC API.

The ``*.proto`` files beside this module are pallet's own minimal descriptions of the containerd
API v1 messages and services it calls, with containerd's published field numbers (wire
compatibility is all that matters; message names, comments and omitted fields are ours). No
generated code is kept in the repository: protoc from ``grpcio-tools`` compiles the files into
``<dir>/pallet/containerd/_stubs/*_pb2.py`` on first use, or ahead of time with::

    python -m pallet.containerd._proto.build              # into the cache directory below
    python -m pallet.containerd._proto.build --out DIR    # then export PALLET_CONTAINERD_STUBS=DIR

``<dir>`` is ``$PALLET_CONTAINERD_STUBS`` when set (a tree built beforehand; grpcio-tools is then
not needed at run time), else ``$XDG_CACHE_HOME/pallet/containerd-stubs/<key>`` (default
``~/.cache``), where ``<key>`` hashes the ``.proto`` texts and the protobuf and grpcio-tools
versions, so that an upgrade of either regenerates. Generation writes a temporary sibling
directory and renames it into place, so concurrent first uses cannot see half a tree.

Only ``_pb2`` modules (messages) are generated; the RPC method table lives in
:mod:`pallet.containerd._rpc`. The generated package is registered as
``pallet.containerd._stubs`` (a package object whose ``__path__`` is the generated directory), so
nothing is added to ``sys.path``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import Any

from ...errors import Unsupported

__all__ = [
    "INSTALL_HINT",
    "PROTOS",
    "STUB_PACKAGE",
    "build",
    "cache_key",
    "default_dir",
    "load",
    "proto_dir",
]

#: the one-line error for a missing optional extra
INSTALL_HINT = "containerd backend: install pallet[containerd] (grpcio, protobuf, grpcio-tools)"
#: the .proto files, in dependency order (types first)
PROTOS = ("types", "version", "content", "images", "leases", "snapshots", "diff")
#: the import name of the generated package
STUB_PACKAGE = "pallet.containerd._stubs"
_STUB_RELDIR = Path(*STUB_PACKAGE.split("."))
_STAMP = "pallet-stubs.stamp"
_FORMAT = "1"  # bump when the generation layout changes

_lock = threading.Lock()
_loaded: types.SimpleNamespace | None = None


def proto_dir() -> Path:
    """The directory holding pallet's ``.proto`` files."""
    return Path(__file__).resolve().parent


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise Unsupported(INSTALL_HINT) from None


def cache_key() -> str:
    """Hash of the ``.proto`` texts and the protobuf/grpcio-tools versions (16 hex digits)."""
    h = hashlib.sha256(f"format {_FORMAT}\n".encode())
    h.update(f"protobuf {_version('protobuf')}\n".encode())
    try:
        tools = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        tools = "none"
    h.update(f"grpcio-tools {tools}\n".encode())
    for name in PROTOS:
        h.update(name.encode() + b"\0")
        try:
            h.update((proto_dir() / f"{name}.proto").read_bytes())
        except FileNotFoundError:
            raise Unsupported(
                f"containerd backend: {name}.proto is missing from {proto_dir()} "
                "(pallet installed without its package data)"
            ) from None
    return h.hexdigest()[:16]


def default_dir() -> Path:
    """Where the stubs are loaded from (see the module docstring)."""
    env = os.environ.get("PALLET_CONTAINERD_STUBS")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "pallet" / "containerd-stubs" / cache_key()


def _complete(root: Path) -> bool:
    d = root / _STUB_RELDIR
    return (root / _STAMP).is_file() and all((d / f"{n}_pb2.py").is_file() for n in PROTOS)


def build(out: Path | None = None, *, force: bool = False) -> Path:
    """Compile the ``.proto`` files into ``out`` (default :func:`default_dir`); returns ``out``.

    Raises:
        Unsupported: protobuf or grpcio-tools is not installed, or protoc failed.
    """
    root = Path(out) if out is not None else default_dir()
    if _complete(root) and not force:
        return root
    _version("protobuf")
    if importlib.util.find_spec("grpc_tools") is None:
        raise Unsupported(INSTALL_HINT)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        src = tmp / "src"
        dst = tmp / "out"
        (src / _STUB_RELDIR).mkdir(parents=True)
        dst.mkdir()
        for name in PROTOS:
            shutil.copyfile(proto_dir() / f"{name}.proto", src / _STUB_RELDIR / f"{name}.proto")
        # grpc_tools.protoc run as a program adds the well-known types (google/protobuf/*.proto)
        # to the include path itself.
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{src}",
            f"--python_out={dst}",
            *(str(_STUB_RELDIR / f"{n}.proto") for n in PROTOS),
        ]
        res = subprocess.run(cmd, cwd=src, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            msg = " ".join((res.stderr or res.stdout).split())[:500]
            raise Unsupported(f"containerd backend: protoc failed: {msg}")
        (dst / _STAMP).write_text(
            f"key {cache_key()}\nprotobuf {_version('protobuf')}\n"
            f"grpcio-tools {importlib.metadata.version('grpcio-tools')}\n"
        )
        if force and root.exists():
            shutil.rmtree(root)
        try:
            os.rename(dst, root)
        except OSError:
            if not _complete(root):  # not another process's finished tree: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def load() -> types.SimpleNamespace:
    """The generated modules as attributes ``types``, ``content``, ... (built on first use).

    Raises:
        Unsupported: grpcio/protobuf (or grpcio-tools, when nothing is built yet) is missing,
            or the generated code does not load with the installed protobuf runtime.
    """
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        if importlib.util.find_spec("grpc") is None:
            raise Unsupported(INSTALL_HINT)
        root = default_dir()
        if not _complete(root):
            if os.environ.get("PALLET_CONTAINERD_STUBS"):
                raise Unsupported(
                    f"containerd backend: no stubs in $PALLET_CONTAINERD_STUBS={root}: "
                    "run python -m pallet.containerd._proto.build --out DIR"
                )
            try:
                build(root)
            except OSError:
                # an unwritable cache (read-only home): build for this process only
                tmp = tempfile.mkdtemp(prefix="pallet-containerd-stubs-")
                atexit.register(shutil.rmtree, tmp, True)
                root = build(Path(tmp) / "s")
        pkg_dir = root / _STUB_RELDIR
        pkg = sys.modules.get(STUB_PACKAGE)
        if pkg is None or list(getattr(pkg, "__path__", ())) != [str(pkg_dir)]:
            pkg = types.ModuleType(STUB_PACKAGE, "generated containerd API messages")
            pkg.__path__ = [str(pkg_dir)]
            pkg.__package__ = STUB_PACKAGE
            sys.modules[STUB_PACKAGE] = pkg
        mods: dict[str, Any] = {}
        try:
            for name in PROTOS:
                mods[name] = importlib.import_module(f"{STUB_PACKAGE}.{name}_pb2")
        except Exception as exc:
            for name in PROTOS:
                sys.modules.pop(f"{STUB_PACKAGE}.{name}_pb2", None)
            with contextlib.suppress(KeyError):
                del sys.modules[STUB_PACKAGE]
            detail = " ".join(str(exc).split())[:300]
            raise Unsupported(
                f"containerd backend: generated stubs in {root} do not load ({detail}); "
                "pin protobuf and grpcio-tools together and rebuild with "
                "python -m pallet.containerd._proto.build --force"
            ) from exc
        _loaded = types.SimpleNamespace(**mods)
        return _loaded
