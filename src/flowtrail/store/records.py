"""Plain values that cross the store boundary. The store knows nothing of the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus


@dataclass(frozen=True, slots=True)
class StartedMarker:
    block_id: str
    block_name: str
    block_type: str
    started_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "block_id": self.block_id,
            "block_name": self.block_name,
            "block_type": self.block_type,
            "started_at": self.started_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class CompletedMarker:
    block_id: str
    block_name: str
    block_type: str
    ended_at: datetime
    success: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "block_id": self.block_id,
            "block_name": self.block_name,
            "block_type": self.block_type,
            "ended_at": self.ended_at.isoformat(),
            "success": self.success,
        }


@dataclass(frozen=True, slots=True)
class Worker:
    """The process executing a run: its host name and pid, the worker's id (a queue
    worker's name, or ``host:pid`` for an in-process run) and when the process started
    (so that a reused pid is not mistaken for it). This process's own is
    ``liveness.process.this_worker()``."""

    host: str
    pid: int
    id: str | None = None
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewRun:
    """The row written before the first block runs."""

    id: str
    workflow_name: str
    snapshot_hash: str
    status: RunStatus
    trigger: str
    started_at: datetime
    input: Any
    deadline_at: datetime | None = None
    parent_run_id: str | None = None
    worker: Worker | None = None
    lease_seconds: float | None = None
    """For a run created ``running``: the first lease (epoch 1) its heartbeat renews."""
    queue_name: str | None = None
    expires_at: datetime | None = None
    """For a run created ``queued``: when it expires if no worker has claimed it."""
    retry_of: str | None = None
    attempt: int = 1
    retry_from_block: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressWrite:
    """One group-committed progress update. ``None`` fields are left as they are.

    Markers are folded monotonically by the store: an older timestamp never replaces a
    newer one, an equal one replaces. ``cost_total`` never lowers the stored value.
    """

    started: StartedMarker | None = None
    completed: CompletedMarker | None = None
    cost_total: float | None = None
    marker_write_failures: int | None = None
    epoch: int | None = None
    """The lease epoch of the writing engine: the write is refused once the run was
    claimed again (or ended). ``None``: not fenced (rows from before leases)."""
    steps: tuple[StepWrite, ...] = ()
    """Block executions that started or ended since the last write."""


@dataclass(frozen=True, slots=True)
class StepWrite:
    """One block execution at one position, as the progress write upserts it."""

    position: str
    block_id: str
    block_type: str
    status: str  # running | completed | failed
    started_at: datetime
    ended_at: datetime | None = None
    tries: int = 0
    cost: float | None = None
    handle: str | None = None
    output: Any = None
    output_truncated: bool = False
    error: str | None = None
    iterations_total: int | None = None
    """A loop's or parallel's step: its iterations or branches (``None`` when not known
    in advance: a ``while`` loop), and how many of them ended so far."""
    iterations_done: int | None = None
    output_json: str | None = None
    """``output`` already encoded as compact JSON (by the recorder, which had to encode
    it to judge its size), so the write does not encode it again."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A step as read back: a ``StepWrite`` plus the run and epoch that wrote it."""

    run_id: str
    epoch: int
    position: str
    block_id: str
    block_type: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    tries: int
    cost: float | None
    handle: str | None
    output: Any
    output_truncated: bool
    error: str | None
    iterations_total: int | None = None
    iterations_done: int | None = None


@dataclass(frozen=True, slots=True)
class QueueJob:
    """The queue job that is to execute a queued run, as Procrastinate holds it:
    ``status`` is Procrastinate's (``todo``, ``doing``, ``failed``…), or ``absent`` when
    the run names a job that is not in the queue any more."""

    id: int
    status: str
    scheduled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueState:
    """Where a queued run stands: how many runs of its queue were queued before it and
    are still waiting, how many queue workers are alive (``None`` when this database
    has no queue: SQLite, or Procrastinate's schema was never applied), and its job."""

    ahead: int
    live_workers: int | None
    job: QueueJob | None = None


