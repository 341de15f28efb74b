"""The protobuf message classes for containerd's gRPC API, generated ahead of time and checked in.

The ``*.proto`` files beside this module are pallet's own minimal descriptions of the containerd
API v1 messages and services it calls, with containerd's published field numbers (wire
compatibility is all that matters; message names, comments and omitted fields are ours). The
``*_pb2.py`` modules beside them are protoc's output for those files, made by
``scripts/gen-protos.sh`` with the grpcio-tools that the ``dev`` extra pins, and kept byte for
byte as protoc wrote them (a test regenerates and compares). containerd ships its generated
``api/`` the same way: installing pallet compiles nothing, and ``pallet[containerd]`` needs only
the grpcio and protobuf runtimes.

Generated code names the protobuf version it was made with and refuses an older runtime at import
(protobuf's rule: new gencode never runs on an old runtime; old gencode runs on any newer runtime
of the same major version), so the extra requires :data:`PROTOBUF`, from that version up to the
next major one. Only ``_pb2`` modules (messages) are generated; the RPC method table lives in
:mod:`pallet.containerd._rpc`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import types

from ...errors import Unsupported

__all__ = ["INSTALL_HINT", "PROTOBUF", "PROTOS", "load"]

#: the one-line error for a missing optional extra
INSTALL_HINT = "containerd backend: install pallet[containerd] (grpcio, protobuf)"
#: the protobuf runtimes the generated modules load with (the containerd extra's requirement)
PROTOBUF = ">=7.35.1,<8"
#: the .proto files, in dependency order (types first)
PROTOS = ("types", "version", "content", "images", "leases", "snapshots", "diff")


@functools.cache
def load() -> types.SimpleNamespace:
    """The generated modules as attributes ``types``, ``content``, ... (imported on first use).

    Raises:
        Unsupported: grpcio or protobuf is missing, or the installed protobuf runtime is outside
            :data:`PROTOBUF` and refuses the generated code.
    """
    for module in ("grpc", "google.protobuf"):
        try:
            if importlib.util.find_spec(module) is None:
                raise Unsupported(INSTALL_HINT)
        except ModuleNotFoundError:  # no "google" namespace at all
            raise Unsupported(INSTALL_HINT) from None
    try:
        mods = {name: importlib.import_module(f"{__name__}.{name}_pb2") for name in PROTOS}
    except Exception as exc:  # protobuf's VersionError, or an ImportError from an older runtime
        detail = " ".join(str(exc).split())[:300]
        version = importlib.import_module("google.protobuf").__version__
        raise Unsupported(
            f"containerd backend: protobuf {version} cannot load pallet's generated messages "
            f"({detail}); install protobuf{PROTOBUF}"
        ) from exc
    return types.SimpleNamespace(**mods)
