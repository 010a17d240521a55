"""Runs a workflow with its durable record: engine + recorder + store, wired together.

This is the Python API's door (and the CLI's): ``Runner.start`` returns a handle that can
be cancelled; ``Runner.run`` awaits the report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowtrail.diagnostics.finalize import Finalizer
from flowtrail.diagnostics.masking import Masker, Sealer
from flowtrail.diagnostics.recorder import Recorder
from flowtrail.engine.events import RunFinished, RunStarted, containers_in
from flowtrail.engine.executor import Execution, RunOptions, RunResult, input_readers
from flowtrail.engine.observers import Observer, ObserverHub
from flowtrail.engine.reuse import Reused
from flowtrail.errors import InputError, RunStateError
from flowtrail.liveness.heartbeat import Heartbeat
from flowtrail.liveness.process import this_worker
from flowtrail.model.budget import Limits
from flowtrail.model.graph import Workflow
from flowtrail.model.inputs import validate_inputs
from flowtrail.model.rerun import NOTHING, Rerun, rerun_from
from flowtrail.model.snapshot import workflow_from_snapshot
from flowtrail.otel import RunInfo
from flowtrail.otel import exporter as otel_exporter
from flowtrail.settings import Settings
from flowtrail.status import RETRYABLE, RunStatus
from flowtrail.store.base import Store
from flowtrail.store.common import not_retryable
from flowtrail.store.records import FinalizeOutcome, NewRun, RunRecord, Worker

if TYPE_CHECKING:
    from flowtrail.otel.export import Exporter

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
    """The exact definition a run started with, child workflows included, rebuilt from its
    stored snapshot without reading any workflow file (function modules are looked up
    beside the file it came from)."""
    document = await store.get_snapshot(record.snapshot_hash)
    if document is None:
        raise RunStateError(f"the workflow snapshot {record.snapshot_hash} is missing")
    state = record.pause_state
    source = state.get("source") if isinstance(state, dict) else None  # older snapshots
    return workflow_from_snapshot(document, Path(source) if source else None)


async def store_snapshot(store: Store, workflow: Workflow) -> str:
    """Store the run's self-contained definition snapshot; return its hash."""
    snapshot, digest = workflow.snapshot
    await store.put_snapshot(digest, workflow.name, snapshot)
    return digest


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

    task: asyncio.Task[RunReport]

    def __init__(self, run_id: str, execution: Execution, store: Store | None = None) -> None:
        self.run_id = run_id
        self.execution = execution
        self.store = store
        self.crash_cause: str | None = None
        self.fenced = False
        """True once the lease was taken away: the run is no longer this process's."""
        self._cancelling: asyncio.Task[None] | None = None

    def lease_lost(self) -> None:
        """The heartbeat found the lease taken away (swept, claimed again): stop at once.
        Nothing this engine writes from now on is accepted; its result becomes a note."""
        self.fenced = True
        self.execution.cancel()

    def shut_down(self, cause: str = "worker_shutdown") -> None:
        """This process gives the run up (a worker shutting down past its grace): the run
        stops and is recorded ``crashed`` with ``cause``, never left ``running``."""
        self.crash_cause = cause
        self.execution.cancel()

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

    BUILT_CACHE = 64
    """Workflows rebuilt from snapshots that ``claim`` keeps, newest used last: a worker
    running the same workflow again does not fetch and compile it again (a snapshot is
    immutable: its hash is its content)."""

    def __init__(self, settings: Settings | None = None, store: Store | None = None) -> None:
        self.settings = settings or Settings()
        self.store = store  # None: the durable record is off
        self._built: OrderedDict[str, Workflow] = OrderedDict()

    def _options(self, workflow: Workflow) -> RunOptions:
        s = self.settings
        deadline = s.run_timeout or workflow.definition.timeout
        return RunOptions(
            max_concurrency=s.max_concurrency,
            inline_sync_seconds=s.inline_sync_seconds,
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
        """Validate the input, write the run row (claimed by this process: lease epoch 1),
        and start running. Raises ``InputError`` (nothing written) for bad input."""
        values = self._validated(workflow, inputs)
        options = self._options(workflow)
        run_id = run_id or new_run_id()
        started_at = time.time()
        if self.store is None:
            return self._launch(
                workflow, values, run_id, started_at, None, observers, trigger=trigger
            )
        await self._write_row(
            workflow,
            values,
            run_id,
            trigger,
            status=RunStatus.RUNNING,
            started_at=started_at,
            worker=this_worker(),
            lease_seconds=self.settings.lease_seconds,
            deadline_seconds=options.deadline_seconds,
        )
        return self._launch(workflow, values, run_id, started_at, 1, observers, trigger=trigger)

    async def enqueue(
        self,
        workflow: Workflow,
        inputs: Any = None,
        *,
        trigger: str = "queue",
        queue_name: str = "flowtrail",
        expires_in: float | None = None,
        run_id: str | None = None,
        retry_of: str | None = None,
        attempt: int = 1,
    ) -> RunRecord:
        """Validate the input and write the run row ``queued`` (with its definition
        snapshot), for a worker to claim; it expires ``expires_in`` seconds from now if
        none has. Returns the row. Deferring the queue job is the caller's part."""
        if self.store is None:
            raise RunStateError("queueing a run needs the durable record (a database)")
        values = self._validated(workflow, inputs)
        run_id = run_id or new_run_id()
        now = time.time()
        await self._write_row(
            workflow,
            values,
            run_id,
            trigger,
            status=RunStatus.QUEUED,
            started_at=now,
            queue_name=queue_name,
            expires_at=(
                datetime.fromtimestamp(now + expires_in, UTC) if expires_in is not None else None
            ),
            retry_of=retry_of,
            attempt=attempt,
        )
        return await self.store.get_run(run_id)

    async def claim(
        self,
        run_id: str,
        worker: Worker | None = None,
        *,
        observers: Sequence[Observer] = (),
    ) -> RunHandle | None:
        """Claim a queued run for this process (compare-and-set queued -> running under a
        new lease epoch) and start executing its stored definition. ``None`` when it is
        not queued any more (claimed by someone else, cancelled, expired, ended)."""
        if self.store is None:
            raise RunStateError("claiming a run needs the durable record (a database)")
        record = await self.store.claim(
            run_id, worker or this_worker(), self.settings.lease_seconds
        )
        if record is None:
            return None
        workflow = self._built.get(record.snapshot_hash)
        if workflow is None:
            workflow = await stored_workflow(self.store, record)
            self._built[record.snapshot_hash] = workflow
            if len(self._built) > self.BUILT_CACHE:
                self._built.popitem(last=False)
        else:
            self._built.move_to_end(record.snapshot_hash)
        reuse, first = None, None
        if record.retry_of is not None:  # a queued retry (automatic recovery)
            since = record.retry_from_block
            again = rerun_from(workflow, since) if since is not None else NOTHING
            reuse = await self._reusable(record.retry_of, again)
            first = await self._first_run_id(record)
        return self._launch(
            workflow,
            record.input,
            run_id,
            record.started_at.timestamp(),
            record.lease_epoch,
            observers,
            reuse=reuse,
            attempt=record.attempt,
            first_run_id=first,
            trigger=record.trigger,
            retry_of=record.retry_of,
        )

    async def retry(
        self,
        run_id: str,
        *,
        from_block: str | None = None,
        trigger: str = "retry",
        observers: Sequence[Observer] = (),
    ) -> RunHandle:
        """Start a new run of a crashed, failed or cancelled run's stored definition and
        input, linked both ways (``retry_of`` / ``retried_by``, ``attempt`` + 1). Blocks
        that completed in it are not run again: their outputs are reused (a truncated
        output is not: that block runs again). With ``from_block``, that block and
        everything downstream of it run again. ``RunStateError`` for a run that cannot be
        retried, ``InputError`` for an unknown ``from_block``."""
        if self.store is None:
            raise RunStateError("retrying a run needs the durable record (a database)")
        old = await self.store.get_run(run_id)
        if old.status not in RETRYABLE or old.retried_by is not None:
            raise RunStateError(not_retryable(old))
        workflow = await stored_workflow(self.store, old)
        again = rerun_from(workflow, from_block) if from_block is not None else NOTHING
        # Read (and unsealed) before anything is written: a secret that is gone now fails
        # the retry, not the new run.
        reuse = await self._reusable(old.id, again)
        values = self._validated(workflow, old.input)
        options = self._options(workflow)
        new_id = new_run_id()
        started_at = time.time()
        await self.store.create_retry(
            self._new_run(
                workflow,
                values,
                new_id,
                trigger,
                snapshot_hash=old.snapshot_hash,
                status=RunStatus.RUNNING,
                started_at=started_at,
                worker=this_worker(),
                lease_seconds=self.settings.lease_seconds,
                deadline_seconds=options.deadline_seconds,
                retry_of=old.id,
                attempt=old.attempt + 1,
                retry_from_block=from_block,
            )
        )
        return self._launch(
            workflow,
            values,
            new_id,
            started_at,
            1,
            observers,
            reuse=reuse,
            attempt=old.attempt + 1,
            first_run_id=await self._first_run_id(old),
            trigger=trigger,
            retry_of=old.id,
        )

    async def requeue(
        self, old: RunRecord, *, queue_name: str, expires_in: float, trigger: str = "recovery"
    ) -> RunRecord:
        """Queue a retry of ``old`` (a crashed, failed or cancelled run) for a worker:
        linked both ways, ``attempt`` + 1; the worker that claims it reuses what
        completed (see ``claim``). Deferring its queue job is the caller's part."""
        if self.store is None:
            raise RunStateError("queueing a run needs the durable record (a database)")
        workflow = await stored_workflow(self.store, old)
        values = self._validated(workflow, old.input)
        run_id, now = new_run_id(), time.time()
        await self.store.create_retry(
            self._new_run(
                workflow,
                values,
                run_id,
                trigger,
                snapshot_hash=old.snapshot_hash,
                status=RunStatus.QUEUED,
                started_at=now,
                queue_name=queue_name,
                expires_at=datetime.fromtimestamp(now + expires_in, UTC),
                retry_of=old.id,
                attempt=old.attempt + 1,
            )
        )
        return await self.store.get_run(run_id)

    async def _reusable(self, run_id: str, again: Rerun) -> dict[tuple[str, str], Reused]:
        """The completed steps of ``run_id`` a retry takes over: not truncated, and not
        among what ``again`` runs again; outputs unsealed."""
        assert self.store is not None
        sealer = Sealer(self.settings.named_secrets)
        reuse: dict[tuple[str, str], Reused] = {}
        for step in await self.store.list_steps(run_id):
            if step.status != "completed" or step.output_truncated:
                continue
            if again.covers(step.block_id, containers_in(step.position)):
                continue
            reuse[(step.position, step.block_id)] = Reused(sealer.unseal(step.output), step.handle)
        return reuse

    async def _first_run_id(self, record: RunRecord) -> str:
        """The run that began the retry chain ``record`` belongs to."""
        assert self.store is not None
        while record.retry_of is not None:
            record = await self.store.get_run(record.retry_of)
        return record.id

    def _validated(self, workflow: Workflow, inputs: Any) -> Any:
        return validate_inputs(
            workflow.definition, inputs, mask=Masker(self.settings.masked_secrets).text
        )

    async def _write_row(
        self,
        workflow: Workflow,
        values: Any,
        run_id: str,
        trigger: str,
        *,
        status: RunStatus,
        started_at: float,
        deadline_seconds: float | None = None,
        **fields: Any,
    ) -> None:
        assert self.store is not None
        digest = await store_snapshot(self.store, workflow)
        await self.store.create_run(
            self._new_run(
                workflow,
                values,
                run_id,
                trigger,
                snapshot_hash=digest,
                status=status,
                started_at=started_at,
                deadline_seconds=deadline_seconds,
                **fields,
            )
        )

    def _new_run(
        self,
        workflow: Workflow,
        values: Any,
        run_id: str,
        trigger: str,
        *,
        snapshot_hash: str,
        status: RunStatus,
        started_at: float,
        deadline_seconds: float | None = None,
        **fields: Any,
    ) -> NewRun:
        return NewRun(
            id=run_id,
            workflow_name=workflow.name,
            snapshot_hash=snapshot_hash,
            status=status,
            trigger=trigger,
            started_at=datetime.fromtimestamp(started_at, UTC),
            input=Masker(self.settings.masked_secrets)(values),
            deadline_at=datetime.fromtimestamp(started_at + deadline_seconds, UTC)
            if deadline_seconds
            else None,
            **fields,
        )

    def _launch(
        self,
        workflow: Workflow,
        values: Any,
        run_id: str,
        started_at: float,
        epoch: int | None,
        observers: Sequence[Observer],
        *,
        record: RunRecord | None = None,
        resume_state: dict[str, Any] | None = None,
        resume_input: Any = None,
        reuse: dict[tuple[str, str], Reused] | None = None,
        attempt: int = 1,
        first_run_id: str | None = None,
        trigger: str | None = None,
        retry_of: str | None = None,
    ) -> RunHandle:
        """Start executing a run this process holds (under ``epoch``): the engine, its
        recorder (when there is a store) and the task that drives it to its end."""
        masker = Masker(self.settings.masked_secrets)
        hub = ObserverHub(list(observers), redact=masker)
        recorder: Recorder | None = None
        options = self._options(workflow)
        telemetry: _Telemetry | None = None
        if self.store is not None:
            recorder = self._recorder(run_id, workflow, started_at, masker, epoch)
            if record is not None:
                recorder.resume_from(record)
            exporter = otel_exporter(self.settings.otel, self.settings.env)
            if exporter is not None:  # its trace is exported: http blocks join it
                options = dataclasses.replace(options, trace_context=True)
                run_attempt = record.attempt if record is not None else attempt
                telemetry = _Telemetry(exporter, trigger, retry_of, run_attempt)
        execution = Execution(
            workflow,
            values,
            run_id=run_id,
            hooks=recorder,
            observers=hub,
            options=options,
            resume_state=resume_state,
            resume_input=resume_input,
            reuse=reuse,
            attempt=attempt,
            first_run_id=first_run_id,
        )
        handle = RunHandle(run_id, execution, self.store)
        handle.task = asyncio.ensure_future(
            self._drive(handle, recorder, hub, started_at, masker, record is not None, telemetry)
        )
        return handle

    def _recorder(
        self, run_id: str, workflow: Workflow, started_at: float, masker: Masker, epoch: int | None
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
            epoch=epoch,
            sealer=Sealer(self.settings.named_secrets),
            max_step_output_bytes=self.settings.max_step_output_bytes,
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
        row = await self.store.claim_resume(  # one wins
            run_id, this_worker(), self.settings.lease_seconds
        )
        snapshot = sealer.unseal(row.pause_state)  # the claimed row's own snapshot
        return self._launch(
            workflow,
            snapshot.get("inputs"),
            run_id,
            row.started_at.timestamp(),
            row.lease_epoch,
            observers,
            record=row,
            resume_state=snapshot["state"],
            resume_input=resume_input,
            trigger=row.trigger,
            retry_of=row.retry_of,
        )

    def _heartbeat(self, handle: RunHandle, recorder: Recorder) -> Heartbeat | None:
        """The lease keeper for a run this process holds; none for a database only this
        connection can see (SQLite ``:memory:``) or a row without a lease."""
        url = getattr(self.store, "url", "")
        if recorder.epoch is None or not url or url.endswith(":memory:"):
            return None
        heartbeat = Heartbeat(
            url,
            handle.run_id,
            recorder.epoch,
            self.settings.lease_seconds,
            asyncio.get_running_loop(),
            on_cancel=recorder.cancel_requested,
            on_lost=handle.lease_lost,
        )
        heartbeat.start()
        return heartbeat

    async def _drive(
        self,
        handle: RunHandle,
        recorder: Recorder | None,
        hub: ObserverHub,
        started_at: float,
        masker: Masker,
        resumed: bool,
        telemetry: _Telemetry | None = None,
    ) -> RunReport:
        execution = handle.execution
        run_id = execution.run_id
        hub.start()
        hub.publish(RunStarted(run_id, execution.workflow.name, time.time(), resumed))
        finalizer: Finalizer | None = None
        heartbeat: Heartbeat | None = None
        if recorder is not None:
            recorder.start_watch(execution.cancel)
            heartbeat = self._heartbeat(handle, recorder)
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
        if handle.crash_cause is not None and result.status is RunStatus.CANCELLED:
            # This process gave the run up (a worker shutting down): it did not end by
            # itself, and no cancel was asked for; say so, with the cause.
            result = RunResult(
                RunStatus.CRASHED,
                error=f"the run was stopped by its worker ({handle.crash_cause})",
            )
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
            if heartbeat is not None:
                heartbeat.stop()
            finalizer.crash_cause = handle.crash_cause
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
        if telemetry is not None and recorder is not None:
            telemetry.export(handle, recorder, result, persisted, status, failure, masker)
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


@dataclass(frozen=True)
class _Telemetry:
    """What exporting a run's trace needs beyond its recorder (``flowtrail.otel``)."""

    exporter: Exporter
    trigger: str | None
    retry_of: str | None
    attempt: int

    def export(
        self,
        handle: RunHandle,
        recorder: Recorder,
        result: RunResult,
        persisted: FinalizeOutcome | None,
        status: RunStatus,
        failure: str | None,
        masker: Masker,
    ) -> None:
        """Hand the finalized segment (the whole run, or up to its pause) to the exporter.
        Never raises: telemetry is never allowed to change a run's outcome."""
        try:
            spans = recorder.spans
            ended = spans.root.get("_t1")
            ours = persisted is None or persisted.persisted  # else another writer's status
            error = result.error if ours and result.error else None
            started, completed = recorder.markers.started, recorder.markers.completed
            info = RunInfo(
                run_id=handle.run_id,
                workflow=handle.execution.workflow.name,
                status=status.value,
                started_at=float(spans.root.get("_t0") or time.time()),
                ended_at=float(ended) if isinstance(ended, int | float) else time.time(),
                path=persisted.path.value if persisted is not None and persisted.path else None,
                finalized_by="engine" if persisted is not None and persisted.persisted else None,
                trigger=self.trigger,
                attempt=self.attempt,
                retry_of=self.retry_of,
                cost_total=recorder.usage.cost_total,
                tokens_prompt=recorder.usage.tokens_prompt,
                tokens_completion=recorder.usage.tokens_completion,
                models=tuple(sorted(recorder.usage.models)),
                error_message=masker(error) if error else None,
                error_block_id=result.error_block_id if ours else None,
                completion_failure=failure,
                crash_cause=handle.crash_cause if status is RunStatus.CRASHED else None,
                last_started_block=started.block_id if started else None,
                last_completed_block=completed.block_id if completed else None,
                span_count=spans.count,
                spans_elided=spans.elided,
                epoch=recorder.epoch or 0,
            )
            self.exporter.trace(info, spans.root, paused=status is RunStatus.PAUSED)
        except Exception:
            log.exception("run %s: its trace could not be handed to the exporter", handle.run_id)