@dataclass(frozen=True, slots=True)
class LeaseRenewal:
    """What a heartbeat learned: whether the lease is still held (the run is running
    under this epoch) and whether a cancel was requested."""

    held: bool
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class Finalization:
    """A terminal (or pause) write. Goes through the transition table as a CAS."""

    status: RunStatus
    path: FinalizationPath
    finalized_by: FinalizedBy
    ended_at: datetime | None
    duration_ms: int | None
    output: Any = None
    error_message: str | None = None
    error_block_id: str | None = None
    completion_failure: str | None = None
    execution_data: Any = None
    has_trace_spans: bool = False
    trace_span_count: int = 0
    cost_total: float | None = None
    tokens_prompt: int = 0
    tokens_completion: int = 0
    tokens_total: int = 0
    models: list[str] = field(default_factory=list)
    started: StartedMarker | None = None
    completed: CompletedMarker | None = None
    marker_write_failures: int | None = None
    pause_state: Any = None
    level: str | None = None
    epoch: int | None = None
    """The writing engine's lease epoch (see ``ProgressWrite.epoch``); the sweeper and
    the API write unfenced (``None``) and are guarded by their own conditions."""
    crash_cause: str | None = None
    steps: tuple[StepWrite, ...] = ()
    """Steps not written yet: they ride on this write, applied only if it wins."""


@dataclass(frozen=True, slots=True)
class FinalizeOutcome:
    """What a finalization actually did.

    ``persisted`` is False when another writer got there first (for example the run was
    already cancelled); ``status`` is then the status that won, and the losing result was
    kept as a note on the run.
    """

    persisted: bool
    status: RunStatus
    path: FinalizationPath | None


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """``status`` after the request; ``finalized`` when the request itself ended the run
    (a queued or paused run has no engine to notice it)."""

    status: RunStatus
    requested: bool
    finalized: bool
    worker: Worker | None = None
    """Who executes the run, as recorded on the row (``None`` before migration 0002)."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as read back from the store: every column of ``workflow_execution_logs``."""

    id: str
    workflow_name: str
    snapshot_hash: str
    status: RunStatus
    level: str
    trigger: str
    started_at: datetime
    ended_at: datetime | None
    duration_ms: int | None
    deadline_at: datetime | None
    last_started_block: StartedMarker | None
    last_completed_block: CompletedMarker | None
    finalization_path: FinalizationPath | None
    finalized_by: FinalizedBy | None
    completion_failure: str | None
    error_message: str | None
    error_block_id: str | None
    has_trace_spans: bool
    trace_span_count: int
    cost_total: float
    tokens_prompt: int
    tokens_completion: int
    tokens_total: int
    models: list[str]
    execution_data: Any
    output: Any
    input: Any
    marker_write_failures: int
    cancel_requested_at: datetime | None
    pause_state: Any
    notes: list[dict[str, Any]]
    parent_run_id: str | None
    updated_at: datetime | None
    cancel_requested_by: str | None = None
    worker_host: str | None = None
    worker_pid: int | None = None
    claimed_at: datetime | None = None
    lease_epoch: int = 0
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    worker_id: str | None = None
    worker_started_at: datetime | None = None
    loop_lag_ms: int | None = None
    loop_blocked_since: datetime | None = None
    queue_name: str | None = None
    job_id: int | None = None
    queued_at: datetime | None = None
    expires_at: datetime | None = None
    crash_cause: str | None = None
    retry_of: str | None = None
    retried_by: str | None = None
    retry_from_block: str | None = None
    attempt: int = 1
    pruned_at: datetime | None = None
    """When ``flowtrail prune`` dropped this run's trace, steps and output (the summary
    columns are kept); ``None`` while they are still stored."""


