#!/usr/bin/env bash
# Regenerate the containerd API messages, src/pallet/containerd/_proto/*_pb2.py, from the .proto
# files beside them. They are checked in, so that no install compiles anything; run this after
# editing a .proto file or changing the grpcio-tools pin of the dev extra in pyproject.toml (and
# then move the protobuf range of the containerd extra to the version the files now name).
# tests/unit/test_containerd_client.py runs it into a temporary OUT and compares byte for byte.
# Usage: scripts/gen-protos.sh [OUT]     (default: src)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=${1:-src}
mkdir -p "$out"
# grpc_tools.protoc run as a program puts the well-known types (google/protobuf/*.proto) on the
# include path itself; -Isrc makes each file's name, and so its import path, pallet/containerd/...
"$PY" -m grpc_tools.protoc -Isrc --python_out="$out" src/pallet/containerd/_proto/*.proto
