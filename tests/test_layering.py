"""Module layering: which capmon packages may depend on which (docs/ARCHITECTURE.md).

The imports of every module of ``src/capmon`` are read with :mod:`ast` (function-level imports
included: a lazy import is a dependency too) and followed through capmon's own modules. The
root package ``capmon/__init__.py`` is the public facade above everything and is not followed.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import capmon

PACKAGE = Path(capmon.__file__).parent

ABOVE_THE_MARKERS = (
    "capmon.processors",
    "capmon.orchestrator",
    "capmon.acquisition",
    "capmon.service",
    "capmon.cli",
    "capmon.bench",
    "capmon.demo",
)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # the grids (MGRS tiles, PixelGrid) are below the product readers and the markers database
    "capmon.grid": (
        "capmon.sources",
        "capmon.signals",
        "capmon.mdb",
        "capmon.parcels",
        "capmon.synth",
        *ABOVE_THE_MARKERS,
    ),
    # signals are computed from products and fed to the MDB, and know neither
    "capmon.signals": ("capmon.sources", "capmon.mdb", "capmon.synth", *ABOVE_THE_MARKERS),
    # product naming and readers are below the markers database and the synthetic generator
    "capmon.sources": ("capmon.mdb", "capmon.synth", *ABOVE_THE_MARKERS),
    # declarations know nothing of products or markers
    "capmon.parcels": ("capmon.sources", "capmon.mdb", "capmon.synth", *ABOVE_THE_MARKERS),
    # the MDB never depends on the synthetic generator nor on what uses it
    "capmon.mdb": ("capmon.synth", *ABOVE_THE_MARKERS),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return _modules()[module].name == "__init__.py"


@cache
def direct_imports(module: str) -> frozenset[str]:
    """The capmon modules ``module`` imports anywhere in its source (parents included)."""
    path = _modules()[module]
    package = module if _is_package(module) else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)  # submodules
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        for end in range(2, len(parts) + 1):  # the parent packages run first
            candidate = ".".join(parts[:end])
            if candidate in _modules() and candidate != module:
                found.add(candidate)
    return frozenset(found)


def import_chain(module: str, forbidden: tuple[str, ...]) -> list[str] | None:
    """A chain of imports from ``module`` to a module under ``forbidden``, None if none."""
    parents: dict[str, str | None] = {module: None}
    queue = [module]
    while queue:
        current = queue.pop(0)
        if any(current == name or current.startswith(f"{name}.") for name in forbidden):
            chain = [current]
            while (parent := parents[chain[-1]]) is not None:
                chain.append(parent)
            return chain[::-1]
        for imported in sorted(direct_imports(current)):
            if imported not in parents and imported != "capmon":
                parents[imported] = current
                queue.append(imported)
    return None


def _layer_modules(layer: str) -> list[str]:
    return [name for name in _modules() if name == layer or name.startswith(f"{layer}.")]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_depends_on_a_layer_above(layer: str) -> None:
    modules = _layer_modules(layer)
    assert modules, f"no module {layer}"
    problems = []
    for module in modules:
        chain = import_chain(module, FORBIDDEN[layer])
        if chain is not None:
            problems.append(" -> ".join(chain))
    assert not problems, "imports across the layering:\n" + "\n".join(problems)


def test_errors_and_grid_are_at_the_bottom() -> None:
    assert direct_imports("capmon.errors") == frozenset()
    assert direct_imports("capmon.grid") == {"capmon.errors"}


def test_naming_is_where_readers_and_generator_meet() -> None:
    """The generator writes names through sources.naming; the readers parse with it."""
    assert "capmon.sources.naming" in direct_imports("capmon.synth.formats.sen2cor")
    assert "capmon.sources.naming" in direct_imports("capmon.synth.formats.maja")
    assert "capmon.sources.naming" in direct_imports("capmon.synth.formats.sentinel1")
    for reader in ("sen2cor", "maja", "sentinel1"):
        assert "capmon.sources.naming" in direct_imports(f"capmon.sources.{reader}")


def test_the_checker_sees_direct_transitive_and_lazy_imports() -> None:
    """The checker itself, on known imports, so that the layering test cannot pass vacuously."""
    assert "capmon.mdb.labels" in direct_imports("capmon.mdb.extract")
    assert {"capmon.grid", "capmon.mdb"} <= direct_imports("capmon.mdb.labels")
    chain = import_chain("capmon.mdb.extract", ("capmon.grid",))
    assert chain is not None
    assert chain[0] == "capmon.mdb.extract"
    assert chain[-1] == "capmon.grid"
    # capmon.cli.synth imports the generator lazily, inside a command
    assert import_chain("capmon.cli.synth", ("capmon.synth",)) is not None
    # and a product reader reaches the grid through the reader model
    assert import_chain("capmon.sources.sen2cor", ("capmon.grid",)) is not None
