"""``parallel``: runs its body once per branch (``count`` or ``collection``), concurrently."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.container import (
    Container,
    Lifecycle,
    count_of,
    cut_short,
    failed,
    items_of,
)
from flowtrail.engine.events import Frame
from flowtrail.engine.outcome import Halt, Outcome, ScopeFailed, ScopePaused
from flowtrail.engine.state import ScopeState, exit_output
from flowtrail.engine.tasks import Running
from flowtrail.errors import BlockError
from flowtrail.model.definition import ParallelBlock
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Parallel(Container):
    def fresh_state(self) -> dict[str, Any]:
        return {"kind": "parallel", "results": {}, "branches": {}}

    async def body(
        self, owner: ScopeRun, node: Node, life: Lifecycle, cstate: dict[str, Any], fresh: bool
    ) -> Outcome:
        return await _parallel(owner, node, life, cstate, fresh)


KIND = Parallel()


class _Pending:
    """The branches still to launch, produced one at a time: memory follows the branches
    running (``max_concurrency``), never ``count``."""

    def __init__(self, total: int, done: Mapping[str, Any]) -> None:
        self._indices = (i for i in range(total) if str(i) not in done)
        self._next = next(self._indices, None)
        self.left = total - len(done)

    def __bool__(self) -> bool:
        return self._next is not None

    def pop(self) -> int:
        index = self._next
        assert index is not None
        self._next = next(self._indices, None)
        self.left -= 1
        return index


async def _parallel(
    owner: ScopeRun, node: Node, life: Lifecycle, cstate: dict[str, Any], fresh: bool
) -> Outcome:
    spec = node.spec
    assert isinstance(spec, ParallelBlock) and node.scope is not None
    try:
        if fresh:
            render = owner.render_for(node)
            if spec.count is not None:
                cstate["items"] = None
                cstate["total"] = count_of(await owner.resolve(node, render, spec.count), node)
            else:
                items = await owner.resolve(node, render, spec.collection)
                cstate["items"] = items_of(items, "collection", node)
                cstate["total"] = len(cstate["items"])
            await life.start(cstate["total"])
            if cstate["total"] > spec.max_branches:
                raise BlockError(
                    f"{cstate['total']} branches exceed max_branches ({spec.max_branches})",
                    node.id,
                )
    except Exception as exc:
        if not life.began:
            await life.start(None)
        return failed(life, 0, exc, "could not start")
    total: int = cstate["total"]
    items = cstate["items"]
    results: dict[str, Any] = cstate["results"]
    branches: dict[str, Any] = cstate["branches"]
    limit = spec.max_concurrency or max(total, 1)
    body = node.scope
    halt = Halt(owner.halt)
    pending = _Pending(total, results)
    running: Running[tuple[int, ScopeState, float], None] = Running()
    failure: ScopeFailed | None = None
    paused = False

    def launch(i: int) -> None:
        saved = branches.pop(str(i), None)
        state = ScopeState.from_json(saved) if saved else ScopeState()
        frame_vars = {"index": i, "item": items[i] if items is not None else None, "total": total}
        child = owner.child(body, state, Frame(node.id, "parallel", i), frame_vars, halt)
        running.spawn(child.run(), (i, state, time.time()))

    try:
        while True:
            while pending and len(running) < limit and not halt.is_set and not owner.stopped:
                launch(pending.pop())
            if not running:
                break
            task, (i, state, started) = await running.next()
            problem = task.exception()
            if problem is None:
                results[str(i)] = exit_output(body, state)
                life.iteration(i, total, started, True)
            elif isinstance(problem, ScopePaused):
                paused = True
                branches[str(i)] = state.to_json()
            elif isinstance(problem, ScopeFailed):
                life.iteration(i, total, started, False)
                if failure is None and problem.block_id is not None:
                    failure = ScopeFailed(f"branch {i}: {problem}", problem.block_id, problem.path)
                    halt.flag = True
                elif failure is None:
                    failure = problem
            else:
                raise problem
    finally:
        running.cancel()
    if failure is not None:
        return failed(life, len(results), failure, "failed")
    if owner.ex.response is not None:
        return cut_short(node, results)
    if paused or (pending and owner.ex.pausing):
        life.finish(len(results), paused=True)
        return Outcome(node, paused=cstate)
    if pending:
        stopped = BlockError(f"stopped with {pending.left} branches not started", node.id)
        return failed(life, len(results), stopped, "stopped")
    life.finish(len(results))
    ordered = [results[str(i)] for i in range(total) if str(i) in results]
    return Outcome(node, output={"results": ordered})
