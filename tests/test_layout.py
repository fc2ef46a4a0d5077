"""The library's layout stays readable: modules of a size one can read, no import cycles between them,
no private names imported across modules, every registered defense in its own module."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "egan_lib"
MAX_LINES = 420
MODULES = sorted(p for p in LIB.rglob("*.py"))


def _name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path):
    """(imported module, [names]) of the module-level imports of one file (not those inside functions)."""
    mod, is_pkg = _name(path), path.name == "__init__.py"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom):
            yield _resolve(mod, is_pkg, node), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(LIB)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concern): {long}"


def test_no_private_names_imported_across_modules():
    bad = []
    for p in MODULES:
        for target, names in _imports(p):
            if target.startswith("egan_lib"):
                bad += [f"{_name(p)}: from {target} import {n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_no_import_cycles_between_modules():
    known = {_name(p) for p in MODULES}
    graph = {}
    for p in MODULES:
        deps = set()
        for target, names in _imports(p):
            if not target.startswith("egan_lib"):
                continue
            # "from pkg import mod" imports the submodule pkg.mod
            subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in known}
            deps |= subs or ({target} if target in known else set())
        graph[_name(p)] = deps - {_name(p)}
    # a package's __init__ importing its own submodules is how packages work; cycles through
    # "the package imports the submodule, the submodule imports a sibling" are not cycles of modules
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if m.startswith(d + ".") or d.startswith(m + "."):
                continue
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def test_every_registered_defense_lives_in_its_own_module():
    from egan_lib.defenses import REGISTRY
    homes = {}
    for name, method in REGISTRY.items():
        homes.setdefault(method.build.__module__, []).append(name)
    import importlib
    # one method per module; a module may register the variants of its one method when it lists them
    # in VARIANTS (chapter 08's robust EGAN: label-free and with the classifier's loss)
    shared = {m: names for m, names in homes.items()
              if len(names) > 1 and set(names) != set(getattr(importlib.import_module(m), "VARIANTS", ()))}
    assert not shared, f"one method per module: {shared}"
    assert set(REGISTRY) >= {"Original", "EGAN", "DnCNN", "AutoEncoder", "APE-GAN", "PixelDefend", "Defense-GAN"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIB)))
def test_code_cites_only_files_in_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bSPEC\b", text), f"{path.name} cites a specification that is not in the repository"


def test_the_package_ships_every_subpackage():
    """pip install (Colab) must carry defenses/, attacks/, eval/, ...: pyproject's find pattern covers them."""
    import tomllib

    from setuptools import find_packages
    cfg = tomllib.loads((LIB.parent / "pyproject.toml").read_text())
    include = cfg["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(str(LIB.parent), include=include))
    wanted = {_name(p.parent) for p in LIB.rglob("__init__.py")}
    assert wanted <= found, f"not shipped: {sorted(wanted - found)}"
