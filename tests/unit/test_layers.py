"""Each layer imports only downward: model → engine → diagnostics → store; the engine
never imports the store, and the store knows nothing of the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "flowtrail"

FORBIDDEN = {
    "model": {"engine", "diagnostics", "store", "cli", "runner", "settings"},
    "engine": {"diagnostics", "store", "cli", "runner", "settings"},
    "store": {"model", "engine", "diagnostics", "cli", "runner", "settings"},
    "diagnostics": {"cli", "runner", "settings"},
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downward(layer: str) -> None:
    files = sorted((SRC / layer).rglob("*.py"))
    assert files, f"no modules in {layer}/"
    offenders = []
    for path in files:
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "flowtrail" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                offenders.append(f"{path.relative_to(SRC)} imports {module}")
    assert not offenders, "\n".join(offenders)
