"""Pure planning over a scope: which edges fire, what gets pruned, what is ready.

A ``ScopeState`` is everything needed to continue a scope later (it is what a pause
persists), so it holds only JSON-friendly values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowtrail.model.graph import ERROR_HANDLE, Scope


@dataclass
class ScopeState:
    outputs: dict[str, Any] = field(default_factory=dict)
    edges: dict[int, bool] = field(default_factory=dict)  # True fired, False pruned
    finished: set[str] = field(default_factory=set)  # ran (successfully or handled)
    skipped: set[str] = field(default_factory=set)  # every incoming edge was pruned
    waiting: set[str] = field(default_factory=set)  # paused `wait for: input` blocks
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)  # in-progress

    def to_json(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs,
            "edges": {str(k): v for k, v in self.edges.items()},
            "finished": sorted(self.finished),
            "skipped": sorted(self.skipped),
            "waiting": sorted(self.waiting),
            "containers": self.containers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScopeState:
        return cls(
            outputs=dict(data.get("outputs", {})),
            edges={int(k): bool(v) for k, v in data.get("edges", {}).items()},
            finished=set(data.get("finished", [])),
            skipped=set(data.get("skipped", [])),
            waiting=set(data.get("waiting", [])),
            containers=dict(data.get("containers", {})),
        )


def chosen_edges(scope: Scope, block_id: str, handle: str | None, failed: bool) -> list[int]:
    """The outgoing edges that fire: ``error`` ones after a handled failure; otherwise the
    plain edges plus those of the chosen branch/route."""
    fired = []
    for idx in scope.outgoing[block_id]:
        edge_handle = scope.edges[idx].handle
        if failed:
            if edge_handle == ERROR_HANDLE:
                fired.append(idx)
        elif edge_handle is None or (handle is not None and edge_handle == handle):
            fired.append(idx)
    return fired


def settle(scope: Scope, state: ScopeState, block_id: str, fired: list[int]) -> list[str]:
    """Mark ``block_id``'s outgoing edges fired or pruned, cascade pruning through blocks
    whose every incoming edge is pruned, and return the blocks that became ready."""
    ready: list[str] = []
    fire = set(fired)
    stack = [(block_id, fire)]
    while stack:
        source, fire_set = stack.pop()
        for idx in scope.outgoing[source]:
            state.edges[idx] = idx in fire_set
            target = scope.edges[idx].target
            verdict = _resolved(scope, state, target)
            if verdict is None or target in state.finished or target in state.skipped:
                continue
            if verdict:
                ready.append(target)
            else:
                state.skipped.add(target)
                stack.append((target, set()))
    return ready


def _resolved(scope: Scope, state: ScopeState, block_id: str) -> bool | None:
    """None while some incoming edge is undecided; else whether any of them fired."""
    any_fired = False
    for idx in scope.incoming[block_id]:
        verdict = state.edges.get(idx)
        if verdict is None:
            return None
        any_fired = any_fired or verdict
    return any_fired


def ready_on_resume(scope: Scope, state: ScopeState) -> list[str]:
    """Blocks to (re)start when a scope continues from a snapshot."""
    ready = []
    for block_id in scope.nodes:
        if block_id in state.finished or block_id in state.skipped:
            continue
        if (
            block_id in state.waiting
            or block_id in state.containers
            or not scope.incoming[block_id]
            or _resolved(scope, state, block_id)
        ):
            ready.append(block_id)
    return ready


def exit_output(scope: Scope, state: ScopeState) -> Any:
    """What one iteration or branch contributes to ``results`` (and the top level to the
    run's output): the output of each block that ran and whose outgoing edges were all
    pruned, i.e. the last block that ran on each path. A block whose ``error`` edge was
    pruned because it succeeded counts; one whose ``error`` edge fired does not (its
    handler does). One such block gives its output, several a mapping by block id."""
    exits = [
        b
        for b in scope.nodes
        if b in state.finished and not any(state.edges.get(i, True) for i in scope.outgoing[b])
    ]
    if len(exits) == 1:
        return state.outputs.get(exits[0])
    return {b: state.outputs.get(b) for b in exits}
