"""Enqueue a run: the ``queued`` row first, then its Procrastinate job.

The row is written before the job exists, so a worker never receives a job for a run it
cannot read. If the job cannot be deferred the row is finalized ``failed`` at once with
the reason: a queued run that nothing will ever pick up must not stay ``queued``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from flowtrail.errors import InputError, StoreError
from flowtrail.model.graph import Workflow
from flowtrail.queue.app import make_app
from flowtrail.queue.defaults import DEFAULT_QUEUE, TASK_NAME, require_postgres
from flowtrail.queue.schema import queue_schema_present
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization, RunRecord, Store

log = logging.getLogger("flowtrail.queue")

MAX_QUEUE_NAME = 128  # Procrastinate's column


async def submit_run(
    store: Store,
    workflow: Workflow,
    inputs: Any = None,
    *,
    settings: Settings,
    queue_name: str = DEFAULT_QUEUE,
    expires_in: float | None = None,
    trigger: str = "python",
) -> RunRecord:
    """Validate the input, write the run ``queued`` and defer its job; return the row.

    ``expires_in`` (seconds, default ``settings.queue_ttl_seconds``): a run no worker has
    claimed by then ends ``failed`` with path ``expired``. Raises ``InputError`` (nothing
    written) for bad input, ``QueueError`` off PostgreSQL, ``StoreError`` when
    the queue's schema is missing or the job could not be deferred (the run is then
    ``failed`` and says why).
    """
    require_postgres(store.url)
    if not 0 < len(queue_name) <= MAX_QUEUE_NAME:
        raise InputError(f"a queue name is 1 to {MAX_QUEUE_NAME} characters long")
    ttl = settings.queue_ttl_seconds if expires_in is None else expires_in
    if not ttl > 0:  # also refuses NaN
        raise InputError(f"the time-to-live must be a positive number of seconds, got {ttl}")
    if not await queue_schema_present(store.url):
        raise StoreError(
            "the job queue's tables are missing from this database; run "
            "`flowtrail db upgrade` against it first"
        )
    record = await Runner(settings, store).enqueue(
        workflow, inputs, trigger=trigger, queue_name=queue_name, expires_in=ttl
    )
    run_id = record.id
    now = (record.queued_at or record.started_at).timestamp()
    try:
        job_id = await defer_run(store.url, run_id, queue_name)
    except Exception as exc:
        reason = _reason(exc)
        await not_queued(store, run_id, now, reason)
        raise StoreError(f"run {run_id} could not be queued (it is now failed): {reason}") from exc
    try:
        await store.set_job_id(run_id, job_id)
    except StoreError as exc:
        # The job exists and a worker will run it; only the cross-reference is missing.
        log.warning("run %s: its job id %s could not be recorded: %s", run_id, job_id, exc)
    return await store.get_run(run_id)


async def defer_run(url: str, run_id: str, queue_name: str, *, delay: float = 0.0) -> int:
    """Defer the job that executes ``run_id`` (no worker takes it for ``delay`` seconds);
    return its job id."""
    async with make_app(url, pooled=False).open_async() as opened:
        task = opened.configure_task(
            TASK_NAME, queue=queue_name, schedule_in={"seconds": delay} if delay > 0 else None
        )
        return await task.defer_async(run_id=run_id)


def _reason(exc: BaseException) -> str:
    """One line saying why: Procrastinate wraps a driver error in a bare "Database
    error.", so the error it wraps is named too."""
    parts = [" ".join(str(exc).split())]
    if exc.__cause__ is not None:
        parts.append(" ".join(str(exc.__cause__).split()))
    return ": ".join(p for p in parts if p) or type(exc).__name__


async def not_queued(store: Store, run_id: str, queued_at: float, why: str) -> None:
    """Finalize a run whose job could not be deferred, so it never stays ``queued``
    (also used for a retry that automatic recovery could not queue)."""
    ended = time.time()
    reason = f"the run's job could not be deferred to the queue: {why}"
    try:
        await store.finalize(
            run_id,
            Finalization(
                status=RunStatus.FAILED,
                path=FinalizationPath.FORCE_FAILED,
                finalized_by=FinalizedBy.API,
                ended_at=datetime.fromtimestamp(ended, UTC),
                duration_ms=max(1, int((ended - queued_at) * 1000)),
                error_message=reason,
                completion_failure=reason,
            ),
        )
    except StoreError as store_exc:
        log.error("run %s: not queued, and could not be marked failed: %s", run_id, store_exc)
