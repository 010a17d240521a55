"""One scope running: every ready block concurrently (bounded), completions taken one at
a time, until no work is left, the first unhandled error (in-flight blocks are awaited), a
pause, or a stop from outside (cancel, a response, the deadline: in-flight blocks are
abandoned). Each block runs through its type's ``BlockKind``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flowtrail.engine import capture
from flowtrail.engine.blocks import BlockResult, Leaf, PauseRequested, Render, Values, kind_of
from flowtrail.engine.events import BlockCompleted, BlockStarted, Frame, Path, position_of
from flowtrail.engine.outcome import (
    ChildWorkflowFailed,
    Halt,
    Outcome,
    ScopeFailed,
    ScopePaused,
    message_of,
)
from flowtrail.engine.reuse import Reused
from flowtrail.engine.state import ScopeState, chosen_edges, ready_on_resume, settle
from flowtrail.engine.tasks import Running
from flowtrail.errors import BlockTimeoutError, ReferenceResolutionError
from flowtrail.model import expressions
from flowtrail.model.graph import Node, Scope

if TYPE_CHECKING:
    from flowtrail.engine.executor import Execution

log = logging.getLogger("flowtrail.engine")
V = TypeVar("V")
R = TypeVar("R")


def _now() -> float:
    return time.time()


class ScopeRun:
    """Runs one scope (the top level, or one loop iteration / parallel branch) to the end."""

    def __init__(
        self,
        ex: Execution,
        scope: Scope,
        state: ScopeState,
        parent: ScopeRun | None,
        frame: Frame | None,
        frame_vars: Mapping[str, Any],
        halt: Halt,
    ) -> None:
        self.ex = ex
        self.scope = scope
        self.state = state
        self.parent = parent
        self.frame = frame
        self.frame_vars = frame_vars
        self.halt = halt
        base = parent.path if parent is not None else ex.path
        self.path: Path = (*base, frame) if frame is not None else base
        self.position = position_of(self.path)

    # -- references --------------------------------------------------------------------
    def lookup(self, name: str) -> Any:
        if name in self.ex.globals:
            return self.ex.globals[name]
        scope: ScopeRun | None = self
        while scope is not None:
            if name in scope.state.outputs:
                return scope.state.outputs[name]
            if name in scope.scope.nodes:
                raise ReferenceResolutionError(
                    f"block '{name}' did not run on this path, so it has no output"
                )
            if scope.frame is not None and scope.frame.kind == name:
                return scope.frame_vars
            scope = scope.parent
        raise ReferenceResolutionError(f"'{name}' is not available here")

    def context(self, node: Node) -> dict[str, Any]:
        """The names a block's templates read. A name with no value here is bound to an
        ``Unavailable`` that explains why, raised only if the template really uses it."""
        ctx: dict[str, Any] = {}
        for name in node.uses:
            try:
                ctx[name] = self.lookup(name)
            except ReferenceResolutionError as exc:
                if name not in expressions.ENV.globals:
                    ctx[name] = expressions.Unavailable(str(exc))
        return ctx

    # -- the scope loop ----------------------------------------------------------------
    async def run(self) -> None:
        if self.state.outputs or self.state.edges or self.state.waiting or self.state.containers:
            ready = ready_on_resume(self.scope, self.state)
        else:
            ready = list(self.scope.entries)
        running: Running[str, Outcome] = Running()
        self.failure: ScopeFailed | None = None
        self.paused = False
        try:
            while True:
                if len(ready) == 1 and not running and self.launchable:
                    # The sequential case (a chain): run it here, no task or queue needed.
                    outcome = await self.run_node(self.scope.nodes[ready.pop()])
                else:
                    while ready and self.launchable:
                        node = self.scope.nodes[ready.pop(0)]
                        running.spawn(self.run_node(node), node.id)
                    if not running:
                        break
                    task, _ = await running.next()
                    outcome = task.result()
                ready.extend(self.absorb(outcome))
        finally:
            running.cancel()
        if self.failure is not None:
            raise self.failure
        if self.paused or (ready and self.ex.pausing):
            raise ScopePaused
        if ready and self.halt.is_set:
            raise ScopeFailed("stopped because a sibling branch failed", None)

    @property
    def launchable(self) -> bool:
        return self.failure is None and not self.stopped

    def absorb(self, outcome: Outcome) -> list[str]:
        """Take one finished block into the scope's state; return what became ready."""
        node = outcome.node
        if outcome.paused is not None:
            self.paused = True
            self.ex.pausing = True
            if node.scope is not None:
                self.state.containers[node.id] = outcome.paused
            else:
                self.state.waiting.add(node.id)
            return []
        if outcome.error is not None and not node.has_error_edge:
            if self.failure is None:
                self.failure = ScopeFailed(
                    outcome.error, outcome.error_block_id, outcome.error_path
                )
                self.halt.flag = True
            return []
        return self.settle(outcome)

    @property
    def stopped(self) -> bool:
        """No new work here: a halt (failure nearby), a pause, or a response elsewhere."""
        ex = self.ex
        return self.halt.is_set or ex.pausing or ex.response is not None or ex.cancelled

    def settle(self, outcome: Outcome) -> list[str]:
        node = outcome.node
        failed = outcome.error is not None
        self.state.outputs[node.id] = {"error": outcome.error} if failed else outcome.output
        self.state.finished.add(node.id)
        self.state.waiting.discard(node.id)
        if kind_of(node).gives_response and not failed:
            self.ex.respond(outcome.output)
        fired = chosen_edges(self.scope, node.id, outcome.handle, failed)
        return settle(self.scope, self.state, node.id, fired)

    async def run_node(self, node: Node) -> Outcome:
        kind = kind_of(node)
        if not kind.holds_slot:
            return await kind.run(self, node)
        async with self.ex.slots:
            return await kind.run(self, node)

    async def run_leaf(self, node: Node, kind: Leaf) -> Outcome:
        """A block with no body, through its kind: resolve its inputs (never retried), then
        run it with its retries and timeout; its markers and outcome either way."""
        ex = self.ex
        if ex.reuse:
            reused = ex.reuse.get((self.position, node.id))
            if reused is not None:
                return self.reuse(node, reused)
        started_at = _now()
        event = BlockStarted(ex.run_id, node.id, node.name, node.type, self.path, started_at)
        if kind.marks_start_lazily:
            ex.emit(event)  # runs no user code: its marker rides on the next write
        else:
            await ex.started(event)
        inputs: Any = None
        tries = 0
        captured: capture.BlockLog | None = None
        try:
            if node.id in self.state.waiting:
                result = BlockResult({"input": ex.services.resume_input})
                inputs = ex.services.resume_input
            else:
                context = self.context(node)
                values = Values(
                    lambda value: expressions.render(value, context),
                    lambda source: expressions.evaluate(source, context),
                    ex.inputs,
                )
                inputs = await self.resolve(node, lambda n: kind.prepare(n, values), node)
                if kind.captures_output:  # what its code prints goes to its span
                    captured, token = capture.begin()
                    try:
                        result, tries = await self.attempt(node, kind, inputs)
                    finally:
                        capture.end(token)
                else:
                    result, tries = await self.attempt(node, kind, inputs)
        except PauseRequested:
            if isinstance(inputs, dict) and inputs.get("message"):
                ex.pause_messages[node.id] = str(inputs["message"])
            ex.emit(self.completed(node, started_at, inputs, None, None, tries, paused=True))
            return Outcome(node, paused={})
        except Exception as exc:
            message = message_of(exc)
            tries = getattr(exc, "flowtrail_tries", 1)
            ex.emit(self.completed(node, started_at, inputs, None, message, tries, captured))
            inner = _block_of(exc, node)
            path = exc.path if isinstance(exc, ChildWorkflowFailed) else (inner,)
            return Outcome(node, error=message, error_block_id=inner, error_path=path)
        ex.emit(self.completed(node, started_at, inputs, result, None, max(tries, 1), captured))
        return Outcome(node, output=result.output, handle=result.handle)

    def reuse(self, node: Node, reused: Reused) -> Outcome:
        """A block the retried run completed: not run again; its output and handle are
        taken over, and its span and step say ``reused``."""
        ex, now = self.ex, _now()
        ex.emit(BlockStarted(ex.run_id, node.id, node.name, node.type, self.path, now))
        ex.emit(
            BlockCompleted(
                ex.run_id,
                node.id,
                node.name,
                node.type,
                self.path,
                now,
                now,
                success=True,
                output=reused.output,
                tries=0,
                handle=reused.handle,
                reused=True,
            )
        )
        return Outcome(node, output=reused.output, handle=reused.handle)

    def completed(
        self,
        node: Node,
        started_at: float,
        inputs: Any,
        result: BlockResult | None,
        error: str | None,
        tries: int,
        captured: capture.BlockLog | None = None,
        paused: bool = False,
    ) -> BlockCompleted:
        logs, dropped = captured.result() if captured is not None else (None, 0)
        return BlockCompleted(
            self.ex.run_id,
            node.id,
            node.name,
            node.type,
            self.path,
            started_at,
            _now(),
            success=error is None,
            input=inputs,
            output=result.output if result is not None else ({"error": error} if error else None),
            error=error,
            handled=error is not None and node.has_error_edge,
            tries=tries,
            tokens=result.tokens if result else None,
            model=result.model if result else None,
            cost=result.cost if result else None,
            paused=paused,
            logs=logs,
            logs_truncated=dropped,
            handle=result.handle if result is not None else None,
        )

    async def attempt(self, node: Node, kind: Leaf, inputs: Any) -> tuple[BlockResult, int]:
        """Run a block with its retry and timeout settings. Cancellation is never retried."""
        spec = node.spec
        tries_allowed = spec.retry.tries if spec.retry else 1
        wait = spec.retry.wait_seconds if spec.retry else 0.0
        tries = 0
        while True:
            tries += 1
            try:
                if spec.timeout is None:
                    return await kind.execute(node, inputs, self), tries
                try:
                    async with asyncio.timeout(spec.timeout):
                        return await kind.execute(node, inputs, self), tries
                except TimeoutError:
                    raise BlockTimeoutError(f"timed out after {spec.timeout:g}s", node.id) from None
            except PauseRequested:
                raise
            except Exception as exc:
                if tries >= tries_allowed or not kind.retried:
                    exc.flowtrail_tries = tries  # type: ignore[attr-defined]
                    raise
                log.info("block %s try %d failed (%s); retrying", node.id, tries, exc)
                await asyncio.sleep(wait)

    async def resolve(self, node: Node, fn: Callable[[V], R], arg: V) -> R:
        """``fn(arg)`` evaluates some of ``node``'s templates: within the run's expression
        limits, and (for a leaf block) its ``timeout``. Anything heavier than plain
        references is evaluated off the event loop, so deadlines, signals and cancel act
        while it runs."""
        timeout = node.spec.timeout if node.scope is None else None  # containers: whole body
        evaluation = expressions.resolve(lambda: fn(arg), self.ex.options.limits, light=node.light)
        if timeout is None:  # the common case: no timer to arm on the per-block path
            return await evaluation
        try:
            async with asyncio.timeout(timeout):
                return await evaluation
        except TimeoutError:
            raise BlockTimeoutError(
                f"timed out after {timeout:g}s while evaluating its templates", node.id
            ) from None

    def render_for(self, node: Node) -> Render:
        context = self.context(node)
        return lambda value: expressions.render(value, context)

    def child(
        self,
        scope: Scope,
        state: ScopeState,
        frame: Frame,
        frame_vars: Mapping[str, Any],
        halt: Halt,
    ) -> ScopeRun:
        return ScopeRun(self.ex, scope, state, self, frame, frame_vars, halt)


def _block_of(exc: BaseException, node: Node) -> str:
    inner = getattr(exc, "inner_block_id", None)
    return inner if isinstance(inner, str) else node.id
