"""The async executor: one run of a workflow (or of a child workflow inside a run), from
its inputs to a :class:`RunResult`. It ends on no more work, the first unhandled error
(in-flight blocks are awaited), cancellation (in-flight blocks are abandoned), a
``response`` block, a pause, or the run deadline; the scopes it runs are in ``scope.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from flowtrail.engine.blocks import BlockServices, HttpClient, Prices
from flowtrail.engine.blocks.function import shared_threads
from flowtrail.engine.blocks.wait import input_readers
from flowtrail.engine.events import Event, NullHooks, Path, RunHooks, StartEvent
from flowtrail.engine.observers import ObserverHub
from flowtrail.engine.outcome import Halt, ScopeFailed, ScopePaused
from flowtrail.engine.reuse import Reused
from flowtrail.engine.scope import ScopeRun
from flowtrail.engine.state import ScopeState, exit_output
from flowtrail.model import expressions
from flowtrail.model.budget import Limits
from flowtrail.model.graph import Workflow
from flowtrail.model.inputs import validate_inputs
from flowtrail.status import RunStatus

log = logging.getLogger("flowtrail.engine")


@dataclass(frozen=True)
class RunOptions:
    max_concurrency: int = 64
    inline_sync_seconds: float = 0.002  # see Settings.inline_sync_seconds
    deadline_seconds: float | None = None
    prices: Prices = field(default_factory=Prices)
    agent_base_url: str | None = None
    agent_api_key: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # a workflow reads what it declares
    env_allow: tuple[str, ...] | None = None  # FLOWTRAIL_ENV_ALLOW patterns; None: no limit
    secrets: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)  # what evaluating templates may spend
    trace_context: bool = False  # http blocks send `traceparent` (OpenTelemetry export is on)


@dataclass(frozen=True)
class RunResult:
    status: RunStatus  # completed, failed, cancelled or paused
    output: Any = None
    error: str | None = None
    error_block_id: str | None = None
    pause_state: dict[str, Any] | None = None
    waiting_blocks: tuple[str, ...] = ()
    # the `workflow` blocks leading to error_block_id through child workflows, then it
    error_path: tuple[str, ...] = ()


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
        reuse: Mapping[tuple[str, str], Reused] | None = None,
        attempt: int = 1,
        first_run_id: str | None = None,
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.reuse = reuse or {}
        """A retry's completed steps of the run it retries, by (position, block id): a
        block found here is not run again, its output and handle are taken as they are."""
        self.attempt = attempt
        self.first_run_id = first_run_id or run_id
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
            "env": expressions.Environment.of(
                workflow.definition.env, self.options.env, self.options.env_allow
            ),
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
            inline_sync_seconds=self.options.inline_sync_seconds,
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
                await self.services.http.close_quietly()

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

    def child(self, workflow: Workflow, inputs: Any, path: Path) -> Execution:
        """A child workflow's run inside this one: same run, hooks, limits and client."""
        child = Execution(
            workflow,
            inputs,
            run_id=self.run_id,
            hooks=self.hooks,
            observers=self.hub,
            options=self.options,
            path=path,
            depth=self.depth + 1,
            threads=self.services.threads,
            slots=self.slots,
            reuse=self.reuse,  # positions are the run's: a child's steps are in it too
            attempt=self.attempt,
            first_run_id=self.first_run_id,
        )
        child.services.http = self.services.http  # the run's one client
        return child


def _waiting(state: ScopeState) -> tuple[str, ...]:
    found = list(state.waiting)
    for cstate in state.containers.values():
        for sub in [cstate.get("current"), *cstate.get("branches", {}).values()]:
            if sub:
                found.extend(_waiting(ScopeState.from_json(sub)))
    return tuple(sorted(set(found)))


__all__ = ["Execution", "RunOptions", "RunResult", "input_readers"]
