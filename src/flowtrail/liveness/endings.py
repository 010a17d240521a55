"""How a run is ended from outside its engine, and what the record says about it.

Pure functions from a run *as seen* (a ``RunRecord`` read by the sweeper or a command) to
the compare-and-set that ends it (``ForcedEnd``): the status and path, a message that
names the worker and where the run got to, and the note kept on the run (who acted,
when, why, with what evidence). The markers themselves are not touched: the row keeps
them as the engine last wrote them.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store.records import ForcedEnd, JobSeen, RunRecord

# ``crash_cause`` words. The lease alone says the engine stopped renewing it (dead, hung,
# or cut off from the database); a gone process is known dead (checked on its own host,
# guarded against pid reuse).
LEASE_EXPIRED = "lease_expired"
PROCESS_GONE = "process_gone"

CANCELLED_OUTPUT = {"cancelled": True}


def acting_process() -> str:
    """The process doing the ending, as ``host:pid``, for the note."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def worker_text(rec: RunRecord) -> str:
    """``worker w-1 (pid 123 on host-a)``, with whatever of it the row recorded."""
    if rec.worker_host is None and rec.worker_pid is None and rec.worker_id is None:
        return "an unrecorded worker"
    where = f"pid {rec.worker_pid} on {rec.worker_host}"
    if rec.worker_id and rec.worker_id != f"{rec.worker_host}:{rec.worker_pid}":
        return f"worker {rec.worker_id} ({where})"
    return f"the process ({where})"  # an in-process run: its id says no more than this


def in_flight(rec: RunRecord) -> bool:
    """Whether the last started block had not ended (by the markers)."""
    started, completed = rec.last_started_block, rec.last_completed_block
    if started is None:
        return False
    return (
        completed is None
        or completed.block_id != started.block_id
        or completed.ended_at < started.started_at
    )


def where_it_got(rec: RunRecord) -> str:
    started, completed = rec.last_started_block, rec.last_completed_block
    if started is None:
        return "it had not started a block"
    if in_flight(rec):
        return (
            f"it was in block '{started.block_id}' ({started.block_type}), "
            f"started at {_at(started.started_at)}"
        )
    assert completed is not None
    outcome = "succeeded" if completed.success else "failed"
    ended = _at(completed.ended_at)
    return f"it was after block '{completed.block_id}', which {outcome} at {ended}"


def evidence(rec: RunRecord) -> dict[str, Any]:
    """What the row said when it was ended: the lease, the worker, the markers."""
    return {
        "lease_epoch": rec.lease_epoch,
        "lease_expires_at": _at(rec.lease_expires_at),
        "heartbeat_at": _at(rec.heartbeat_at),
        "worker": {
            "id": rec.worker_id,
            "host": rec.worker_host,
            "pid": rec.worker_pid,
            "started_at": _at(rec.worker_started_at),
        },
        "loop_lag_ms": rec.loop_lag_ms,
        "loop_blocked_since": _at(rec.loop_blocked_since),
        "last_started_block": rec.last_started_block.to_dict() if rec.last_started_block else None,
        "last_completed_block": (
            rec.last_completed_block.to_dict() if rec.last_completed_block else None
        ),
        "cancel_requested_at": _at(rec.cancel_requested_at),
        "cancel_requested_by": rec.cancel_requested_by,
    }


def _note(kind: str, who: FinalizedBy, why: str, rec: RunRecord, **more: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "who": who.value,
        "by": acting_process(),
        "why": why,
        "evidence": {**evidence(rec), **more},
    }


def crashed(rec: RunRecord, now: datetime, cause: str) -> ForcedEnd:
    """A running run whose lease expired: ``crashed``, by the sweeper."""
    heartbeat = _at(rec.heartbeat_at) or "never"
    if cause == PROCESS_GONE:
        why = (
            f"its process is gone: {worker_text(rec)} no longer runs, and its lease expired "
            f"at {_at(rec.lease_expires_at)} (last heartbeat {heartbeat})"
        )
    else:
        why = (
            f"its lease expired at {_at(rec.lease_expires_at)} (last heartbeat {heartbeat}): "
            f"{worker_text(rec)} stopped renewing it (dead, hung, or cut off from the database)"
        )
    return ForcedEnd(
        source=RunStatus.RUNNING,
        status=RunStatus.CRASHED,
        path=FinalizationPath.CRASHED,
        finalized_by=FinalizedBy.SWEEPER,
        epoch=rec.lease_epoch,
        seen_started_at=_started_at(rec),
        note=_note("crashed", FinalizedBy.SWEEPER, why, rec, crash_cause=cause),
        error_message=f"crashed: {why}; {where_it_got(rec)}",
        error_block_id=_block_in_flight(rec),
        crash_cause=cause,
        lease_expired_before=now,
    )


