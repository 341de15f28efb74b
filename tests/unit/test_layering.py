"""The import layering of docs/architecture.md, enforced (ggcr's depcheck in spirit)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "pallet"

# package -> the pallet packages it may import (besides itself). Keep in step with the doc.
LAYER0 = {
    "errors",
    "oci",
    "labels",
    "filters",
    "gc",
    "mount",
    "progress",
    "atomicfile",
    "_gotime",
    "_gojson",
}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_gotime": {"errors"},
    "_gojson": {"errors", "_gotime"},
    "oci": {"errors"},
    "labels": {"errors"},
    "filters": {"errors"},
    "gc": set(),
    "mount": {"errors"},
    "progress": {"errors"},
    "atomicfile": set(),
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
    # the library API (layer 4): the one place that builds concrete stores and wires the
    # exporter, the registry client and the layouts together
    "_types": {"oci"},
    "_backend": {"*"},
    "_store": {"*"},
    "_export": {"*"},
    "_registry": {"*"},
    "_archive": {"*"},
    "_lookup": {"*"},
    "_manage": {"*"},
    "_views": {"_backend", "_manage", "_types"},
    # the command line is a shell over the public API: `pallet` (names in its __all__) only
    "cli": {"__init__"},
    "__init__": {"errors", "oci", "progress", "_export", "_store", "_types", "_views"},
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


def _public(src: Path) -> set[str]:
    """The names in ``pallet.__all__``, read from the source (not imported)."""
    init = src / "__init__.py"
    for node in ast.parse(init.read_text() if init.exists() else "").body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    return set()


def private_names_in_cli(src: Path) -> list[str]:
    """``from pallet import X`` in ``cli`` where X is not in ``pallet.__all__``."""
    public = _public(src)
    bad = []
    for f in sorted((src / "cli").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                (node.level == 0 and node.module == "pallet")
                or (node.level == 2 and node.module is None)
            ):
                bad += [
                    f"cli/{f.name}:{node.lineno}: {a.name} is not public"
                    for a in node.names
                    if a.name not in public
                ]
    return bad


def violations(src: Path) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    public = _public(src)
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
                if pkg == "cli" and len(parts) == 2 and parts[1] in public:
                    continue  # `from .. import Store`: a public name
                sub = ".".join(parts[1:3])
                if target not in allowed and sub not in allowed:
                    bad.append(f"{f.relative_to(src)}:{line}: {pkg} may not import {mod}")
                # the exporter sees stores only through their protocols
                if pkg == "exporter" and (
                    mod.endswith(".local")
                    or mod.endswith("metadata.store")
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
    (fake / "probe.py").write_text("from ..metadata import store\nimport httpx\nimport os\n")
    assert violations(tmp_path / "pallet") == [
        "content/probe.py:1: content may not import pallet.metadata",
        "content/probe.py:2: content may not import httpx",
    ]


def _module_graph(src: Path) -> dict[str, set[str]]:
    """module -> the pallet modules it imports, function-level imports included.

    A module importing from a package it lives in (its own ``__init__``) is not an edge: the
    package's protocols sit there for its implementations to use, as in containerd's layout.
    """
    names: dict[str, Path] = {}
    for f in src.rglob("*.py"):
        rel = f.relative_to(src.parent).with_suffix("")
        names[".".join(rel.parts).removesuffix(".__init__")] = f
    graph: dict[str, set[str]] = {m: set() for m in names}
    for mod, f in names.items():
        for target, _line in _imports(f, src):
            # `from pkg import sub` resolves to the submodule when there is one
            cands = [target, target.rpartition(".")[0]]
            hit = next((c for c in cands if c in names), None)
            if hit and hit != mod and not mod.startswith(hit + "."):
                graph[mod].add(hit)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_imports_run_one_way() -> None:
    """No circle of imports between modules, counting imports inside functions too."""
    assert circles(_module_graph(SRC)) == []


def test_a_circle_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "pallet" / "content"
    pkg.mkdir(parents=True)
    (tmp_path / "pallet" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    (pkg / "c.py").write_text("from . import a\n")
    assert circles(_module_graph(tmp_path / "pallet")) == [["pallet.content.a", "pallet.content.b"]]


# pallet.metadata, as containerd's core/metadata: the database at the bottom, one module per
# table over it, the collector and fsck over the tables, the facade on top. Keep in step with the
# doc's metadata row.
METADATA: dict[str, set[str]] = {
    "_sqlite": set(),
    "leases": {"_sqlite"},
    "content": {"_sqlite", "leases"},
    "images": {"_sqlite"},
    "snapshots": {"_sqlite", "leases"},
    "gc": {"_sqlite", "leases"},
    "fsck": {"_sqlite"},
    "store": {"_sqlite", "leases", "content", "images", "snapshots", "gc", "fsck"},
}


def metadata_violations(src: Path) -> list[str]:
    """Imports inside ``metadata`` that go up or sideways, and private names reached through
    anything but ``self``/``cls`` (``db._conn()``)."""
    pkg = src / "metadata"
    graph = _module_graph(src)
    bad: list[str] = []
    for f in sorted(pkg.glob("*.py")):
        if f.name == "__init__.py":
            continue
        name = f.stem
        allowed = METADATA.get(name)
        if allowed is None:
            bad.append(f"metadata/{f.name}: missing from the metadata table")
            continue
        for target in sorted(graph[f"pallet.metadata.{name}"]):
            sub = target.removeprefix("pallet.metadata.")
            if target.startswith("pallet.metadata.") and sub not in allowed:
                bad.append(f"metadata/{f.name}: may not import {target}")
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                bad.append(f"metadata/{f.name}:{node.lineno}: reaches into .{node.attr}")
    return bad


def test_metadata_imports_run_down_and_use_public_names() -> None:
    assert metadata_violations(SRC) == []


def test_a_metadata_violation_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "pallet" / "metadata"
    pkg.mkdir(parents=True)
    (tmp_path / "pallet" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "_sqlite.py").write_text("")
    (pkg / "store.py").write_text("")
    (pkg / "images.py").write_text("from . import store\n\ndef f(db):\n    return db._conn()\n")
    assert metadata_violations(tmp_path / "pallet") == [
        "metadata/images.py: may not import pallet.metadata.store",
        "metadata/images.py:4: reaches into ._conn",
    ]


def test_cli_uses_only_public_names() -> None:
    assert private_names_in_cli(SRC) == []


def test_a_private_name_in_cli_is_caught(tmp_path: Path) -> None:
    cli = tmp_path / "pallet" / "cli"
    cli.mkdir(parents=True)
    (tmp_path / "pallet" / "__init__.py").write_text('__all__ = ["Store"]\n')
    (cli / "x.py").write_text("from .. import Store, labels\nfrom ..metadata import store\n")
    assert private_names_in_cli(tmp_path / "pallet") == ["cli/x.py:1: labels is not public"]
    assert violations(tmp_path / "pallet") == [
        "cli/x.py:1: cli may not import pallet.labels",
        "cli/x.py:2: cli may not import pallet.metadata",
    ]
