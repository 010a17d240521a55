"""What a worker does with one job: claim the run, rebuild it, execute it, finalize it.

The claim is a compare-and-set ``queued → running`` that takes a new lease epoch, so of
two deliveries of one job (or two jobs for one run) exactly one executes; the other
finds the run no longer ``queued`` and only logs. A run whose workflow cannot be rebuilt
here (a function module this worker cannot import) fails with that cause. When the worker
shuts down before a run ends, the run is handed back: it ends ``crashed`` with cause
``worker_shutdown``, never left ``running``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from datetime import UTC, datetime

from flowtrail.errors import RunNotFoundError, RunStateError, StoreError, WorkflowError
from flowtrail.queue.recovery import recover_crashed
from flowtrail.runner import RunHandle, Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization, RunRecord, Store, Worker

log = logging.getLogger("flowtrail.worker")

WORKER_SHUTDOWN = "worker_shutdown"
# After a hand-back, how long the engine gets to record it itself (with its trace) before
# the worker writes the hand-back without it.
WIND_DOWN_SECONDS = 5.0


def not_buildable(exc: WorkflowError) -> str:
    """The failure of a run whose workflow does not compile on this worker, pointing at
    the usual reason: code a block calls is not importable here."""
    problems = getattr(exc, "problems", None) or []
    imports = [p for p in problems if p.code == "uncallable"]
    if imports:
        where = "; ".join(
            f"block '{p.block_id}': {p.message}" if p.block_id else p.message for p in imports
        )
        return (
            f"this worker cannot import the code the workflow calls ({where}); a function "
            "block's module must be importable on the worker: install it there, or run "
            "the worker where the workflow's folder is"
        )
    return f"the submitted workflow does not compile on this worker: {exc}"


class RunExecutor:
    """Executes queued runs for one worker process; remembers the runs in flight so a
    shutdown can hand them back."""

    def __init__(self, store: Store, settings: Settings, worker: Worker) -> None:
        self.store = store
        self.worker = worker
        self.settings = settings
        self.runner = Runner(settings, store)
        self._tasks: dict[str, asyncio.Task[object]] = {}

    @property
    def in_flight(self) -> list[str]:
        return list(self._tasks)

    def stop_now(self) -> None:
        """Hand back every run in flight at once (a second signal)."""
        for task in self._tasks.values():
            task.cancel()

    async def execute(self, run_id: str, job_id: int | None) -> None:
        # Claim first: the common case costs one round trip; only a job that finds its
        # run not claimable reads the row, to say why (and to expire it if it is due).
        try:
            handle = await self.runner.claim(run_id, self.worker)
        except WorkflowError as exc:  # claimed, but it cannot be rebuilt here
            await self._fail(run_id, not_buildable(exc))
            return
        except RunStateError as exc:  # claimed, but its snapshot is gone
            await self._fail(run_id, f"the run cannot be rebuilt: {exc}")
            return
        if handle is None:
            await self._not_claimed(run_id, job_id)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks[run_id] = task
        try:
            # Shielded: the worker cancelling this job (its grace is over, or a second
            # signal) must not cancel the engine before the run is handed back.
            report = await asyncio.shield(handle.task)
        except asyncio.CancelledError:
            await self._hand_back(handle)
            await self._recover(run_id)
            raise
        finally:
            self._tasks.pop(run_id, None)
        log.info("run %s ended %s", run_id, report.status.value)
        if report.status is RunStatus.CRASHED:
            await self._recover(run_id)

    async def _recover(self, run_id: str) -> None:
        """A run that ended crashed here is retried when its workflow asks for it."""
        try:
            await recover_crashed(self.store, run_id, self.settings)
        except Exception as exc:  # logged; recover_crashed may be called again (idempotent)
            log.error("run %s crashed and its automatic recovery failed: %s", run_id, exc)

    async def _not_claimed(self, run_id: str, job_id: int | None) -> None:
        try:
            record = await self.store.get_run(run_id)
        except RunNotFoundError:
            log.warning("job %s names run %s, which does not exist: nothing to do", job_id, run_id)
            return
        if (
            record.status is RunStatus.QUEUED
            and record.expires_at is not None
            and record.expires_at.timestamp() <= time.time()
        ):
            await self._expire(record)
            return
        log.info(
            "job %s: run %s is %s, not claimable here (claimed elsewhere, cancelled or "
            "ended): nothing to do",
            job_id,
            run_id,
            record.status.value,
        )

    async def _hand_back(self, handle: RunHandle) -> None:
        """Stop the engine as ``crashed`` with cause ``worker_shutdown``; it records that
        itself, with its trace. If it cannot in time, write the hand-back without it."""
        handle.shut_down(WORKER_SHUTDOWN)
        with suppress(Exception):
            report = await asyncio.wait_for(asyncio.shield(handle.task), WIND_DOWN_SECONDS)
            if report.record_final:
                log.warning("run %s handed back: %s", handle.run_id, report.status.value)
                return
        record = await self.store.get_run(handle.run_id)
        if record.status is RunStatus.RUNNING and record.worker_id == self.worker.id:
            await self._finalize(
                record,
                RunStatus.CRASHED,
                FinalizationPath.CRASHED,
                f"the worker shut down before the run ended ({WORKER_SHUTDOWN})",
                crash_cause=WORKER_SHUTDOWN,
            )
        log.warning("run %s handed back without its engine's record", handle.run_id)

    async def _fail(self, run_id: str, reason: str) -> None:
        record = await self.store.get_run(run_id)
        await self._finalize(record, RunStatus.FAILED, FinalizationPath.FORCE_FAILED, reason)
        log.error("run %s failed before it started: %s", run_id, reason)

    async def _expire(self, record: RunRecord) -> None:
        # Matching the job with its run's state: the reconciler's part, done on delivery.
        await self._finalize(
            record,
            RunStatus.FAILED,
            FinalizationPath.EXPIRED,
            "no worker claimed the run before its time-to-live ran out",
            by=FinalizedBy.RECONCILER,
        )
        log.info("run %s expired before a worker claimed it", record.id)

    async def _finalize(
        self,
        record: RunRecord,
        status: RunStatus,
        path: FinalizationPath,
        message: str,
        *,
        by: FinalizedBy = FinalizedBy.ENGINE,
        crash_cause: str | None = None,
    ) -> None:
        """A terminal write without an engine: fenced by the row's lease epoch when this
        worker holds it, a plain compare-and-set on ``queued`` otherwise."""
        now = time.time()
        ended = datetime.fromtimestamp(now, UTC)
        try:
            await self.store.finalize(
                record.id,
                Finalization(
                    status=status,
                    path=path,
                    finalized_by=by,
                    ended_at=ended,
                    duration_ms=max(1, int((now - record.started_at.timestamp()) * 1000)),
                    error_message=message,
                    epoch=record.lease_epoch if record.status is RunStatus.RUNNING else None,
                    crash_cause=crash_cause,
                ),
            )
        except StoreError as exc:
            log.error(
                "run %s could not be finalized %s (the sweeper will): %s", record.id, status, exc
            )
