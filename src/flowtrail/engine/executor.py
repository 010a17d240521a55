"""The async executor: runs every ready block concurrently (bounded), processes completions
one at a time, and stops on no more work, the first unhandled error (in-flight blocks are
awaited), cancellation (in-flight blocks are abandoned), a ``response`` block, a pause, or
the run deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flowtrail.engine import blocks, capture
from flowtrail.engine.blocks import (
    BlockResult,
    BlockServices,
    HttpClient,
    PauseRequested,
    Prices,
)
from flowtrail.engine.containers import run_container
from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    Event,
    Frame,
    NullHooks,
    Path,
    RunHooks,
    StartEvent,
)
from flowtrail.engine.observers import ObserverHub
from flowtrail.engine.outcome import (
    ChildWorkflowFailed,
    Halt,
    Outcome,
    ScopeFailed,
    ScopePaused,
    message_of,
)
from flowtrail.engine.state import ScopeState, chosen_edges, exit_output, ready_on_resume, settle
from flowtrail.engine.tasks import Running
from flowtrail.errors import (
    BlockError,
    BlockTimeoutError,
    ReferenceResolutionError,
)
from flowtrail.model import expressions
from flowtrail.model.budget import Limits
from flowtrail.model.compile import block_templates
from flowtrail.model.definition import ResponseBlock, WaitBlock, WorkflowBlock
from flowtrail.model.graph import Node, Scope, Workflow, iter_nodes
from flowtrail.model.inputs import validate_inputs
from flowtrail.status import RunStatus

log = logging.getLogger("flowtrail.engine")
V = TypeVar("V")
R = TypeVar("R")
MAX_WORKFLOW_DEPTH = 25
_LEAF_FREE = frozenset({"loop", "parallel", "workflow"})  # hold no concurrency slot


@dataclass(frozen=True)
class RunOptions:
    max_concurrency: int = 64
    deadline_seconds: float | None = None
    prices: Prices = field(default_factory=Prices)
    agent_base_url: str | None = None
    agent_api_key: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)  # what evaluating templates may spend


@dataclass(frozen=True)
class RunResult:
    status: RunStatus  # completed, failed, cancelled or paused
    output: Any = None
    error: str | None = None
    error_block_id: str | None = None
    timed_out: bool = False
    pause_state: dict[str, Any] | None = None
    waiting_blocks: tuple[str, ...] = ()
    # the `workflow` blocks leading to error_block_id through child workflows, then it
    error_path: tuple[str, ...] = ()


def _now() -> float:
    return time.time()


class Execution:
    """One run of one workflow (or one child-workflow call inside a run)."""

    def __init__(
        self,
        workflow: Workflow,
        inputs: Any = None,
        *,
        run_id: str,
        hooks: RunHooks | None = None,
        observers: ObserverHub | None = None,
        options: RunOptions | None = None,
        resume_state: dict[str, Any] | None = None,
        resume_input: Any = None,
        path: Path = (),
        depth: int = 0,
        threads: Executor | None = None,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.hooks: RunHooks = hooks or NullHooks()
        self.hub = observers or ObserverHub()
        self.options = options or RunOptions()
        self.path = path
        self.depth = depth
        self.inputs = (
            inputs if resume_state is not None else validate_inputs(workflow.definition, inputs)
        )
        self.resume_state = resume_state
        # one limit for the whole run, child workflows included
        self.slots = slots or asyncio.Semaphore(self.options.max_concurrency)
        self.pausing = False
        self.pause_messages: dict[str, str] = {}
        self.cancelled = False
        self.response: tuple[Any] | None = None
        self._task: asyncio.Task[Any] | None = None
        self.globals = {
            "vars": workflow.definition.vars,
            "env": self.options.env,
            "secrets": self.options.secrets,
            "run": {"id": run_id, "workflow": workflow.name},
        }
        self.services = BlockServices(
            http=HttpClient(),
            prices=self.options.prices,
            agent_base_url=self.options.agent_base_url,
            agent_api_key=self.options.agent_api_key,
            search_path=workflow.source.parent if workflow.source else None,
            threads=threads,
            resume_input=resume_input,
        )

    # -- events ------------------------------------------------------------------------
    async def started(self, event: StartEvent) -> None:
        try:
            await self.hooks.block_started(event)
        except Exception:  # the recorder never fails a run
            log.exception("recording a start marker failed; the run goes on")
        self.hub.publish(event)

    def emit(self, event: Event) -> None:
        try:
            self.hooks.record(event)
        except Exception:
            log.exception("recording an event failed; the run goes on")
        self.hub.publish(event)

    # -- control -----------------------------------------------------------------------
    def cancel(self) -> None:
        """Abandon in-flight blocks and end the run as ``cancelled``."""
        self.cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def respond(self, output: Any) -> None:
        if self.response is None:
            self.response = (output,)
            if self._task is not None:
                self._task.cancel()

    async def run(self) -> RunResult:
        if self.resume_state is not None:
            state = ScopeState.from_json(self.resume_state)
        else:
            state = ScopeState()
        root = ScopeRun(self, self.workflow.root, state, None, None, {}, Halt())
        deadline = self.options.deadline_seconds if self.depth == 0 else None
        if self.cancelled:  # cancelled before it began: nothing runs
            return RunResult(RunStatus.CANCELLED, output={"cancelled": True})

        async def drive() -> None:
            async with asyncio.timeout(deadline):
                await root.run()

        if self.services.threads is None:
            self.services.threads = shared_threads(self.options.max_concurrency)
        # The root scope runs in its own task so that `cancel()` and `response` can stop
        # it without cancelling whoever awaits this run.
        self._task = asyncio.ensure_future(drive())
        try:
            return await self._finish(state)
        finally:
            if self.depth == 0:  # the run is over: its HTTP connections go too
                await _close_quietly(self.services.http)

    async def _finish(self, state: ScopeState) -> RunResult:
        assert self._task is not None
        try:
            await self._task
        except ScopeFailed as exc:
            if self.cancelled:  # cancelled while failing: the request wins
                return RunResult(RunStatus.CANCELLED, output={"cancelled": True})
            return RunResult(
                RunStatus.FAILED, error=str(exc), error_block_id=exc.block_id, error_path=exc.path
            )
        except ScopePaused:
            if self.cancelled:  # cancelled while pausing: nothing left to resume
                return RunResult(RunStatus.CANCELLED, output={"cancelled": True})
            return RunResult(
                RunStatus.PAUSED, pause_state=state.to_json(), waiting_blocks=_waiting(state)
            )
        except TimeoutError:
            return RunResult(
                RunStatus.FAILED,
                timed_out=True,
                error_block_id=None,
                error=f"run exceeded its deadline of {self.options.deadline_seconds:g}s",
            )
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self._task.cancel()
                raise  # our caller was cancelled, not this run
            if self.cancelled:
                return RunResult(RunStatus.CANCELLED, output={"cancelled": True})
            if self.response is None:
                raise
        if self.response is not None:
            return RunResult(RunStatus.COMPLETED, output=self.response[0])
        return RunResult(RunStatus.COMPLETED, output=exit_output(self.workflow.root, state))

    async def run_child(self, node: Node, inputs: Any, path: Path) -> Any:
        assert isinstance(node.spec, WorkflowBlock)
        if self.depth + 1 > MAX_WORKFLOW_DEPTH:
            raise BlockError(
                f"maximum workflow call depth ({MAX_WORKFLOW_DEPTH}) exceeded", node.id
            )
        child_wf = self.workflow.children.get(node.spec.path)
        if child_wf is None:
            raise BlockError(f"child workflow {node.spec.path} was not loaded", node.id)
        child = Execution(
            child_wf,
            inputs,
            run_id=self.run_id,
            hooks=self.hooks,
            observers=self.hub,
            options=self.options,
            path=(*path, Frame(node.id, "workflow", 0)),
            depth=self.depth + 1,
            threads=self.services.threads,
            slots=self.slots,
        )
        child.services.http = self.services.http  # the run's one client
        result = await child.run()
        if result.status is RunStatus.COMPLETED:
            return result.output
        if result.status is RunStatus.PAUSED:
            raise BlockError("a child workflow cannot pause for input yet", node.id)
        inner = result.error_path or ((result.error_block_id,) if result.error_block_id else ())
        if len(inner) > 1:
            # Failed in a grandchild: the message already says where; say it only once.
            message = result.error or "child workflow failed"
        else:
            where = f" at block '{inner[0]}'" if inner else ""
            message = f"child workflow '{child_wf.name}' failed{where}: {result.error}"
        raise ChildWorkflowFailed(message, node.id, (node.id, *inner))


def input_readers(workflow: Workflow, waiting: Sequence[str]) -> dict[str, str]:
    """For each waiting ``wait for: input`` block whose output a block reads (so a resume
    without input would fail later, reading ``None``), one block that reads it."""
    nodes = iter_nodes(workflow.root)
    found: dict[str, str] = {}
    for wait in nodes:
        if wait.id in waiting and isinstance(wait.spec, WaitBlock) and wait.spec.for_:
            reader = next((n.id for n in nodes if wait.id in n.uses), None)
            if reader is not None:
                found[wait.id] = reader
    return found


async def _close_quietly(http: HttpClient) -> None:
    try:
        await http.aclose()
    except Exception:  # closing idle connections never changes the run's outcome
        log.warning("closing the run's HTTP client failed", exc_info=True)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def shared_threads(size: int) -> ThreadPoolExecutor:
    """Long-lived threads for sync function blocks, shared by runs of the same
    concurrency. Not the event loop's default executor, so a block abandoned by a cancel
    never holds up ``asyncio.run``'s shutdown."""
    pool = _POOLS.get(size)
    if pool is None:
        pool = _POOLS[size] = ThreadPoolExecutor(size, thread_name_prefix="flowtrail-block")
    return pool


