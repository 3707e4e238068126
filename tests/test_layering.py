"""Dependencies point one way: integrations -> emulators -> numerics, and inside
integrations the library (torch/, data, runs) never imports a program, a report or the
CLI. Every import is of lowbit.…, never of a top-level numerics/emulators/integrations
(which an installed wheel does not have)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"numerics": "lowbit.numerics", "emulators": "lowbit.emulators",
            "integrations": "lowbit.integrations", "lowbit": "lowbit"}
LIBRARY = ("lowbit.integrations.torch", "lowbit.integrations.data", "lowbit.integrations.runs")
# module prefix -> what it must not import (prefixes of module names)
BANNED = {
    "lowbit.numerics": ("lowbit.emulators", "lowbit.integrations", "numba", "torch", "llvmlite"),
    "lowbit.emulators": ("lowbit.integrations", "torch"),
    **{lib: ("lowbit.integrations.programs", "lowbit.integrations.reports",
             "lowbit.integrations.cli") for lib in LIBRARY},
    "lowbit.integrations.programs": ("lowbit.integrations.cli",),
    "lowbit.integrations.reports": ("lowbit.integrations.cli",),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGES.get(parts[0], parts[0])  # tests/, benchmarks/ keep their names
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, function-level ones included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
    return out


SOURCES = sorted(p for top in PACKAGES for p in (ROOT / top).rglob("*.py"))
EVERYWHERE = SOURCES + sorted(p for d in ("tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def _under(mod: str, prefix: str) -> bool:
    return mod == prefix or mod.startswith(prefix + ".")


def test_sources_are_found():
    """The scan sees every layer (an empty scan would pass vacuously)."""
    names = {_module_name(p) for p in SOURCES}
    for needed in ("lowbit", "lowbit.numerics.formats", "lowbit.emulators.ops",
                   "lowbit.integrations.torch.layers", "lowbit.integrations.cli"):
        assert needed in names


@pytest.mark.parametrize("path", EVERYWHERE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_top_level_imports_of_the_subpackages(path):
    """Code imports lowbit.numerics, never numerics (which would shadow, or be shadowed
    by, the distributions of that name)."""
    bad = [(line, mod) for line, mod in _imports(path)
           if mod.split(".")[0] in ("numerics", "emulators", "integrations")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dependencies_point_one_way(path):
    """numerics imports neither emulators, integrations, numba nor torch; emulators no
    integrations or torch; the torch library no program, report or CLI."""
    name = _module_name(path)
    rules = [b for prefix, banned in BANNED.items() if _under(name, prefix) for b in banned]
    bad = [(line, mod) for line, mod in _imports(path) for b in rules if _under(mod, b)]
    assert not bad, f"{name} imports {bad}"
