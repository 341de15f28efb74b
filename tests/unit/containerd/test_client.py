"""The containerd client without a daemon: addresses, namespaces, errors, the checked-in
generated messages, the wire numbers of pallet's .proto files, and the optional-extra behaviour."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grpc
import pytest

from pallet.containerd import DEFAULT_ADDRESS, connect, from_env, namespace_from_env
from pallet.containerd._proto import INSTALL_HINT, PROTOBUF, PROTOS, load
from pallet.containerd._rpc import _METHODS, _SERVICES, map_error
from pallet.errors import (
    AlreadyExists,
    Error,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unsupported,
)

ROOT = Path(__file__).resolve().parents[3]


def _py(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        cwd=ROOT,
    )


# -- addresses and namespaces ------------------------------------------------------------------
def test_from_env_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PALLET_CONTAINERD_ADDRESS", raising=False)
    monkeypatch.delenv("CONTAINERD_ADDRESS", raising=False)
    assert from_env(None) == DEFAULT_ADDRESS == "/run/containerd/containerd.sock"
    assert from_env("") == DEFAULT_ADDRESS
    monkeypatch.setenv("CONTAINERD_ADDRESS", "/ctr.sock")
    assert from_env(None) == "/ctr.sock"
    monkeypatch.setenv("PALLET_CONTAINERD_ADDRESS", "unix:///pallet.sock")
    assert from_env(None) == "/pallet.sock"
    assert from_env("/arg.sock") == "/arg.sock"


def test_namespace_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PALLET_CONTAINERD_NAMESPACE", raising=False)
    monkeypatch.delenv("CONTAINERD_NAMESPACE", raising=False)
    assert namespace_from_env(None) == "default"
    monkeypatch.setenv("CONTAINERD_NAMESPACE", "k8s.io")
    assert namespace_from_env(None) == "k8s.io"
    monkeypatch.setenv("PALLET_CONTAINERD_NAMESPACE", "buildkit")
    assert namespace_from_env(None) == "buildkit"
    assert namespace_from_env("mine") == "mine"
    for bad in ("Bad Name!", "-x", "a..b", "x" * 77):
        with pytest.raises(InvalidArgument, match="namespace"):
            namespace_from_env(bad)


# -- a daemon that is not there ------------------------------------------------------------------
def test_missing_socket_is_one_line_unavailable(tmp_path: Path) -> None:
    sock = tmp_path / "none.sock"
    with pytest.raises(Unavailable) as ei:
        connect(str(sock))
    msg = str(ei.value)
    assert str(sock) in msg and "\n" not in msg and "running" in msg


def test_not_a_socket(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(Unavailable, match="not a socket"):
        connect(str(f))


def test_stale_socket_is_one_line_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens
    with pytest.raises(Unavailable) as ei:
        connect(str(path), timeout=5)
    msg = str(ei.value)
    assert msg.startswith(f"containerd at {path}: not reachable") and "\n" not in msg


def test_bad_namespace_is_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="namespace"):
        connect(str(tmp_path / "x.sock"), "Bad Name!")


# -- the optional extra ------------------------------------------------------------------------
def test_without_the_extra_connect_says_what_to_install() -> None:
    r = _py(
        "import sys; sys.modules['grpc'] = None\n"
        "from pallet.containerd import connect\n"
        "from pallet.errors import Unsupported\n"
        "try:\n    connect('/nonexistent.sock')\n"
        "except Unsupported as e:\n    print('UNSUPPORTED', e)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"UNSUPPORTED {INSTALL_HINT}"
    assert INSTALL_HINT == "containerd backend: install pallet[containerd] (grpcio, protobuf)"


def test_importing_the_package_and_the_cli_does_not_import_grpc() -> None:
    r = _py(
        "import sys\nimport pallet.containerd\n"
        "from pallet.cli.main import COMMANDS, command_parser\n"
        "for name in COMMANDS:\n    command_parser(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# -- the generated messages -------------------------------------------------------------------
PROTO_DIR = ROOT / "src" / "pallet" / "containerd" / "_proto"


def _gencode_version(path: Path) -> str:
    head = path.read_text().splitlines()[:8]
    return next(line.split(":")[1].strip() for line in head if "Protobuf Python Version" in line)


def test_checked_in_messages_are_what_protoc_makes(tmp_path: Path) -> None:
    """scripts/gen-protos.sh, run with the dev extra's grpcio-tools, reproduces every checked-in
    ``*_pb2.py`` byte for byte, and there is one per .proto file and no other."""
    from importlib.metadata import version

    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-protos.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert r.returncode == 0, r.stderr
    made = tmp_path / "pallet" / "containerd" / "_proto"
    names = sorted(f"{n}_pb2.py" for n in PROTOS)
    assert sorted(p.name for p in made.iterdir()) == names
    assert sorted(p.name for p in PROTO_DIR.glob("*_pb2.py")) == names
    assert sorted(p.stem for p in PROTO_DIR.glob("*.proto")) == sorted(PROTOS)
    stale = [n for n in names if (made / n).read_bytes() != (PROTO_DIR / n).read_bytes()]
    assert stale == [], (
        f"{stale} differ from protoc's output (grpcio-tools {version('grpcio-tools')}): "
        "run scripts/gen-protos.sh with the grpcio-tools the dev extra pins"
    )


def test_protobuf_requirement_follows_the_generated_code() -> None:
    """The containerd extra allows exactly the runtimes the generated code accepts: its own
    protobuf version up to the next major one (a newer gencode never runs on an older runtime)."""
    gen = {_gencode_version(PROTO_DIR / f"{n}_pb2.py") for n in PROTOS}
    assert len(gen) == 1
    (v,) = gen
    major = int(v.split(".")[0])
    wanted = f">={v},<{major + 1}"
    assert wanted == PROTOBUF
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert f"protobuf{PROTOBUF}" in extras["containerd"]
    assert not any(d.startswith("grpcio-tools") for d in extras["containerd"])


def test_generated_code_matches_the_protobuf_runtime() -> None:
    """grpcio-tools' protoc stamps the gencode version; the runtime must be at least that and
    of the same major version (protobuf's own rule, checked again at import)."""
    from google.protobuf import __version__ as runtime

    gen = _gencode_version(Path(load().content.__file__))

    def v(s: str) -> tuple[int, ...]:
        return tuple(int(x) for x in s.split(".")[:3])

    assert v(gen)[0] == v(runtime)[0] and v(gen) <= v(runtime), (gen, runtime)


def test_an_older_protobuf_runtime_is_one_line() -> None:
    """protobuf's own import-time check refuses the generated code; pallet says what to install.
    (The runtime's version numbers are lowered in a fresh interpreter to stand for an old one.)"""
    r = _py(
        "from google.protobuf import runtime_version as rv\n"
        "rv.MAJOR, rv.MINOR, rv.PATCH = 7, 0, 0\n"
        "from pallet.cli.main import main\n"
        "raise SystemExit(main(['containerd', 'version', '--containerd=/nonexistent.sock']))\n"
    )
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()
    assert line.startswith("pallet: error: containerd backend: protobuf ")
    assert "gencode 7.35.1 runtime 7.0.0" in line and line.endswith(f"install protobuf{PROTOBUF}")


# containerd API v1 field numbers (as published) of the messages whose numbering has gaps or
# that carry the write protocol; a typo in our .proto files would corrupt the wire silently
WIRE = {
    ("types", "Descriptor"): {"media_type": 1, "digest": 2, "size": 3, "annotations": 5},
    ("types", "Mount"): {"type": 1, "source": 2, "target": 3, "options": 4},
    ("content", "WriteContentRequest"): {
        "action": 1, "ref": 2, "total": 3, "expected": 4, "offset": 5, "data": 6, "labels": 7,
    },
    ("content", "WriteContentResponse"): {
        "action": 1, "started_at": 2, "updated_at": 3, "offset": 4, "total": 5, "digest": 6,
    },
    ("content", "Status"): {
        "started_at": 1, "updated_at": 2, "ref": 3, "offset": 4, "total": 5, "expected": 6,
    },
    ("content", "Info"): {"digest": 1, "size": 2, "created_at": 3, "updated_at": 4, "labels": 5},
    ("content", "ReadContentRequest"): {"digest": 1, "offset": 2, "size": 3},
    ("content", "ReadContentResponse"): {"offset": 1, "data": 2},
    ("content", "UpdateRequest"): {"info": 1, "update_mask": 2},
    ("images", "Image"): {"name": 1, "labels": 2, "target": 3, "created_at": 7, "updated_at": 8},
    ("images", "DeleteImageRequest"): {"name": 1, "sync": 2},
    ("images", "UpdateImageRequest"): {"image": 1, "update_mask": 2},
    ("leases", "Lease"): {"id": 1, "created_at": 2, "labels": 3},
    ("leases", "CreateRequest"): {"id": 1, "labels": 3},
    ("leases", "DeleteRequest"): {"id": 1, "sync": 2},
    ("leases", "Resource"): {"id": 1, "type": 2},
    ("leases", "AddResourceRequest"): {"id": 1, "resource": 2},
    ("snapshots", "Info"): {
        "name": 1, "parent": 2, "kind": 3, "created_at": 4, "updated_at": 5, "labels": 6,
    },
    ("snapshots", "CommitSnapshotRequest"): {"snapshotter": 1, "name": 2, "key": 3, "labels": 4},
    ("snapshots", "UpdateSnapshotRequest"): {"snapshotter": 1, "info": 2, "update_mask": 3},
    ("snapshots", "ListSnapshotsRequest"): {"snapshotter": 1, "filters": 2},
    ("snapshots", "UsageResponse"): {"size": 1, "inodes": 2},
    ("diff", "ApplyRequest"): {"diff": 1, "mounts": 2},
    ("diff", "ApplyResponse"): {"applied": 1},
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(WIRE), ids=[f"{m}.{n}" for m, n in sorted(WIRE)])
def test_wire_field_numbers(key: tuple[str, str]) -> None:
    mod, name = key
    desc = getattr(load(), mod).DESCRIPTOR.message_types_by_name[name]
    assert {f.name: f.number for f in desc.fields} == WIRE[key]


def test_enums_and_method_table_match_the_protos() -> None:
    pb = load()
    wa = pb.content.DESCRIPTOR.enum_types_by_name["WriteAction"]
    assert {v.name: v.number for v in wa.values} == {"STAT": 0, "WRITE": 1, "COMMIT": 2}
    kind = pb.snapshots.DESCRIPTOR.enum_types_by_name["Kind"]
    assert {v.name: v.number for v in kind.values} == {
        "UNKNOWN": 0,
        "VIEW": 1,
        "ACTIVE": 2,
        "COMMITTED": 3,
    }
    for (service, method), (_kind, req, resp) in _METHODS.items():
        mod, package = _SERVICES[service]
        sd = getattr(pb, mod).DESCRIPTOR.services_by_name[service]
        assert sd.full_name == f"{package}.{service}"
        md = sd.methods_by_name[method]
        assert md.input_type.name == req and md.output_type.name == resp, (service, method)


# -- gRPC status -> pallet error -----------------------------------------------------------------
class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.UNIMPLEMENTED, Unsupported),
        (grpc.StatusCode.OUT_OF_RANGE, InvalidArgument),
        (grpc.StatusCode.UNKNOWN, Error),
        (grpc.StatusCode.DATA_LOSS, Error),
    ],
)
def test_error_mapping(code: grpc.StatusCode, cls: type[Error]) -> None:
    err = map_error(_Rpc(code, "the\ndetails"), "content sha256:x", "/s.sock")
    assert type(err) is cls
    assert str(err) == "content sha256:x: the details"