def _waiting(state: ScopeState) -> tuple[str, ...]:
    found = list(state.waiting)
    for cstate in state.containers.values():
        for sub in [cstate.get("current"), *cstate.get("branches", {}).values()]:
            if sub:
                found.extend(_waiting(ScopeState.from_json(sub)))
    return tuple(sorted(set(found)))


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
        if isinstance(node.spec, ResponseBlock) and not failed:
            self.ex.respond(outcome.output)
        fired = chosen_edges(self.scope, node.id, outcome.handle, failed)
        return settle(self.scope, self.state, node.id, fired)

    async def run_node(self, node: Node) -> Outcome:
        if node.scope is not None:
            return await run_container(self, node)
        if node.type in _LEAF_FREE:
            return await self.run_leaf(node)
        async with self.ex.slots:
            return await self.run_leaf(node)

    async def run_leaf(self, node: Node) -> Outcome:
        ex = self.ex
        started_at = _now()
        event = BlockStarted(ex.run_id, node.id, node.name, node.type, self.path, started_at)
        if node.type == "start":
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
            elif node.type == "start":
                result = BlockResult(ex.inputs)
                inputs = ex.inputs
            else:
                context = self.context(node)
                inputs = await self.resolve(
                    node,
                    lambda n: blocks.prepare(
                        n,
                        lambda value: expressions.render(value, context),
                        lambda source: expressions.evaluate(source, context),
                    ),
                    node,
                )
                if node.type == "function":  # what its code prints goes to its span
                    captured, token = capture.begin()
                    try:
                        result, tries = await self.attempt(node, inputs)
                    finally:
                        capture.end(token)
                else:
                    result, tries = await self.attempt(node, inputs)
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
        )

    async def attempt(self, node: Node, inputs: Any) -> tuple[BlockResult, int]:
        """Run a block with its retry and timeout settings. Cancellation is never retried."""
        spec = node.spec
        tries_allowed = spec.retry.tries if spec.retry else 1
        wait = spec.retry.wait_seconds if spec.retry else 0.0
        tries = 0
        while True:
            tries += 1
            try:
                if spec.timeout is None:
                    return await self.call(node, inputs), tries
                try:
                    async with asyncio.timeout(spec.timeout):
                        return await self.call(node, inputs), tries
                except TimeoutError:
                    raise BlockTimeoutError(f"timed out after {spec.timeout:g}s", node.id) from None
            except PauseRequested:
                raise
            except Exception as exc:
                if tries >= tries_allowed or isinstance(spec, WorkflowBlock):
                    exc.flowtrail_tries = tries  # type: ignore[attr-defined]
                    raise
                log.info("block %s try %d failed (%s); retrying", node.id, tries, exc)
                await asyncio.sleep(wait)

    async def call(self, node: Node, inputs: Any) -> BlockResult:
        if isinstance(node.spec, WorkflowBlock):
            return BlockResult(await self.ex.run_child(node, inputs, self.path))
        return await blocks.execute(node, inputs, self.ex.services)

    async def resolve(self, node: Node, fn: Callable[[V], R], arg: V) -> R:
        """``fn(arg)`` evaluates some of ``node``'s templates: within the run's expression
        limits, and (for a leaf block) its ``timeout``. Anything heavier than plain
        references is evaluated off the event loop, so deadlines, signals and cancel act
        while it runs."""
        light = all(expressions.is_light(value) for value, _ in block_templates(node.spec))
        timeout = node.spec.timeout if node.scope is None else None  # containers: whole body
        try:
            async with asyncio.timeout(timeout):
                return await expressions.resolve(
                    lambda: fn(arg), self.ex.options.limits, light=light
                )
        except TimeoutError:
            raise BlockTimeoutError(
                f"timed out after {timeout:g}s while evaluating its templates", node.id
            ) from None

    def render_for(self, node: Node) -> blocks.Render:
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


__all__ = ["Execution", "RunOptions", "RunResult", "input_readers"]
