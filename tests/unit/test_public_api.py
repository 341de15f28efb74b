from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pallet


def test_all_is_sorted_and_complete() -> None:
    assert pallet.__all__ == sorted(pallet.__all__)
    public = (
        {n for n in dir(pallet) if not n.startswith("_")}
        - {"annotations", "TYPE_CHECKING"}
        - {m.name for m in pkgutil.iter_modules(pallet.__path__)}
    )
    assert set(pallet.__all__) - {"__version__"} == public


def test_every_module_declares_all() -> None:
    missing = []
    for m in pkgutil.walk_packages(pallet.__path__, "pallet."):
        if m.name.endswith(("__main__", "_pb2")):  # _pb2: protoc's output, kept as generated
            continue
        mod = importlib.import_module(m.name)
        if not hasattr(mod, "__all__"):
            missing.append(m.name)
    assert missing == []


def _python(code: str) -> list[str]:
    """The lines a fresh interpreter prints running ``code`` (which must succeed)."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")


def test_import_pallet_is_light() -> None:
    """``import pallet`` (the command line's first import) loads no HTTP library, no codec and
    no gRPC: those come with the first call that needs them."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # whatever site and .pth files loaded
        "import pallet\n"
        "heavy = ('httpcore', 'httpx', 'h11', 'ssl', 'certifi', 'anyio', 'zstandard', 'isal',\n"
        "         'zlib_ng', 'zlib', 'grpc', 'google.protobuf', 'sqlite3', 'platform')\n"
        "print(sorted(m for m in heavy if m in set(sys.modules) - before))\n"
        "pallet.Platform.default()\n"
        "print(pallet.Digest.__module__, 'platform' in set(sys.modules) - before)\n"
    )
    assert _python(code)[:2] == ["[]", "pallet.oci.digest False"]


def test_every_public_name_has_an_example() -> None:
    """Every name in ``__all__``, and every public method of the API's classes, documents
    itself with an ``Example::`` block."""
    import inspect

    missing = []
    for name in pallet.__all__:
        obj = getattr(pallet, name)
        if name.startswith("__") or isinstance(obj, str):
            continue
        if "Example::" not in (inspect.getdoc(obj) or ""):
            missing.append(name)
        if name in ("Store", "ContentStore", "LeaseManager"):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (
                    callable(member) or isinstance(member, (property, classmethod, staticmethod))
                ):
                    continue
                doc = inspect.getdoc(getattr(obj, attr)) or ""
                if "Example::" not in doc:
                    missing.append(f"{name}.{attr}")
    assert missing == []
