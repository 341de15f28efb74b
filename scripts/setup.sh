#!/usr/bin/env bash
# Set up pallet on a Debian machine: system tools (for the test suite's interop checks and the
# benchmarks), a virtualenv in .venv, pallet installed into it in editable mode with its test
# and lint tools. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-pip ca-certificates
  tar gzip pigz zstd attr                  # GNU tar interop, peers of the compression pipeline
  umoci skopeo docker-registry             # interop: layout unpack, copy, a real registry
  containerd runc busybox-static           # interop: a private containerd, ctr run
  docker.io podman                         # interop: a private dockerd, rootful podman
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
