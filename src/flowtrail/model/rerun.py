"""Which blocks a ``retry --from BLOCK`` runs again: pure graph walking.

The chosen block runs again, and so does everything its output can reach: the blocks
downstream of it in its scope, everything inside any of those (a loop's or parallel's
body), and, when it sits inside a loop or parallel, that container and what is downstream
of it in turn, up to the top level.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from flowtrail.errors import InputError
from flowtrail.model.graph import Scope, Workflow


def _walk(scope: Scope) -> list[str]:
    """Every block id in a scope and the scopes inside it."""
    found: list[str] = []
    for node in scope.nodes.values():
        found.append(node.id)
        if node.scope is not None:
            found.extend(_walk(node.scope))
    return found


def block_ids(workflow: Workflow) -> list[str]:
    """Every block of the workflow, containers' bodies included (not child workflows')."""
    return _walk(workflow.root)


def _trail(scope: Scope, block_id: str) -> list[tuple[Scope, str]] | None:
    """The (scope, block) pairs from the top level down to ``block_id``."""
    if block_id in scope.nodes:
        return [(scope, block_id)]
    for node in scope.nodes.values():
        if node.scope is not None:
            inner = _trail(node.scope, block_id)
            if inner is not None:
                return [(scope, node.id), *inner]
    return None


def _downstream(scope: Scope, block_id: str) -> set[str]:
    seen, stack = {block_id}, [block_id]
    while stack:
        for index in scope.outgoing[stack.pop()]:
            target = scope.edges[index].target
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


@dataclass(frozen=True, slots=True)
class Rerun:
    """What a retry from one block runs again."""

    blocks: frozenset[str]
    """Every block that runs again."""
    whole: frozenset[str]
    """Those whose every inner step runs again: all of ``blocks`` but the loops and
    parallels the chosen block sits in (upstream parts of their bodies are reused)."""

    def covers(self, block_id: str, containers: list[str]) -> bool:
        """Whether the step of ``block_id`` inside ``containers`` (outermost first: the
        ids its position passes through) runs again."""
        return block_id in self.blocks or not self.whole.isdisjoint(containers)


NOTHING = Rerun(frozenset(), frozenset())


def rerun_from(workflow: Workflow, block_id: str) -> Rerun:
    """What a retry from ``block_id`` runs again (see the module doc). ``InputError``
    naming the closest ids when the workflow has no such block."""
    trail = _trail(workflow.root, block_id)
    if trail is None:
        known = block_ids(workflow)
        close = difflib.get_close_matches(block_id, known, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"--from: workflow '{workflow.name}' has no block '{block_id}'{hint}")
    again: set[str] = set()
    around = {chosen for _, chosen in trail[:-1]}  # the containers it sits in
    for scope, chosen in reversed(trail):
        for found in _downstream(scope, chosen):
            again.add(found)
            inner = scope.nodes[found].scope
            if inner is not None and found not in around:
                again.update(_walk(inner))
    return Rerun(frozenset(again), frozenset(again - around))
