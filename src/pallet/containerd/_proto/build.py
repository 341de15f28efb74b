"""``python -m pallet.containerd._proto.build [--out DIR] [--force]``: generate the stubs.

Without ``--out`` the stubs go where :func:`pallet.containerd._proto.load` looks for them (the
cache directory, or ``$PALLET_CONTAINERD_STUBS``); with ``--out DIR`` they go into ``DIR``, to be
used with ``PALLET_CONTAINERD_STUBS=DIR``. Prints the directory. Exit status 1 with a one-line
message when protobuf or grpcio-tools is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ...errors import Error
from . import build

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pallet.containerd._proto.build",
        description="Compile pallet's containerd .proto files with grpcio-tools.",
    )
    p.add_argument("--out", type=Path, help="output directory (default: the stub cache)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    args = p.parse_args(argv)
    try:
        root = build(args.out, force=args.force)
    except Error as exc:
        print(f"pallet: error: {exc}", file=sys.stderr)
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