def test_unreachable_daemon_names_the_socket() -> None:
    exc: Any = _Rpc(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error")
    err = map_error(exc, "image x", "/run/x.sock")
    assert isinstance(err, Unavailable)
    assert str(err).startswith("containerd at /run/x.sock: not reachable: failed to connect")
    locked = map_error(_Rpc(grpc.StatusCode.UNAVAILABLE, "ref a locked"), "ingest ref a", "/s")
    assert str(locked) == "ingest ref a: ref a locked"


def test_cli_without_the_extra_is_one_line() -> None:
    r = _py(
        "import sys; sys.modules['grpc'] = None\n"
        "from pallet.cli.main import main\n"
        "sys.exit(main(['containerd', 'version', '--containerd=/nonexistent.sock']))\n"
    )
    assert r.returncode == 1
    assert r.stderr == f"pallet: error: {INSTALL_HINT}\n"


def test_cli_daemon_from_the_flags_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``pallet containerd …`` picks the daemon as every other command: ``--containerd`` and
    ``--namespace``, else ``$PALLET_CONTAINERD_ADDRESS`` and ``$PALLET_CONTAINERD_NAMESPACE``."""
    from pallet.cli.main import main

    env_sock, flag_sock = tmp_path / "env.sock", tmp_path / "flag.sock"
    monkeypatch.setenv("PALLET_CONTAINERD_ADDRESS", str(env_sock))
    assert main(["containerd", "version"]) == 1
    assert capsys.readouterr().err == (
        f"pallet: error: containerd at {env_sock}: no such socket (is containerd running?)\n"
    )
    assert main(["containerd", "images", f"--containerd={flag_sock}"]) == 1
    assert capsys.readouterr().err == (
        f"pallet: error: containerd at {flag_sock}: no such socket (is containerd running?)\n"
    )
    assert main(["containerd", "version", "--namespace", ""]) == 2
    assert capsys.readouterr().err == "pallet: error: namespace: must not be empty\n"
    monkeypatch.setenv("PALLET_CONTAINERD_NAMESPACE", "bad ns")
    assert main(["containerd", "version"]) == 2
    assert capsys.readouterr().err.startswith("pallet: error: namespace 'bad ns': must match ")
