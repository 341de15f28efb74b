"""Pull a base image, add a directory as a layer on top, and write a Docker tarball.

    python examples/base_layer_docker_tar.py docker.io/library/python:3.12-slim ./dist app.tar \
        --name example.com/app:1
    docker load -i app.tar

The base is pulled into the store (``--root``, else ``$PALLET_ROOT``, else the default root)
for this machine's platform (``--platform``), the directory goes at ``/app`` (``--dest``), and
the image, named ``--name``, is written as a Docker archive that ``docker load`` and ``podman
load`` read. Prints the base's digest and the new image's.
"""

from __future__ import annotations

import argparse
import sys

import pallet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the base image, registry/repository:tag")
    p.add_argument("directory", help="the directory to add")
    p.add_argument("output", help="the Docker tarball to write")
    p.add_argument("--name", default="example.com/app:latest", help="the new image's name")
    p.add_argument("--dest", default="/app", help="where the directory goes in the image")
    p.add_argument("--platform", help="the base's platform (default: this machine's)")
    p.add_argument("--root", help="the store (default: $PALLET_ROOT, else pallet's default)")
    args = p.parse_args(argv)

    try:
        with pallet.Store(root=args.root) as store:
            base = store.pull(args.base, platform=args.platform)
            result = store.export(
                [pallet.Layer(args.directory, dest=args.dest)],
                base=args.base,
                platform=args.platform,
                names=[args.name],
            )
            store.save([args.name], args.output, format="docker")
    except pallet.Error as exc:
        print(f"base_layer_docker_tar: {exc}", file=sys.stderr)
        return 1
    print(base.digest)
    print(result.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
