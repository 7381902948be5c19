"""The package's import structure, read from the source with :mod:`ast` (nothing is imported).

Every module under formats/, sim/, hw/, cost_models/, kernels/ and cli/ is parsed and its
``import`` statements resolved to lowbit modules. Asserted:

* no import cycle between modules (inside a folder or across folders), and none between layers;
* the dependency direction ``formats <- sim, hw, kernels <- cost_models <- sim/search``
  (sim/search may import cost_models; nothing else in sim may; the top-level ``lowbit``
  command in cli/ may import everything);
* no ``_private`` name or module imported from another package (folder);
* no import of a lowbit module inside a function (lazy imports are for optional heavy packages
  such as torch, triton, dask, onnx only: a lowbit module that imports one of them at module
  level, directly or through other lowbit modules, may be imported lazily).

No exceptions are listed: any violation fails :func:`test_no_violations`.
"""

from __future__ import annotations

import ast
import os
from functools import lru_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: source folder -> installed package (pyproject.toml [tool.setuptools.package-dir])
FOLDERS = {"formats": "lowbit.formats", "sim": "lowbit.sim", "hw": "lowbit.hw",
           "cost_models": "lowbit.cost_models", "kernels": "lowbit.kernels", "cli": "lowbit"}

#: layer -> layers it may import (besides itself)
ALLOWED = {
    "formats": set(),
    "sim": {"formats"},
    "hw": {"formats"},
    "kernels": {"formats"},
    "cost_models": {"formats", "sim", "hw", "kernels"},
    "sim/search": {"formats", "sim", "hw", "kernels", "cost_models"},
    "cli": {"formats", "sim", "hw", "kernels", "cost_models", "sim/search"},
}


def layer(mod: str) -> str:
    """The layer a lowbit module belongs to."""
    parts = mod.split(".")
    if len(parts) == 1 or parts[1] not in {"formats", "sim", "hw", "cost_models", "kernels"}:
        return "cli"
    if parts[1] == "sim" and (len(parts) > 2 and (parts[2] == "search" or parts[2] == "search_cli")):
        return "sim/search"
    return parts[1]


def package(mod: str, is_pkg: bool) -> str:
    return mod if is_pkg else mod.rpartition(".")[0]


@lru_cache(maxsize=1)
def modules() -> dict[str, tuple[str, bool]]:
    """lowbit module name -> (source path, is a package __init__)."""
    out = {}
    for folder, pkg in FOLDERS.items():
        for dp, dirs, files in os.walk(os.path.join(REPO, folder)):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            for f in files:
                if not f.endswith(".py"):
                    continue
                path = os.path.join(dp, f)
                rel = os.path.relpath(path, os.path.join(REPO, folder))[:-3].split(os.sep)
                is_pkg = rel[-1] == "__init__"
                if is_pkg:
                    rel = rel[:-1]
                out[".".join([pkg, *rel])] = (path, is_pkg)
    return out


def _in_type_checking(node, parents) -> bool:
    for p in parents:
        if isinstance(p, ast.If):
            t = p.test
            name = t.id if isinstance(t, ast.Name) else getattr(t, "attr", None)
            if name == "TYPE_CHECKING":
                return True
    return False


HEAVY_PACKAGES = {"torch", "triton", "dask", "distributed", "onnx", "onnxruntime"}


@lru_cache(maxsize=1)
def heavy_modules() -> frozenset[str]:
    """lowbit modules that import an optional heavy package at module level (directly or
    through other lowbit modules)."""
    mods = modules()
    direct, edges = set(), {}
    for mod, (path, _) in mods.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.If, ast.Try)):
                stack.extend(ast.iter_child_nodes(node))
                continue
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            if any(n.split(".")[0] in HEAVY_PACKAGES for n in names):
                direct.add(mod)
    for src, dst, _, in_func, _ in imports():
        if not in_func:
            edges.setdefault(src, set()).add(dst)
    heavy, changed = set(direct), True
    while changed:
        changed = False
        for src, dsts in edges.items():
            if src not in heavy and dsts & heavy:
                heavy.add(src)
                changed = True
    return frozenset(heavy)


