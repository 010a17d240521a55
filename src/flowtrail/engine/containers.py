"""Loops and parallels: each iteration or branch is a nested scope with its own state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flowtrail.engine.events import ContainerCompleted, ContainerStarted, Frame, IterationCompleted
from flowtrail.engine.outcome import Halt, Outcome, ScopeFailed, ScopePaused, message_of
from flowtrail.engine.state import ScopeState, exit_output
from flowtrail.engine.tasks import Running
from flowtrail.errors import BlockError, BlockTimeoutError
from flowtrail.model import expressions
from flowtrail.model.definition import LoopBlock, ParallelBlock
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.executor import ScopeRun


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


def _items(value: Any, what: str, node: Node) -> list[Any]:
    if isinstance(value, str):  # JSON text (an agent's answer, say) holding a list or mapping
        try:
            value = expressions.from_json(value)
        except ValueError as exc:
            raise BlockError(
                f"{what} is text that is not a JSON list or mapping: {exc}", node.id
            ) from None
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"key": k, "value": v} for k, v in value.items()]
    if isinstance(value, list | tuple):
        return list(value)
    raise BlockError(f"{what} must be a list or a mapping, got {type(value).__name__}", node.id)


def _count(value: Any, node: Node) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BlockError(f"count must be a whole number, got {value!r}", node.id)
    try:
        number = float(value)
    except ValueError:
        raise BlockError(f"count must be a whole number, got {value!r}", node.id) from None
    if not number.is_integer():
        raise BlockError(f"count must be a whole number, got {value!r}", node.id)
    count = int(number)
    if count < 0:
        raise BlockError(f"count must not be negative, got {count}", node.id)
    return count


class _Lifecycle:
    """The start/iteration/completion events of one container run."""

    def __init__(self, owner: ScopeRun, node: Node, cstate: dict[str, Any]) -> None:
        self.owner = owner
        self.node = node
        self.cstate = cstate
        self.started_at: float = cstate.setdefault("started_at", time.time())
        self.began = False
        self.iterations = 0

    async def start(self, total: int | None) -> None:
        self.began = True
        ex, node = self.owner.ex, self.node
        await ex.started(
            ContainerStarted(
                ex.run_id, node.id, node.name, node.type, self.owner.path, self.started_at, total
            )
        )

    def iteration(self, index: int, total: int | None, started_at: float, ok: bool) -> None:
        self.iterations += 1
        ex, node = self.owner.ex, self.node
        ex.emit(
            IterationCompleted(
                ex.run_id,
                node.id,
                node.type,
                self.owner.path,
                index,
                total,
                started_at,
                time.time(),
                ok,
            )
        )

    def finish(self, iterations: int, error: str | None = None, paused: bool = False) -> None:
        ex, node = self.owner.ex, self.node
        ex.emit(
            ContainerCompleted(
                ex.run_id,
                node.id,
                node.name,
                node.type,
                self.owner.path,
                self.started_at,
                time.time(),
                success=error is None,
                iterations=iterations,
                error=error,
                handled=error is not None and node.has_error_edge,
                paused=paused,
            )
        )


def _failed(life: _Lifecycle, iterations: int, exc: Exception, where: str) -> Outcome:
    node = life.node
    path: tuple[str, ...] = (node.id,)
    if isinstance(exc, ScopeFailed):
        inner = exc.block_id
        path = exc.path or path
        message = f"{node.type} '{node.id}' {where}: {exc}"
        if inner:
            message = f"{node.type} '{node.id}' {where}, block '{inner}': {exc}"
    else:
        inner = node.id
        message = message_of(exc)
    life.finish(iterations, error=message)
    return Outcome(node, error=message, error_block_id=inner or node.id, error_path=path)


def _cut_short(node: Node, results: Any) -> Outcome:
    """The run got its ``response`` while this container ran: the run ends at once, so the
    container (and any iteration in progress) is left open, recorded ``abandoned`` like
    every block the response cut short, with no completion marker after the response."""
    return Outcome(node, output={"results": results})


async def _bounded(life: _Lifecycle, body: Coroutine[Any, Any, Outcome]) -> Outcome:
    """A container's own ``timeout:`` covers all of its iterations or branches."""
    timeout = life.node.spec.timeout
    if timeout is None:
        return await body
    try:
        async with asyncio.timeout(timeout):
            return await body
    except TimeoutError:
        if not life.began:
            await life.start(None)
        expired = BlockTimeoutError(f"timed out after {timeout:g}s", life.node.id)
        return _failed(life, life.iterations, expired, "timed out")