@dataclass(frozen=True, slots=True)
class SweepScan:
    """What one sweep pass found to act on, each list from one index scan (at most
    ``limit`` each, oldest first): running runs whose lease expired, running runs whose
    cancel request is older than the grace, queued runs past their time-to-live."""

    lease_expired: tuple[RunRecord, ...] = ()
    cancel_overdue: tuple[RunRecord, ...] = ()
    queue_expired: tuple[RunRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ForcedEnd:
    """A terminal write from outside the engine (the sweeper, the reconciler, the API):
    a compare-and-set on the row *as it was seen*. It is applied only while the run is
    still in ``source`` under lease ``epoch`` with the start marker seen
    (``seen_started_at``) and every ``*_before`` condition given still holds, so a lease
    renewed, a run claimed again or an engine that moved on in the meantime is left
    alone. The note (who, why, evidence) is appended by the same statement."""

    source: RunStatus
    status: RunStatus
    path: FinalizationPath
    finalized_by: FinalizedBy
    epoch: int
    seen_started_at: datetime | None
    note: Mapping[str, Any]
    error_message: str | None = None
    error_block_id: str | None = None
    crash_cause: str | None = None
    output: Any = None
    lease_expired_before: datetime | None = None
    """Only if ``lease_expires_at`` is still before this."""
    cancel_requested_before: datetime | None = None
    """Only if a cancel was requested, at or before this."""
    queue_expired_before: datetime | None = None
    """Only if ``expires_at`` is still before this."""
    job_id: int | None = None
    """Only if the run is still linked to this queue job."""


@dataclass(frozen=True, slots=True)
class JobSeen:
    """A Procrastinate job as the reconciler found it. ``status`` is None when the job is
    gone from the queue; ``worker_heartbeat`` is the last heartbeat of the worker that
    took it (None: no worker, or the worker's row is gone)."""

    id: int
    status: str | None
    worker_id: int | None = None
    worker_heartbeat: datetime | None = None


@dataclass(frozen=True, slots=True)
class EndedRunJob:
    """A queue job still waiting (``todo``) or running (``doing``) for a run that ended."""

    job: JobSeen
    run_id: str
    run_status: RunStatus


@dataclass(frozen=True, slots=True)
class QueueScan:
    """Where the job queue and the runs disagree: ``runs``, non-terminal runs whose job
    ended, is gone or sits with a stalled worker (a running run only once its lease
    expired too); ``jobs``, jobs still waiting or running whose run has ended."""

    runs: tuple[tuple[RunRecord, JobSeen], ...] = ()
    jobs: tuple[EndedRunJob, ...] = ()


@dataclass(frozen=True, slots=True)
class RunFilter:
    status: RunStatus | None = None
    workflow_name: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class PruneBatch:
    """What one batch of ``Store.prune_batch`` found (``dry_run``) or dropped: ``runs``
    pruned, their ``steps`` rows deleted, ``bytes`` of documents dropped (traces, outputs,
    pause snapshots, step outputs and errors), and ``last`` — the (started_at, id) key to
    continue after (``None`` when nothing was left)."""

    runs: int
    steps: int
    bytes: int
    last: tuple[datetime, str] | None


@dataclass(frozen=True, slots=True)
class RunQuery:
    """One page of the run list (``Store.list_summaries``): newest first by
    (``started_at`` DESC, ``id`` DESC), every filter given ANDed.

    ``statuses``: any of these (empty: all). ``started_since`` inclusive,
    ``started_until`` exclusive. ``min_duration_ms``: runs that ended (or paused) after at
    least that long (a run still going has no duration yet). ``min_cost``: USD at least.
    ``has_error``: True, runs with an error (message or block); False, runs without.
    ``cursor``: the ``next_cursor`` of the previous page (opaque; ``BadCursorError`` when
    it does not decode). Paging is keyset: a run started after the first page was read
    never shifts the later pages (no duplicates, no gaps)."""

    statuses: tuple[RunStatus, ...] = ()
    workflow_name: str | None = None
    trigger: str | None = None
    started_since: datetime | None = None
    started_until: datetime | None = None
    min_duration_ms: int | None = None
    min_cost: float | None = None
    has_error: bool | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class RunPage:
    """A page of lean rows: every ``RunRecord`` field the summary needs
    (``diagnostics.summary.run_summary``), and NOT ``input``, ``output``, ``notes``
    (``None``, ``None``, ``[]``); ``execution_data`` holds at most ``error_path`` (a failure
    inside child workflows) and ``pause_state`` only ``waiting`` and ``message``.
    ``next_cursor``: pass it as ``RunQuery.cursor`` for the next page; ``None`` on the
    last page."""

    rows: list[RunRecord]
    next_cursor: str | None