@lru_cache(maxsize=1)
def imports() -> list[tuple[str, str, str | None, bool, int]]:
    """(importer, imported module, imported name or None, inside a function, line) for every
    import of a lowbit module (``from pkg import name`` resolves to ``pkg.name`` when that is a
    module)."""
    mods = modules()
    out = []
    for mod, (path, is_pkg) in mods.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        stack = [(tree, ())]
        while stack:
            node, parents = stack.pop()
            for child in ast.iter_child_nodes(node):
                stack.append((child, parents + (node,)))
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if _in_type_checking(node, parents):
                continue
            in_func = any(isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                          for p in parents)
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "lowbit" or a.name.startswith("lowbit."):
                        out.append((mod, _existing(a.name, mods), None, in_func, node.lineno))
                continue
            if node.level:
                base = package(mod, is_pkg).split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not (target == "lowbit" or target.startswith("lowbit.")):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in mods:
                    out.append((mod, sub, None, in_func, node.lineno))
                else:
                    out.append((mod, _existing(target, mods), a.name, in_func, node.lineno))
    return out


def _existing(name: str, mods) -> str:
    """The longest prefix of a dotted name that is a lowbit module."""
    parts = name.split(".")
    while parts and ".".join(parts) not in mods:
        parts.pop()
    return ".".join(parts) or name


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or a self loop (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def violations() -> list[str]:
    """Every rule violation as a stable one-line string."""
    mods = modules()
    found = set()
    mod_edges: dict[str, set[str]] = {}
    layer_edges: dict[str, set[str]] = {}
    for src, dst, name, in_func, _line in imports():
        if dst not in mods:
            found.add(f"unresolved: {src} imports {dst}")
            continue
        if in_func and dst not in heavy_modules():
            found.add(f"function-level import: {src} imports {dst}"
                      + (f".{name}" if name else ""))
        if dst != src:
            mod_edges.setdefault(src, set()).add(dst)
        ls, ld = layer(src), layer(dst)
        if ls != ld:
            layer_edges.setdefault(ls, set()).add(ld)
            if ld not in ALLOWED[ls]:
                found.add(f"layer: {ls} must not import {ld} ({src} imports {dst})")
        src_pkg = package(src, mods[src][1])
        dst_pkg = package(dst, mods[dst][1])
        private_mod = any(p.startswith("_") and not p.startswith("__") for p in dst.split("."))
        private_name = name is not None and name.startswith("_") and not name.startswith("__")
        if src_pkg != dst_pkg and (private_mod or private_name):
            found.add(f"private: {src} imports {dst}" + (f".{name}" if name else ""))
    for comp in _cycles(mod_edges):
        found.add("module cycle: " + " <-> ".join(comp))
    for comp in _cycles(layer_edges):
        found.add("layer cycle: " + " <-> ".join(comp))
    return sorted(found)


def test_walker_sees_the_package():
    mods = modules()
    assert {"lowbit.formats.convert", "lowbit.sim.gemm", "lowbit.hw", "lowbit.main",
            "lowbit.kernels.spec", "lowbit.cost_models.array"} <= set(mods)
    edges = {(s, d) for s, d, _, _, _ in imports()}
    assert ("lowbit.formats.convert", "lowbit.formats._kernel") in edges


def test_rules_catch_what_they_claim():
    """The checkers fire on hand-made graphs (a test of the test)."""
    assert "lowbit.kernels.triton_quant" in heavy_modules()
    assert "lowbit.formats.convert" not in heavy_modules()
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []
    assert layer("lowbit.sim.search.ilp") == "sim/search"
    assert layer("lowbit.sim.gemm") == "sim"
    assert layer("lowbit.main") == "cli"
    assert "cost_models" not in ALLOWED["sim"] and "sim" not in ALLOWED["formats"]


def test_no_violations():
    found = violations()
    assert not found, "import-structure violations:\n" + "\n".join(found)
