from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

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
        if m.name.endswith(("__main__", "_pb2")):  # _pb2: protoc's output, kept as generated
            continue
        mod = importlib.import_module(m.name)
        if not hasattr(mod, "__all__"):
            missing.append(m.name)
    assert missing == []


def _python(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The lines a fresh interpreter prints running ``code`` (which must succeed)."""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")


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
    assert _python(code, env)[:3] == [
        "_Deferred _Deferred False",
        "True module",
        "anyio CERT_REQUIRED",
    ]


def test_deferred_module_loads_once_for_racing_threads(tmp_path: Path) -> None:
    """Threads racing for a deferred module's first name all wait for the one load; the
    module's own code, asking for a name it has not defined yet, sees it missing (no
    deadlock), as in a normal import."""
    (tmp_path / "slowmod.py").write_text(
        "import sys, time\n"
        "LOADS = getattr(sys, 'slowmod_loads', 0) + 1\n"
        "sys.slowmod_loads = LOADS\n"
        "EARLY = hasattr(sys.modules[__name__], 'LATE')\n"
        "time.sleep(0.2)\n"
        "LATE = 'ok'\n"
    )
    code = (
        "import sys, threading\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from pallet.remote.wire import _defer\n"
        "_defer('slowmod')\n"
        "import slowmod\n"
        "print(type(slowmod).__name__)\n"
        "seen = []\n"
        "ts = [threading.Thread(target=lambda: seen.append(slowmod.LATE)) for _ in range(8)]\n"
        "[t.start() for t in ts]\n"
        "[t.join() for t in ts]\n"
        "print(seen == ['ok'] * 8, slowmod.LOADS, slowmod.EARLY, type(slowmod).__name__)\n"
    )
    assert _python(code)[:2] == ["_Deferred", "True 1 False module"]
