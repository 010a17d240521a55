"""The compiled, frozen form of a workflow that the engine walks. Pure values."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowtrail.model.definition import BlockBase, WorkflowDefinition

ERROR_HANDLE = "error"


@dataclass(frozen=True, slots=True)
class Edge:
    index: int
    source: str
    handle: str | None
    target: str

    def __str__(self) -> str:
        src = self.source if self.handle is None else f"{self.source}.{self.handle}"
        return f"{src} -> {self.target}"


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    name: str
    type: str
    spec: BlockBase
    has_error_edge: bool
    scope: Scope | None = None  # the inner graph of a loop or parallel
    uses: frozenset[str] = frozenset()  # top-level names its templates read


@dataclass(frozen=True, slots=True)
class Scope:
    """One graph: the top level, or the body of a loop or parallel."""

    nodes: Mapping[str, Node]
    edges: tuple[Edge, ...]
    incoming: Mapping[str, tuple[int, ...]]
    outgoing: Mapping[str, tuple[int, ...]]
    entries: tuple[str, ...]
    container_id: str | None = None


@dataclass(frozen=True)
class Workflow:
    """A validated workflow, ready to run."""

    definition: WorkflowDefinition
    root: Scope
    source: Path | None = None
    children: Mapping[str, Workflow] = field(default_factory=dict)
    """Child workflows by the ``path:`` text of the workflow blocks that run them."""

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def document(self) -> dict[str, Any]:
        return self.definition.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def definition_hash(self) -> str:
        text = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def node(self, block_id: str) -> Node:
        found = find_node(self.root, block_id)
        if found is None:
            raise KeyError(block_id)
        return found


def find_node(scope: Scope, block_id: str) -> Node | None:
    if block_id in scope.nodes:
        return scope.nodes[block_id]
    for node in scope.nodes.values():
        if node.scope is not None:
            found = find_node(node.scope, block_id)
            if found is not None:
                return found
    return None


def iter_nodes(scope: Scope) -> list[Node]:
    out: list[Node] = []
    for node in scope.nodes.values():
        out.append(node)
        if node.scope is not None:
            out.extend(iter_nodes(node.scope))
    return out


def ancestors(scope: Scope, block_id: str) -> set[str]:
    """Every block in ``scope`` with a path of edges to ``block_id``."""
    seen: set[str] = set()
    stack = [block_id]
    while stack:
        current = stack.pop()
        for idx in scope.incoming.get(current, ()):
            src = scope.edges[idx].source
            if src not in seen:
                seen.add(src)
                stack.append(src)
    return seen
