"""The import layering of docs/architecture.md, enforced (ggcr's depcheck in spirit)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "pallet"

# package -> the pallet packages it may import (besides itself). Keep in step with the doc.
LAYER0 = {"errors", "oci", "labels", "filters", "gc", "mount", "progress"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "oci": {"errors"},
    "labels": {"errors"},
    "filters": {"errors"},
    "gc": set(),
    "mount": {"errors"},
    "progress": {"errors"},
    "content": LAYER0,
    "compression": LAYER0 | {"content"},
    "archive": LAYER0 | {"content", "compression"},
    "leases": LAYER0,
    "images": LAYER0 | {"content"},
    "snapshots": LAYER0,
    "metadata": LAYER0 | {"content", "compression", "archive", "leases", "images", "snapshots"},
    "remote": LAYER0 | {"content", "images"},
    "layout": LAYER0 | {"content", "images", "archive", "compression"},
    "containerd": LAYER0 | {"content", "images", "leases", "snapshots", "archive", "compression"},
    "rootfs": LAYER0 | {"content", "compression", "archive", "snapshots", "images", "leases"},
    "exporter": LAYER0
    | {
        "content",
        "compression",
        "archive",
        "leases",
        "images",
        "snapshots",
        "rootfs",
        "remote",
        "layout",
    },
    "cli": {"*"},
    "__init__": {"errors", "oci"},
}
# third-party imports allowed per package
THIRD_PARTY: dict[str, set[str]] = {
    "compression": {"isal", "zlib_ng", "zstandard"},
    "remote": {"httpcore", "certifi"},
    "containerd": {"grpc", "google"},
    "cli": {"rich"},
    "progress": set(),
}


def _package(path: Path, src: Path) -> str:
    rel = path.relative_to(src)
    if rel.parts[0] == "__init__.py":
        return "__init__"
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path, src: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) for each import, with relative imports resolved."""
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        pkg = parts
    else:
        pkg = parts[:-1]
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    out.extend((f"{mod}.{a.name}", node.lineno) for a in node.names)
                    continue
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
    return out


def violations(src: Path) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    bad: list[str] = []
    for f in sorted(src.rglob("*.py")):
        pkg = _package(f, src)
        allowed = ALLOWED.get(pkg)
        assert allowed is not None, f"{f}: package {pkg!r} missing from the layering table"
        for mod, line in _imports(f, src):
            top = mod.split(".")[0]
            if top == "pallet":
                parts = mod.split(".")
                target = "__init__" if len(parts) == 1 else parts[1]
                if "*" in allowed or target == pkg:
                    continue
                sub = ".".join(parts[1:3])
                if target not in allowed and sub not in allowed:
                    bad.append(f"{f.relative_to(src)}:{line}: {pkg} may not import {mod}")
                # the exporter sees stores only through their protocols
                if pkg == "exporter" and (
                    mod.endswith(".local")
                    or mod.endswith("metadata.db")
                    or mod.endswith("remote.client")
                ):
                    bad.append(f"{f.relative_to(src)}:{line}: exporter imports concrete {mod}")
            elif top in stdlib or top in ("__future__", "_typeshed"):
                continue
            elif top not in THIRD_PARTY.get(pkg, set()):
                bad.append(f"{f.relative_to(src)}:{line}: {pkg} may not import {top}")
    return bad


def test_import_layering() -> None:
    assert len(list(SRC.rglob("*.py"))) > 10
    assert violations(SRC) == []


def test_a_forbidden_import_is_caught(tmp_path: Path) -> None:
    """The checker itself must be able to fail."""
    fake = tmp_path / "pallet" / "content"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("from ..errors import NotFound\n")
    (fake / "probe.py").write_text("from ..metadata import db\nimport httpx\nimport os\n")
    assert violations(tmp_path / "pallet") == [
        "content/probe.py:1: content may not import pallet.metadata",
        "content/probe.py:2: content may not import httpx",
    ]
