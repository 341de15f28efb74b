"""Export a directory as an image and push it to a registry.

    python examples/export_and_push.py ./dist registry.example.com/team/app:1

The directory becomes one layer at ``/app`` (``--dest``), with ``/app/run`` as the command
(``--cmd``). The image goes into the store (``--root``, else ``$PALLET_ROOT``, else the default
root) under the name, and is pushed there. Prints the image's digest.
"""

from __future__ import annotations

import argparse
import sys

import pallet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("directory", help="the directory to export")
    p.add_argument("name", help="where to push: registry/repository:tag")
    p.add_argument("--dest", default="/app", help="where the directory goes in the image")
    p.add_argument("--cmd", default="/app/run", help="the image's command")
    p.add_argument("--root", help="the store (default: $PALLET_ROOT, else pallet's default)")
    p.add_argument("--insecure", action="store_true", help="plain HTTP or unverified TLS")
    args = p.parse_args(argv)

    try:
        with pallet.Store(root=args.root) as store:
            result = store.export(
                [pallet.Layer(args.directory, dest=args.dest)],
                config=pallet.Config(cmd=[args.cmd]),
                names=[args.name],
                push=True,
                insecure=args.insecure,
            )
    except pallet.Error as exc:
        print(f"export_and_push: {exc}", file=sys.stderr)
        return 1
    print(result.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
