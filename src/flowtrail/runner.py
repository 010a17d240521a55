"""Runs a workflow with its durable record: engine + recorder + store, wired together.

This is the Python API's door (and the CLI's): ``Runner.start`` returns a handle that can
be cancelled; ``Runner.run`` awaits the report.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowtrail.diagnostics.finalize import Finalizer
from flowtrail.diagnostics.masking import Masker, Sealer
from flowtrail.diagnostics.recorder import Recorder
from flowtrail.engine.events import RunFinished, RunStarted
from flowtrail.engine.executor import Execution, RunOptions, RunResult, input_readers
from flowtrail.engine.observers import Observer, ObserverHub
from flowtrail.errors import InputError, RunStateError
from flowtrail.model.budget import Limits
from flowtrail.model.compile import compile_definition
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.graph import Workflow
from flowtrail.model.inputs import validate_inputs
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store.base import Store
from flowtrail.store.records import FinalizeOutcome, NewRun, RunRecord, Worker

log = logging.getLogger("flowtrail")


@dataclass(frozen=True)
class RunReport:
    run_id: str
    workflow: str
    status: RunStatus
    output: Any
    error: str | None
    error_block_id: str | None
    persisted: FinalizeOutcome | None
    waiting_blocks: tuple[str, ...] = ()
    completion_failure: str | None = None
    record_final: bool = True
    """False when the durable record could not be written: ``status`` is what the engine
    reached, and the database does not hold it (the row may still say ``running``)."""
    error_path: tuple[str, ...] = ()
    """For a failure inside child workflows: the ``workflow`` blocks leading to
    ``error_block_id``, outermost first, ending with it. Empty otherwise."""


async def stored_workflow(store: Store, record: RunRecord) -> Workflow:
    """The exact definition a run started with, rebuilt from its stored snapshot (function
    modules are looked up beside the file it came from, when the pause recorded it)."""
    document = await store.get_snapshot(record.snapshot_hash)
    if document is None:
        raise RunStateError(f"the workflow snapshot {record.snapshot_hash} is missing")
    state = record.pause_state
    source = state.get("source") if isinstance(state, dict) else None
    definition = WorkflowDefinition.model_validate(document)
    return compile_definition(definition, source=Path(source) if source else None)


def new_run_id() -> str:
    # time-ordered prefix so ids sort roughly by start, then randomness
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"


def _require_input(run_id: str, workflow: Workflow, waiting: list[str]) -> None:
    readers = input_readers(workflow, waiting)
    if readers:
        wait, reader = next(iter(readers.items()))
        raise InputError(
            f"run {run_id} is waiting for input at block '{wait}', and block '{reader}' "
            f"reads it: resume with an input (flowtrail resume {run_id} --input JSON)"
        )


class RunHandle:
    """A run in progress: await ``result()``, or ``cancel()`` it."""

    # How long a cancel waits for the database to take the request before stopping the
    # run anyway: an unreachable database must not make a run uncancellable.
    RECORD_TIMEOUT = 2.0

    def __init__(
        self,
        run_id: str,
        execution: Execution,
        task: asyncio.Task[RunReport],
        store: Store | None = None,
    ) -> None:
        self.run_id = run_id
        self.execution = execution
        self.task = task
        self.store = store
        self._cancelling: asyncio.Task[None] | None = None

    def cancel(self, by: str = "api") -> None:
        """Record the cancel request durably, then stop the run (in-flight blocks are
        abandoned). Safe to call from a signal handler; calling it again does nothing."""
        if self._cancelling is not None:
            return
        if self.store is None:
            self.execution.cancel()
            return
        self._cancelling = asyncio.ensure_future(self._record_then_cancel(self.store, by))

    async def _record_then_cancel(self, store: Store, by: str) -> None:
        try:
            await asyncio.wait_for(store.request_cancel(self.run_id, by), self.RECORD_TIMEOUT)
        except Exception as exc:
            log.warning("run %s: the cancel request could not be recorded: %s", self.run_id, exc)
        finally:
            self.execution.cancel()

    async def result(self) -> RunReport:
        return await self.task


class Runner:
    """Runs workflows with their durable record: writes the row, executes, finalizes.

    ``store=None`` runs without a record (nothing can be shown, cancelled or resumed)."""

    def __init__(self, settings: Settings | None = None, store: Store | None = None) -> None:
        self.settings = settings or Settings()
        self.store = store  # None: the durable record is off

    def _options(self, workflow: Workflow) -> RunOptions:
        s = self.settings
        deadline = s.run_timeout or workflow.definition.timeout
        return RunOptions(
            max_concurrency=s.max_concurrency,
            deadline_seconds=deadline,
            prices=s.prices,
            agent_base_url=s.agent_base_url,
            agent_api_key=s.agent_api_key,
            env=s.env,
            env_allow=s.env_allow,
            secrets=s.secrets,
            limits=Limits(s.expression_timeout_seconds, s.expression_max_chars),
        )

    async def start(
        self,
        workflow: Workflow,
        inputs: Any = None,
        *,
        trigger: str = "python",
        observers: Sequence[Observer] = (),
        run_id: str | None = None,
    ) -> RunHandle:
        """Validate the input, write the run row, and start running. Raises ``InputError``
        (nothing written) for bad input."""
        values = validate_inputs(
            workflow.definition, inputs, mask=Masker(self.settings.masked_secrets).text
        )
        options = self._options(workflow)
        run_id = run_id or new_run_id()
        started_at = time.time()
        masker = Masker(self.settings.masked_secrets)
        hub = ObserverHub(list(observers), redact=masker)
        recorder: Recorder | None = None
        if self.store is not None:
            await self.store.put_snapshot(
                workflow.definition_hash, workflow.name, workflow.document
            )
            await self.store.create_run(
                NewRun(
                    id=run_id,
                    workflow_name=workflow.name,
                    snapshot_hash=workflow.definition_hash,
                    status=RunStatus.RUNNING,
                    trigger=trigger,
                    started_at=datetime.fromtimestamp(started_at, UTC),
                    input=masker(values),
                    worker=Worker.this_process(),
                    deadline_at=datetime.fromtimestamp(started_at + options.deadline_seconds, UTC)
                    if options.deadline_seconds
                    else None,
                )
            )
            recorder = self._recorder(run_id, workflow, started_at, masker)
        execution = Execution(
            workflow,
            values,
            run_id=run_id,
            hooks=recorder,
            observers=hub,
            options=options,
        )
        task = asyncio.ensure_future(
            self._drive(execution, recorder, hub, started_at, masker, resumed=False)
        )
        return RunHandle(run_id, execution, task, self.store)

    def _recorder(
        self, run_id: str, workflow: Workflow, started_at: float, masker: Masker
    ) -> Recorder:
        assert self.store is not None
        return Recorder(
            self.store,
            run_id,
            workflow.name,
            started_at,
            masker=masker,
            cancel_poll_seconds=self.settings.cancel_poll_seconds,
            max_spans=self.settings.max_spans_in_memory,
        )

    async def run(self, workflow: Workflow, inputs: Any = None, **kwargs: Any) -> RunReport:
        handle = await self.start(workflow, inputs, **kwargs)
        return await handle.result()

    async def resume(
        self,
        workflow: Workflow,
        run_id: str,
        resume_input: Any = None,
        *,
        observers: Sequence[Observer] = (),
    ) -> RunHandle:
        """Continue a paused run from its snapshot. ``RunStateError`` if it is not paused."""
        if self.store is None:
            raise RunStateError("resuming needs the durable record (a database)")
        current = await self.store.get_run(run_id)
        if current.status is not RunStatus.PAUSED:
            raise RunStateError(f"run {run_id} is {current.status.value}, not paused")
        if not isinstance(current.pause_state, dict) or "state" not in current.pause_state:
            raise RunStateError(f"run {run_id} has no usable pause snapshot")
        if resume_input is None:  # refused before the claim: nothing on the run changes
            _require_input(run_id, workflow, current.pause_state.get("waiting") or [])
        sealer = Sealer(self.settings.named_secrets)
        sealer.unseal(current.pause_state)  # a missing secret fails before the claim
        row = await self.store.claim_resume(run_id, Worker.this_process())  # one wins
        snapshot = sealer.unseal(row.pause_state)  # the claimed row's own snapshot
        started_at = row.started_at.timestamp()
        masker = Masker(self.settings.masked_secrets)
        recorder = self._recorder(run_id, workflow, started_at, masker)
        recorder.resume_from(row)
        hub = ObserverHub(list(observers), redact=masker)
        execution = Execution(
            workflow,
            snapshot.get("inputs"),
            run_id=run_id,
            hooks=recorder,
            observers=hub,
            options=self._options(workflow),
            resume_state=snapshot["state"],
            resume_input=resume_input,
        )
        task = asyncio.ensure_future(
            self._drive(execution, recorder, hub, started_at, masker, resumed=True)
        )
        return RunHandle(run_id, execution, task, self.store)

    async def _drive(
        self,
        execution: Execution,
        recorder: Recorder | None,
        hub: ObserverHub,
        started_at: float,
        masker: Masker,
        resumed: bool,
    ) -> RunReport:
        run_id = execution.run_id
        hub.start()
        hub.publish(RunStarted(run_id, execution.workflow.name, time.time(), resumed))
        finalizer: Finalizer | None = None
        if recorder is not None:
            recorder.start_watch(execution.cancel)
            finalizer = Finalizer(
                recorder,
                run_id,
                started_at,
                masker=masker,
                budget=self.settings.trace_budget_bytes,
                retry_seconds=self.settings.finalize_retry_seconds,
                max_output_bytes=self.settings.max_output_bytes,
            )
        gave_up = False
        try:
            result = await execution.run()
        except asyncio.CancelledError:
            # Whoever awaited this run stopped waiting (its task was cancelled, e.g. by a
            # timeout): that is a failure forced from outside, not a cancel request.
            gave_up = True
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            result = RunResult(
                RunStatus.FAILED,
                error="the caller stopped waiting for the run (its task was "
                "cancelled); the run was abandoned",
            )
        except Exception as exc:  # an engine bug must still end the run explained
            log.exception("run %s: the engine failed", run_id)
            result = RunResult(RunStatus.FAILED, error=f"internal engine error: {exc!r}")
        if result.status is RunStatus.PAUSED:
            sealer = Sealer(self.settings.named_secrets)
            result = RunResult(
                RunStatus.PAUSED,
                output={"paused": True, "waiting": list(result.waiting_blocks)},
                pause_state=sealer.seal(
                    {
                        "state": result.pause_state,
                        "inputs": execution.inputs,
                        "waiting": list(result.waiting_blocks),
                        "message": "; ".join(execution.pause_messages.values()) or None,
                        "source": str(execution.workflow.source or "") or None,
                    }
                ),
                waiting_blocks=result.waiting_blocks,
            )
        persisted: FinalizeOutcome | None = None
        failure: str | None = None
        if recorder is not None and finalizer is not None:
            await recorder.stop_watch()
            persisted = await finalizer.finalize(result)
            if persisted is None and result.status is RunStatus.PAUSED:
                # The pause snapshot could not be stored, so nothing can ever resume the
                # run: it did fail, and saying so is true. Any other outcome is never
                # recorded as something else (a completed run is never stored as failed).
                persisted = await finalizer.force_fail(
                    f"the run paused but its pause state could not be stored: "
                    f"{finalizer.completion_failure}"
                )
                if persisted is not None:
                    result = RunResult(RunStatus.FAILED, error=finalizer.completion_failure)
            if persisted is None:
                await finalizer.leave_note(result.status)
            failure = finalizer.completion_failure
        status = persisted.status if persisted is not None else result.status
        hub.publish(
            RunFinished(
                run_id,
                status.value,
                time.time(),
                result.output,
                result.error,
                result.error_block_id,
            )
        )
        await hub.close(self.settings.observer_grace_seconds)
        if gave_up:
            raise asyncio.CancelledError
        return RunReport(
            run_id,
            execution.workflow.name,
            status,
            masker(result.output),
            masker(result.error) if result.error else None,
            result.error_block_id,
            persisted,
            result.waiting_blocks,
            failure,
            record_final=recorder is None or persisted is not None,
            error_path=result.error_path if len(result.error_path) > 1 else (),
        )
