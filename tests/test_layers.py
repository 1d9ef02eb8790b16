"""The layers contract (docs/architecture.md): every import of semret by semret points down.

    cli, web                      what users run: signatures and rendering
    app                           what a user does, as functions (orchestration)
    sql, alembic                  the store: plain values in and out
    vision, hashing, indexes,     pure computation: no SQL
    iwan, evaluation, attacks
    core, errors                  the search contract, validation, kernels: nothing of semret above

Imports inside functions and under TYPE_CHECKING count too: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "semret"

#: Lowest first; a module may import its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"errors", "core"},
    {"torch_files", "vision", "hashing", "indexes", "iwan", "evaluation", "attacks", "data"},
    {"sql", "alembic"},
    {"app"},
    {"cli", "web"},
]


def layer_of(part: str) -> int:
    for level, names in enumerate(LAYERS):
        if part in names:
            return level
    raise AssertionError(f"semret.{part} belongs to no layer: add it to LAYERS and docs/architecture.md")


def top_part(module: str) -> str | None:
    """``semret.sql.engine`` -> ``sql``; None outside semret (or for ``semret`` itself)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "semret" and len(parts) > 1 else None


def module_name(path: Path) -> str:
    relative = path.relative_to(SRC.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            if module == "semret":  # from semret import sql (a package or module, not __version__)
                found += [
                    (node.lineno, f"semret.{alias.name}")
                    for alias in node.names
                    if (SRC / alias.name).is_dir() or (SRC / f"{alias.name}.py").is_file()
                ]
    return found


def violations() -> list[str]:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        own = top_part(module_name(path))
        if own is None:
            continue  # semret/__init__.py
        level = layer_of(own)
        for line, module in imports_of(path):
            target = top_part(module)
            if target is None or target == own:
                continue
            if layer_of(target) > level:
                wrong.append(
                    f"{path.relative_to(SRC.parent)}:{line} ({own}) imports {module} ({target}), a higher layer"
                )
    return wrong


def test_every_import_points_down() -> None:
    assert violations() == []


def test_core_imports_nothing_of_semret_but_errors() -> None:
    for path in sorted((SRC / "core").rglob("*.py")):
        for line, module in imports_of(path):
            part = top_part(module)
            assert part in (None, "core", "errors"), f"{path.name}:{line} imports {module}"


def test_the_contract_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The checker itself must be able to fail: a pure module importing the store lazily is caught.
    fake = tmp_path / "semret"
    (fake / "indexes").mkdir(parents=True)
    (fake / "indexes" / "bad.py").write_text("def f():\n    from semret.sql.engine import make_engine\n")
    (fake / "app").mkdir()
    (fake / "app" / "fine.py").write_text("from semret.sql import engine\nfrom . import fine\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    assert violations() == ["semret/indexes/bad.py:2 (indexes) imports semret.sql.engine (sql), a higher layer"]
