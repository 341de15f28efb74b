from __future__ import annotations

import importlib
import pkgutil

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
