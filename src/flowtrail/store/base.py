"""The one narrow interface to the database. Two real backends implement it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from flowtrail.status import RunStatus
from flowtrail.store.records import (
    CancelOutcome,
    Finalization,
    FinalizeOutcome,
    ForcedEnd,
    LeaseRenewal,
    NewRun,
    ProgressWrite,
    PruneBatch,
    QueueScan,
    QueueState,
    RunFilter,
    RunPage,
    RunQuery,
    RunRecord,
    StepRecord,
    SweepScan,
    Worker,
)


class Store(Protocol):
    """Async store of runs. Implementations: ``SqliteStore``, ``PostgresStore``.

    Every driver error leaves this interface as a ``StoreError`` (``raise ... from exc``).
    """

    url: str
    round_trips: int
    """Database round trips made so far (benchmarks and tests read it)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        """``open()``; ``async with store:`` closes on the way out."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the versions applied now."""
        ...

    async def schema_version(self) -> str | None: ...

    async def put_snapshot(self, definition_hash: str, name: str, definition: Any) -> None:
        """Store a workflow definition once per hash (a no-op when it exists)."""
        ...

    async def get_snapshot(self, definition_hash: str) -> Any | None: ...

    async def create_run(self, run: NewRun) -> None: ...

    async def write_progress(self, run_id: str, write: ProgressWrite) -> bool:
        """One round trip, applied only while the run is ``running`` (under ``epoch``):
        the markers and the steps together. Returns True when the engine should stop: a
        cancellation was requested, or the run is no longer running (another writer
        ended it)."""
        ...

    def write_progress_now(self, run_id: str, write: ProgressWrite) -> bool | None:
        """The same write, done before returning (no await), where the backend can do it
        cheaply now; ``None`` when it cannot (nothing was written): await
        :meth:`write_progress` instead."""
        ...

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps (block executions and containers), in the order they started."""
        ...

    async def create_retry(self, run: NewRun) -> None:
        """Create ``run``, a retry of ``run.retry_of``, and name it on the old row
        (``retried_by``), atomically. ``RunStateError`` when the old run is not crashed,
        failed or cancelled, or was retried already; ``RunNotFoundError`` when unknown."""
        ...

    async def finalize(self, run_id: str, fin: Finalization) -> FinalizeOutcome:
        """Compare-and-set through ``status.TRANSITIONS``; a loser becomes a note."""
        ...

    async def add_note(self, run_id: str, note: Mapping[str, Any]) -> RunStatus:
        """Append a note (time-stamped) to the run's ``notes`` without touching its status;
        return the status it holds."""
        ...

    async def request_cancel(self, run_id: str, by: str) -> CancelOutcome: ...

    async def cancel_requested(self, run_id: str) -> bool: ...

    async def claim(self, run_id: str, worker: Worker, lease_seconds: float) -> RunRecord | None:
        """CAS queued -> running for ``worker`` under a new lease epoch (the returned row's
        ``lease_epoch``). ``None`` when the run is not queued any more (claimed, cancelled,
        ended), was asked to cancel, or is past its time-to-live."""
        ...

    async def set_job_id(self, run_id: str, job_id: int) -> None:
        """Record the queue job that executes a queued run (``RunNotFoundError`` for an
        unknown id)."""
        ...

    async def renew_lease(
        self,
        run_id: str,
        epoch: int,
        lease_seconds: float,
        loop_lag_ms: int | None = None,
        loop_blocked_since: datetime | None = None,
    ) -> LeaseRenewal:
        """Extend the lease held under ``epoch`` and read the cancel flag, in one
        statement; ``held`` is False once the lease was taken away."""
        ...

    async def claim_resume(
        self, run_id: str, worker: Worker | None = None, lease_seconds: float = 60.0
    ) -> RunRecord:
        """CAS paused -> running under a new lease epoch and return the row (with
        ``pause_state``); ``worker`` (the resuming process) becomes the run's worker."""
        ...

    async def sweep_scan(
        self, now: datetime, cancel_before: datetime, limit: int = 500
    ) -> SweepScan:
        """The non-terminal runs a sweep pass acts on (index scans only): running with the
        lease expired before ``now``, running with a cancel requested before
        ``cancel_before``, queued past their time-to-live; at most ``limit`` of each."""
        ...

    async def end_run(self, run_id: str, end: ForcedEnd) -> bool:
        """End a run from outside its engine, compare-and-set on the row as seen (see
        ``ForcedEnd``); False when the row had moved on (nothing was written)."""
        ...

    async def reconcile_scan(
        self, now: datetime, stalled_before: datetime, ended_before: datetime, limit: int = 500
    ) -> QueueScan | None:
        """Where the job queue (Procrastinate, on PostgreSQL) and the runs disagree;
        ``None`` when the database has no job queue. A worker counts as stalled when its
        last heartbeat is before ``stalled_before``; a job still running counts once its
        run ended before ``ended_before``."""
        ...

    async def cancel_job(self, job_id: int) -> bool:
        """Cancel a waiting queue job, or ask a running one to abort; False when it was
        neither any more."""
        ...

    def sweeper_lock(self) -> AbstractAsyncContextManager[bool]:
        """``async with store.sweeper_lock() as held:``; only one holder at a time
        across processes. Never waits: ``held`` is False when another sweeper has it."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """Raise ``RunNotFoundError`` for an unknown id."""
        ...

    async def run_ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of runs that start with ``prefix``, in id order, at most ``limit``."""
        ...

    async def run_id_neighbours(self, run_id: str) -> tuple[str | None, str | None]:
        """The ids just before and after ``run_id`` in id order (None at either end)."""
        ...

    async def list_runs(self, filt: RunFilter) -> list[RunRecord]:
        """Whole rows (trace included), newest first: for callers that need them all;
        a list to show uses ``list_summaries``."""
        ...

    async def list_summaries(self, query: RunQuery) -> RunPage:
        """One page of lean rows, newest first, keyset-paged (see ``RunQuery``,
        ``RunPage``): read from indexes, never the trace, input, output or notes."""
        ...

    async def queue_state(self, run: RunRecord, live_seconds: float) -> QueueState:
        """For a queued ``run``: the runs of its queue still waiting that were queued
        before it, the queue workers that sent a heartbeat in the last ``live_seconds``
        (``None``: no queue in this database), and the queue job named by its
        ``job_id``."""
        ...

    async def running_steps(self, run_id: str, limit: int = 20) -> list[StepRecord]:
        """The run's steps that are running now, oldest first, at most ``limit``."""
        ...

    async def block_durations(
        self, workflow_name: str, block_id: str, *, exclude: str, runs: int = 20
    ) -> list[float]:
        """Seconds ``block_id`` took (each completed execution) in the latest ``runs``
        completed runs of ``workflow_name``, leaving out run ``exclude``."""
        ...

    async def prune_batch(
        self,
        before: datetime,
        statuses: Iterable[RunStatus],
        after: tuple[datetime, str] | None,
        limit: int,
        *,
        dry_run: bool,
        now: datetime,
    ) -> PruneBatch:
        """Retention, one batch in one short transaction: the next ``limit`` runs in
        ``statuses`` (ended ones only) started and ended before ``before``, oldest first
        after the keyset ``after``, not pruned yet, lose their trace, output, pause
        snapshot and steps; their summary columns stay and ``pruned_at`` becomes ``now``.
        With ``dry_run`` nothing is written and the batch says what would go."""
        ...

    async def database_size(self) -> int:
        """Bytes the runs take (SQLite: the file's pages; PostgreSQL: the run and step
        tables with their indexes)."""
        ...

    async def reclaim_space(self) -> None:
        """Give the space freed by a prune back (SQLite ``VACUUM``, PostgreSQL
        ``VACUUM``)."""
        ...
