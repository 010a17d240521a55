"""The compiled, frozen form of a workflow that the engine walks. Pure values."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from functools import cached_property
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
    light: bool = False  # every template a plain reference: evaluated in place, no thread


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

    @cached_property
    def document(self) -> dict[str, Any]:
        """The definition as a JSON document (computed once: a Workflow never changes;
        callers copy it before they add to it)."""
        return self.definition.model_dump(mode="json", by_alias=True, exclude_none=True)

    @cached_property
    def snapshot(self) -> tuple[dict[str, Any], str]:
        """The self-contained document a run of it stores, and the hash it is stored
        under (``model.snapshot``), built once however many runs start from it."""
        # snapshot.py rebuilds workflows through the compiler, which builds this module's
        # types: imported here, not at the top, to keep that cycle out of import time.
        from flowtrail.model.snapshot import snapshot_hash, snapshot_of

        document = snapshot_of(self)
        return document, snapshot_hash(document)

    @property
    def definition_hash(self) -> str:
        text = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def pause_points(self) -> tuple[str, ...]:
        """The blocks (here or in a child workflow) that can pause a run for input."""
        return _pause_points(self, set())

    @property
    def can_pause(self) -> bool:
        """Whether a run of this workflow can end ``paused`` (and so needs a record to be
        resumed from): it has a ``wait for: input``, itself or in a child workflow."""
        return bool(self.pause_points)


def _pause_points(workflow: Workflow, seen: set[int]) -> tuple[str, ...]:
    if id(workflow) in seen:
        return ()
    seen.add(id(workflow))
    found = [n.id for n in iter_nodes(workflow.root) if getattr(n.spec, "for_", None) == "input"]
    for child in workflow.children.values():
        found.extend(_pause_points(child, seen))
    return tuple(found)


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


class Upstream:
    """``name in Upstream(...)``: does ``name`` run before ``block_id``? The backwards walk
    stops as soon as it finds the name, so checking a reference to the block just before
    costs one step, not a walk of the whole graph."""

    def __init__(self, scope: Scope, block_id: str, outer: Container[str] | None = None) -> None:
        self.scope = scope
        self.outer = outer
        self.seen: set[str] = set()
        self.frontier = [block_id]

    def __contains__(self, name: object) -> bool:
        if name in self.seen:
            return True
        while self.frontier:
            current = self.frontier.pop()
            for idx in self.scope.incoming.get(current, ()):
                source = self.scope.edges[idx].source
                if source not in self.seen:
                    self.seen.add(source)
                    self.frontier.append(source)
            if name in self.seen:
                return True
        return self.outer is not None and name in self.outer
