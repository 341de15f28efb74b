#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, plus the linters, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
