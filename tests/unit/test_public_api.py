from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import pallet


def test_all_is_sorted_and_complete() -> None:
    assert pallet.__all__ == sorted(pallet.__all__)
    public = (
        {n for n in dir(pallet) if not n.startswith("_")}
        - {"annotations"}
        - {m.name for m in pkgutil.iter_modules(pallet.__path__)}
    )
    assert set(pallet.__all__) - {"__version__"} == public


def test_every_module_declares_all() -> None:
    missing = []
    for m in pkgutil.walk_packages(pallet.__path__, "pallet."):
        if m.name.endswith("__main__"):
            continue
        mod = importlib.import_module(m.name)
        if not hasattr(mod, "__all__"):
            missing.append(m.name)
    assert missing == []


def test_import_pallet_is_light() -> None:
    """``import pallet`` loads the error classes only; the data model comes on first use."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # whatever site and .pth files loaded
        "import pallet\n"
        "heavy = ('typing', 'platform', 'inspect', 'dataclasses', 're', 'pallet.oci')\n"
        "print(sorted(m for m in heavy if m in set(sys.modules) - before))\n"
        "pallet.Platform.default()\n"
        "print(pallet.Digest.__module__, 'platform' in set(sys.modules) - before)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "pallet.oci.digest False"]


def test_plain_http_wire_leaves_certifi_and_anyio_unloaded() -> None:
    """httpcore imports both at module level; they load on first use, and then work."""
    code = (
        "import sys\n"
        "from pallet.remote.wire import CoreWire, verified_context\n"
        "w = CoreWire(make_context=lambda: verified_context(None), insecure=lambda h: False,\n"
        "             max_connections=1, connect_timeout=1, read_timeout=1)\n"
        "print(type(sys.modules['certifi']).__name__, type(sys.modules['anyio']).__name__,\n"
        "      'importlib.resources' in sys.modules)\n"
        "import certifi, os\n"
        "print(os.path.isfile(certifi.where()), type(sys.modules['certifi']).__name__)\n"
        "from anyio import Lock\n"
        "print(Lock.__module__.split('.')[0], verified_context(None).verify_mode.name)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == [
        "_Deferred _Deferred False",
        "True module",
        "anyio CERT_REQUIRED",
    ]
