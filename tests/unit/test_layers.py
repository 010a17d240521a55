"""Each layer imports only downward: model → engine → diagnostics → store; the engine
never imports the store, and the store knows nothing of the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "flowtrail"

FORBIDDEN = {
    "model": {"engine", "diagnostics", "store", "queue", "cli", "runner", "settings"},
    "engine": {"diagnostics", "store", "queue", "cli", "runner", "settings"},
    "store": {"model", "engine", "diagnostics", "liveness", "queue", "cli", "runner", "settings"},
    "diagnostics": {"queue", "cli", "runner", "settings"},
    "queue": {"cli"},
    # single modules: the vocabulary and the error tree sit below everything; settings reads
    # defaults from the layers below it; the runner is driven by the CLI, never the reverse
    "status": {"model", "engine", "diagnostics", "store", "cli", "runner", "settings", "errors"},
    "errors": {"model", "engine", "diagnostics", "store", "cli", "runner", "settings", "status"},
    "settings": {"store", "queue", "cli", "runner"},
    "runner": {"queue", "cli"},
    # leases and the sweeper work on stored runs: never on the engine, the queue or a command
    "liveness": {"model", "engine", "diagnostics", "queue", "cli", "runner"},
    # the HTTP API sits beside the CLI: `flowtrail serve` runs it, it never runs a command
    "api": {"cli"},
    # OpenTelemetry export is a leaf the engine (traceparent), the runner and the sweeper
    # call with plain values: it knows nothing of the rest
    "otel": {
        "model",
        "engine",
        "diagnostics",
        "store",
        "liveness",
        "queue",
        "cli",
        "runner",
        "settings",
        "status",
        "errors",
    },
    # the web UI reads stored runs (and asks the API for a request's role): never a command
    "web": {"engine", "queue", "cli", "runner"},
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
    package = SRC / layer
    files = sorted(package.rglob("*.py")) if package.is_dir() else [SRC / f"{layer}.py"]
    assert files, f"no modules in {layer}/"
    offenders = []
    for path in files:
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "flowtrail" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                offenders.append(f"{path.relative_to(SRC)} imports {module}")
    assert not offenders, "\n".join(offenders)
