#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, plus the linters and the documentation
# build, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests docs examples
.venv/bin/ruff format --check src
.venv/bin/mypy
# the site, with every link and reference checked (mkdocs.yml: strict); built aside, not kept
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
.venv/bin/python -m pytest "$@"