def cancel_forced(
    rec: RunRecord,
    now: datetime,
    why: str,
    *,
    who: FinalizedBy = FinalizedBy.SWEEPER,
    lease_expired: bool = False,
    grace_seconds: float | None = None,
) -> ForcedEnd:
    """A running run asked to cancel whose engine did not (or cannot) end it: ended
    ``cancelled`` by force. Its engine, if it still lives, is fenced off: its writes need
    the run ``running``."""
    requested = (
        f"cancel requested at {_at(rec.cancel_requested_at)} by "
        f"{rec.cancel_requested_by or 'unknown'}"
    )
    more: dict[str, Any] = {"forced": True}
    cancel_before = now
    if grace_seconds is not None:
        more["grace_seconds"] = grace_seconds
        cancel_before = now - timedelta(seconds=grace_seconds)
    return ForcedEnd(
        source=RunStatus.RUNNING,
        status=RunStatus.CANCELLED,
        path=FinalizationPath.CANCELLED,
        finalized_by=who,
        epoch=rec.lease_epoch,
        seen_started_at=_started_at(rec),
        note=_note("cancel_forced", who, f"{requested}; {why}", rec, **more),
        error_message=f"cancelled (forced by the {who.value}): {requested}; {why}; "
        f"{where_it_got(rec)}",
        error_block_id=_block_in_flight(rec),
        output=CANCELLED_OUTPUT,
        lease_expired_before=now if lease_expired else None,
        cancel_requested_before=cancel_before,
    )


def expired(rec: RunRecord, now: datetime) -> ForcedEnd:
    """A queued run no worker claimed before its time-to-live: ``failed``, path
    ``expired``."""
    why = (
        f"queued at {_at(rec.queued_at or rec.started_at)} and not claimed by any worker "
        f"before its time-to-live ran out at {_at(rec.expires_at)}"
    )
    return ForcedEnd(
        source=RunStatus.QUEUED,
        status=RunStatus.FAILED,
        path=FinalizationPath.EXPIRED,
        finalized_by=FinalizedBy.SWEEPER,
        epoch=rec.lease_epoch,
        seen_started_at=_started_at(rec),
        note=_note(
            "expired",
            FinalizedBy.SWEEPER,
            why,
            rec,
            queue_name=rec.queue_name,
            queued_at=_at(rec.queued_at),
            expires_at=_at(rec.expires_at),
        ),
        error_message=f"expired: {why}",
        queue_expired_before=now,
    )


def job_evidence(job: JobSeen) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status,
        "worker_id": job.worker_id,
        "worker_heartbeat": _at(job.worker_heartbeat),
    }


def job_trouble(job: JobSeen) -> tuple[str, str]:
    """(``crash_cause`` word, what the queue says) for a job that will not run its run."""
    if job.status is None:
        return "job_gone", f"queue job {job.id} is gone from the queue"
    if job.status != "doing":
        return f"job_{job.status}", f"queue job {job.id} ended {job.status}"
    if job.worker_id is None or job.worker_heartbeat is None:
        return "worker_gone", f"queue job {job.id} was taken by a worker that is gone"
    return "worker_stalled", (
        f"queue job {job.id} was taken by queue worker {job.worker_id}, whose last "
        f"heartbeat was at {_at(job.worker_heartbeat)}"
    )


def reconciled(rec: RunRecord, job: JobSeen, now: datetime) -> ForcedEnd:
    """A non-terminal run its queue job will never execute: a queued one ``failed``, a
    running one (its lease expired too) ``crashed``, by the reconciler."""
    cause, trouble = job_trouble(job)
    more = {"job": job_evidence(job), "crash_cause": cause}
    if rec.status is RunStatus.QUEUED:
        why = f"{trouble}, so no worker will ever run it"
        return ForcedEnd(
            source=RunStatus.QUEUED,
            status=RunStatus.FAILED,
            path=FinalizationPath.FORCE_FAILED,
            finalized_by=FinalizedBy.RECONCILER,
            epoch=rec.lease_epoch,
            seen_started_at=_started_at(rec),
            note=_note("reconciled", FinalizedBy.RECONCILER, why, rec, **more),
            error_message=f"failed before it started: {why}",
            job_id=job.id,
        )
    why = f"its lease expired at {_at(rec.lease_expires_at)} and its {trouble} ({worker_text(rec)})"
    return ForcedEnd(
        source=RunStatus.RUNNING,
        status=RunStatus.CRASHED,
        path=FinalizationPath.CRASHED,
        finalized_by=FinalizedBy.RECONCILER,
        epoch=rec.lease_epoch,
        seen_started_at=_started_at(rec),
        note=_note("reconciled", FinalizedBy.RECONCILER, why, rec, **more),
        error_message=f"crashed: {why}; {where_it_got(rec)}",
        error_block_id=_block_in_flight(rec),
        crash_cause=cause,
        lease_expired_before=now,
        job_id=job.id,
    )


def job_note(job: JobSeen, run_status: RunStatus) -> dict[str, Any]:
    """The note on a run whose queue job the reconciler cancelled (or asked to abort)."""
    action = "cancelled" if job.status == "todo" else "asked to abort"
    return {
        "kind": "job_cancelled" if job.status == "todo" else "job_abort_requested",
        "who": FinalizedBy.RECONCILER.value,
        "by": acting_process(),
        "why": f"the run had ended {run_status.value}, but its queue job {job.id} was still "
        f"{job.status}: {action}",
        "evidence": {"job": job_evidence(job)},
    }


def _block_in_flight(rec: RunRecord) -> str | None:
    return rec.last_started_block.block_id if rec.last_started_block and in_flight(rec) else None


def _started_at(rec: RunRecord) -> datetime | None:
    return rec.last_started_block.started_at if rec.last_started_block else None