async def run_container(owner: ScopeRun, node: Node) -> Outcome:
    """Run (or continue, after a pause) a loop or parallel within its own ``timeout:``."""
    resumed = owner.state.containers.pop(node.id, None)
    if node.type == "loop":
        cstate: dict[str, Any] = resumed or {"kind": "loop", "index": 0, "results": []}
        body = _loop
    else:
        cstate = resumed or {"kind": "parallel", "results": {}, "branches": {}}
        body = _parallel
    life = _Lifecycle(owner, node, cstate)
    return await _bounded(life, body(owner, node, life, cstate, resumed is None))


async def _loop(
    owner: ScopeRun, node: Node, life: _Lifecycle, cstate: dict[str, Any], fresh: bool
) -> Outcome:
    spec = node.spec
    assert isinstance(spec, LoopBlock) and node.scope is not None
    results: list[Any] = cstate["results"]
    try:
        if fresh:
            render = owner.render_for(node)
            if spec.kind == "count":
                cstate["total"] = _count(await owner.resolve(node, render, spec.count), node)
            elif spec.kind == "for_each":
                items = await owner.resolve(node, render, spec.for_each)
                cstate["items"] = _items(items, "for_each", node)
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
        return _failed(life, 0, exc, "could not start")
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
                return _failed(life, index, exc, f"`while` at iteration {index}")
        if index >= spec.max_iterations:
            capped = BlockError(
                f"reached max_iterations ({spec.max_iterations}) and the condition still holds",
                node.id,
            )
            return _failed(life, index, capped, "stopped")
        if current is None and owner.stopped:
            if owner.ex.response is not None:
                return _cut_short(node, results)
            if not owner.ex.pausing:
                stopped = BlockError(f"stopped before iteration {index}: run ending", node.id)
                return _failed(life, index, stopped, "stopped")
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
            return _failed(life, index + 1, exc, f"iteration {index}")
        if owner.ex.response is not None:  # this iteration gave the run its response
            return _cut_short(node, results)
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
                return _failed(life, index, exc, f"`do_while` after iteration {index - 1}")
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
    owner: ScopeRun, node: Node, life: _Lifecycle, cstate: dict[str, Any], fresh: bool
) -> Outcome:
    spec = node.spec
    assert isinstance(spec, ParallelBlock) and node.scope is not None
    try:
        if fresh:
            render = owner.render_for(node)
            if spec.count is not None:
                cstate["items"] = None
                cstate["total"] = _count(await owner.resolve(node, render, spec.count), node)
            else:
                items = await owner.resolve(node, render, spec.collection)
                cstate["items"] = _items(items, "collection", node)
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
        return _failed(life, 0, exc, "could not start")
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
        return _failed(life, len(results), failure, "failed")
    if owner.ex.response is not None:
        return _cut_short(node, results)
    if paused or (pending and owner.ex.pausing):
        life.finish(len(results), paused=True)
        return Outcome(node, paused=cstate)
    if pending:
        stopped = BlockError(f"stopped with {pending.left} branches not started", node.id)
        return _failed(life, len(results), stopped, "stopped")
    life.finish(len(results))
    ordered = [results[str(i)] for i in range(total) if str(i) in results]
    return Outcome(node, output={"results": ordered})
