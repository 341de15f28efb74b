"""Build a two-platform image (an index) from two root filesystems, one per platform.

    python examples/two_platforms.py ./amd64 ./arm64 registry.example.com/team/app:1 --push

``linux/amd64`` gets the first directory, ``linux/arm64`` the second (``--platforms`` names
others). The index is stored under the name (``--root``, else ``$PALLET_ROOT``, else the default
root) and, with ``--push``, pushed there. Prints the index's digest.
"""

from __future__ import annotations

import argparse
import sys

import pallet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first", help="the first platform's root filesystem")
    p.add_argument("second", help="the second platform's root filesystem")
    p.add_argument("name", help="the image's name: [registry/]repository:tag")
    p.add_argument("--platforms", default="linux/amd64,linux/arm64", help="two, comma-separated")
    p.add_argument("--push", action="store_true", help="push the index to its registry")
    p.add_argument("--root", help="the store (default: $PALLET_ROOT, else pallet's default)")
    args = p.parse_args(argv)
    platforms = args.platforms.split(",")
    if len(platforms) != 2:
        p.error(f"--platforms {args.platforms}: want two platforms")

    try:
        with pallet.Store(root=args.root) as store:
            result = store.export(
                platform={
                    platforms[0]: [pallet.RootFS(args.first)],
                    platforms[1]: [pallet.RootFS(args.second)],
                },
                names=[args.name],
                push=args.push,
            )
    except pallet.Error as exc:
        print(f"two_platforms: {exc}", file=sys.stderr)
        return 1
    print(result.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
