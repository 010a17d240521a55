"""``loop``: runs its body ``count`` times, for each item, or while a condition holds."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
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
from flowtrail.errors import BlockError
from flowtrail.model import expressions
from flowtrail.model.definition import LoopBlock
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class LoopVars(Mapping[str, Any]):
    """``loop.*`` inside an iteration. ``results`` is copied only when read, so a block
    that keeps it cannot end up inside the very list it is appended to."""

    __slots__ = ("_results", "_values")
    _KEYS = ("index", "item", "total", "results")

    def __init__(self, index: int, item: Any, total: int | None, results: list[Any]) -> None:
        self._values = {"index": index, "item": item, "total": total}
        self._results = results

    def __getitem__(self, key: str) -> Any:
        if key == "results":
            return list(self._results)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)


class Loop(Container):
    def fresh_state(self) -> dict[str, Any]:
        return {"kind": "loop", "index": 0, "results": []}

    async def body(
        self, owner: ScopeRun, node: Node, life: Lifecycle, cstate: dict[str, Any], fresh: bool
    ) -> Outcome:
        return await _loop(owner, node, life, cstate, fresh)


KIND = Loop()


async def _loop(
    owner: ScopeRun, node: Node, life: Lifecycle, cstate: dict[str, Any], fresh: bool
) -> Outcome:
    spec = node.spec
    assert isinstance(spec, LoopBlock) and node.scope is not None
    results: list[Any] = cstate["results"]
    try:
        if fresh:
            render = owner.render_for(node)
            if spec.kind == "count":
                cstate["total"] = count_of(await owner.resolve(node, render, spec.count), node)
            elif spec.kind == "for_each":
                items = await owner.resolve(node, render, spec.for_each)
                cstate["items"] = items_of(items, "for_each", node)
                cstate["total"] = len(cstate["items"])
            await life.start(cstate.get("total"))
            total = cstate.get("total")
            if total is not None and total > spec.max_iterations:
                raise BlockError(
                    f"{total} iterations exceed max_iterations ({spec.max_iterations})", node.id
                )
    except Exception as exc:
        if not life.began:
            await life.start(None)
        return failed(life, 0, exc, "could not start")
    total = cstate.get("total")
    items = cstate.get("items")
    halt = Halt(owner.halt)
    index = cstate["index"]
    # the previous iteration, readable by `while` (kept across a pause at the boundary)
    saved_last = cstate.pop("last", None)
    last: ScopeState | None = ScopeState.from_json(saved_last) if saved_last else None
    while True:
        if total is not None and index >= total:
            break
        frame_vars = LoopVars(index, items[index] if items is not None else None, total, results)
        condition = spec.while_ if spec.kind == "while" else None
        current = cstate.pop("current", None)
        if current is None and condition is not None:
            try:
                if not await _truthy(owner, node, condition, frame_vars, last):
                    break
            except Exception as exc:
                return failed(life, index, exc, f"`while` at iteration {index}")
        if index >= spec.max_iterations:
            capped = BlockError(
                f"reached max_iterations ({spec.max_iterations}) and the condition still holds",
                node.id,
            )
            return failed(life, index, capped, "stopped")
        if current is None and owner.stopped:
            if owner.ex.response is not None:
                return cut_short(node, results)
            if not owner.ex.pausing:
                stopped = BlockError(f"stopped before iteration {index}: run ending", node.id)
                return failed(life, index, stopped, "stopped")
            cstate["index"] = index
            if last is not None:
                cstate["last"] = last.to_json()
            life.finish(index, paused=True)
            return Outcome(node, paused=cstate)
        state = ScopeState.from_json(current) if current else ScopeState()
        started = time.time()
        child = owner.child(node.scope, state, Frame(node.id, "loop", index), frame_vars, halt)
        try:
            await child.run()
        except ScopePaused:
            cstate["index"] = index
            cstate["current"] = state.to_json()
            life.finish(index, paused=True)
            return Outcome(node, paused=cstate)
        except ScopeFailed as exc:
            life.iteration(index, total, started, False)
            return failed(life, index + 1, exc, f"iteration {index}")
        if owner.ex.response is not None:  # this iteration gave the run its response
            return cut_short(node, results)
        results.append(exit_output(node.scope, state))
        last = state
        life.iteration(index, total, started, True)
        index += 1
        cstate["index"] = index
        if spec.kind == "do_while":
            try:
                if not await _truthy(owner, node, spec.do_while or "", frame_vars, state):
                    break
            except Exception as exc:
                return failed(life, index, exc, f"`do_while` after iteration {index - 1}")
    life.finish(len(results))
    return Outcome(node, output={"results": results})


async def _truthy(
    owner: ScopeRun,
    node: Node,
    source: str,
    frame_vars: Mapping[str, Any],
    state: ScopeState | None = None,
) -> bool:
    """A loop condition sees the outer names, ``loop.*`` and the iteration's outputs."""
    context = owner.context(node)
    context["loop"] = frame_vars
    if state is not None:
        context.update(state.outputs)
    value = await owner.resolve(node, lambda s: expressions.evaluate(s, context), source)
    return bool(value)
