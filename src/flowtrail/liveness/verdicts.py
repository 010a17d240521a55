"""The verdicts of "why is this run not moving?", in words: the sentence and the
evidence each one gives, from one run's row at one instant (``flowtrail.liveness.why``
decides which one applies)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flowtrail.liveness.blocks import RunningBlock
from flowtrail.liveness.lease import LeaseState, ago, iso, lease_state, seconds_between
from flowtrail.liveness.lease import worker_label as _worker
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, RunStatus
from flowtrail.store.records import QueueJob, RunRecord

VERDICTS = (
    "queued_waiting_for_worker",
    "queued_no_worker",
    "queued_expired",
    "queued_scheduled",
    "queued_job_lost",
    "running_healthy",
    "block_over_timeout",
    "block_slow",
    "event_loop_blocked",
    "waiting_for_input",
    "cancelling",
    "process_gone",
    "lease_expired",
    "crashed",
    "ended",
)
"""Every verdict ``why`` can give (a script can rely on this vocabulary)."""

# The recorded ``crash_cause`` values, in words (any other is shown as it is).
CRASH_CAUSES = {
    "lease_expired": "its lease expired with nobody renewing it",
    "process_gone": "its process was gone",
    "worker_shutdown": "its worker shut down before the run ended",
    "server_shutdown": "the API server running it shut down before the run ended",
}
# Procrastinate job statuses after which the job will never execute its run.
JOB_DONE = frozenset({"succeeded", "failed", "cancelled", "aborted", "absent"})
# A queue worker is alive when it sent a heartbeat this recently: Procrastinate's own
# default for calling a worker stalled.
LIVE_WORKER_SECONDS = 30.0
# "Far longer than usual": over this many times the median of previous runs, with at
# least this many of them to go by, and never for a block that has run less than a second.
SLOW_FACTOR = 3.0
SLOW_MIN_SAMPLES = 3
SLOW_MIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to "why is this run not moving?": a ``verdict`` word (one of
    ``VERDICTS``), a one-sentence ``summary`` naming the run's facts, and the
    ``evidence`` behind it (timestamps as ISO strings, ages in seconds)."""

    run_id: str
    status: RunStatus
    verdict: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``flowtrail why --json``."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": self.evidence,
        }


class Facts:
    """One run's row at one instant, and the sentences and evidence built from it."""

    def __init__(self, record: RunRecord, now: datetime, settings: Settings) -> None:
        self.rec = record
        self.now = now
        self.settings = settings
        self.lease: LeaseState | None = lease_state(record, now, settings.lease_seconds)

    def done(self, name: str, summary: str, evidence: dict[str, Any]) -> Verdict:
        clean = {k: v for k, v in evidence.items() if v is not None}
        return Verdict(self.rec.id, self.rec.status, name, summary, clean)

    def at(self, when: datetime | None) -> str:
        """A time in a sentence: ISO to the second, UTC, and how long ago."""
        if when is None or when > self.now:
            return stamp(when)
        return f"{stamp(when)} ({ago(seconds_between(when, self.now))} ago)"

    def worker(self) -> dict[str, Any] | None:
        rec = self.rec
        if rec.worker_host is None and rec.worker_id is None:
            return None
        return {"id": rec.worker_id, "host": rec.worker_host, "pid": rec.worker_pid}

    def markers(self) -> dict[str, Any]:
        started, completed = self.rec.last_started_block, self.rec.last_completed_block
        return {
            "last_started_block": started.to_dict() if started else None,
            "last_completed_block": completed.to_dict() if completed else None,
        }

    def lease_evidence(self) -> dict[str, Any]:
        rec = self.rec
        lease = self.lease
        return {
            "worker": self.worker(),
            "claimed_at": iso(rec.claimed_at),
            "lease_epoch": rec.lease_epoch,
            "lease_state": lease.state if lease else None,
            "heartbeat_at": iso(rec.heartbeat_at),
            "heartbeat_age_s": lease.heartbeat_age_s if lease else None,
            "lease_expires_at": iso(rec.lease_expires_at),
            "lease_expires_in_s": lease.expires_in_s if lease else None,
            "loop_lag_ms": rec.loop_lag_ms,
            "loop_blocked_since": iso(rec.loop_blocked_since),
        }

    def where(self) -> str:
        """Where the run got to, from its markers: ``last in block 'b' since T, after 'a'
        completed``."""
        started, completed = self.rec.last_started_block, self.rec.last_completed_block
        if started is None:
            return "before its first block"
        text = f"last in block '{started.block_id}' since {stamp(started.started_at)}"
        if completed is not None and completed.block_id != started.block_id:
            text += f", after '{completed.block_id}' completed"
        return text

    # -- ended ---------------------------------------------------------------------------

    def crashed(self) -> Verdict:
        rec = self.rec
        cause = rec.crash_cause
        why = (
            f" because {CRASH_CAUSES[cause]}"
            if cause in CRASH_CAUSES
            else f" (cause: {cause})"
            if cause
            else ""
        )
        by = f" by the {rec.finalized_by.value}" if rec.finalized_by else ""
        worker = _worker(rec)
        held = f"; worker {worker} held it" if worker else ""
        summary = f"Crashed at {self.at(rec.ended_at)}{why}, ended{by}{held}, {self.where()}."
        if rec.retried_by:
            summary = summary[:-1] + f"; retried as run {rec.retried_by}."
        return self.done(
            "crashed",
            summary,
            {
                "crash_cause": rec.crash_cause,
                "finalization_path": _path(rec),
                "finalized_by": rec.finalized_by.value if rec.finalized_by else None,
                "ended_at": iso(rec.ended_at),
                "worker": self.worker(),
                "lease_epoch": rec.lease_epoch,
                "heartbeat_at": iso(rec.heartbeat_at),
                "lease_expires_at": iso(rec.lease_expires_at),
                "error": rec.error_message,
                "retried_by": rec.retried_by,
                **self.markers(),
            },
        )

    def ended(self) -> Verdict:
        rec = self.rec
        path = _path(rec)
        by = f" by the {rec.finalized_by.value}" if rec.finalized_by else ""
        took = f" after {ago(rec.duration_ms / 1000)}" if rec.duration_ms else ""
        summary = f"Ended {rec.status.value}"
        if path and path != rec.status.value:
            summary += f" ({path})"
        summary += f" at {self.at(rec.ended_at)}{by}{took}"
        if rec.finalization_path is FinalizationPath.EXPIRED:
            summary += ": it was queued and no worker claimed it before its time-to-live"
        elif rec.error_message:
            where = f" in block '{rec.error_block_id}'" if rec.error_block_id else ""
            summary += f": {_clip(rec.error_message)}{where}"
        elif rec.status is RunStatus.CANCELLED and rec.cancel_requested_by:
            summary += f", cancel requested by {rec.cancel_requested_by}"
        if rec.retried_by:
            summary += f"; retried as run {rec.retried_by}"
        return self.done(
            "ended",
            summary + ".",
            {
                "finalization_path": path,
                "finalized_by": rec.finalized_by.value if rec.finalized_by else None,
                "ended_at": iso(rec.ended_at),
                "duration_ms": rec.duration_ms,
                "error": {"message": rec.error_message, "block_id": rec.error_block_id}
                if rec.error_message or rec.error_block_id
                else None,
                "completion_failure": rec.completion_failure,
                "cancel_requested_at": iso(rec.cancel_requested_at),
                "cancel_requested_by": rec.cancel_requested_by,
                "retried_by": rec.retried_by,
                **self.markers(),
            },
        )

    # -- not running ---------------------------------------------------------------------

    def cancelling(self, gone: bool | None) -> Verdict:
        rec = self.rec
        by = rec.cancel_requested_by or "someone"
        summary = f"Cancel requested at {self.at(rec.cancel_requested_at)} by {by}"
        lease = self.lease
        if lease is not None and lease.state == "expired":
            summary += (
                f", but nobody is executing the run to stop it (its lease expired "
                f"{ago(-(lease.expires_in_s or 0))} ago); the sweeper ends it by about "
                f"{self.at(self.sweep_due())}"
            )
        elif gone:
            summary += (
                ", but its process is gone; the sweeper ends it once its lease runs out, by "
                f"about {self.at(self.sweep_due())}"
            )
        else:
            worker = _worker(rec)
            summary += (
                f"; the engine{f' (worker {worker})' if worker else ''} stops at its next "
                f"check, {self.where()}; if it has not by about {stamp(self.forced_by())}, "
                "the sweeper ends it cancelled by force"
            )
        return self.done(
            "cancelling",
            summary + ".",
            {
                "forced_by_about": iso(self.forced_by()),
                "cancel_requested_at": iso(rec.cancel_requested_at),
                "cancel_requested_by": rec.cancel_requested_by,
                "cancelling_for_s": seconds_between(rec.cancel_requested_at, self.now),
                "process_gone": gone,
                "sweep_due_at": iso(self.sweep_due()) if rec.lease_expires_at else None,
                **self.lease_evidence(),
                **self.markers(),
            },
        )

    def forced_by(self) -> datetime:
        """When the sweeper will have forced an unanswered cancel: the grace after the
        request, then at most one sweep interval."""
        asked = self.rec.cancel_requested_at or self.now
        grace = timedelta(seconds=self.settings.cancel_grace)
        return max(asked + grace, self.now) + self.sweep_interval()

    def paused(self) -> Verdict:
        rec = self.rec
        state = rec.pause_state if isinstance(rec.pause_state, dict) else {}
        waiting = [str(b) for b in state.get("waiting") or []]
        message = state.get("message")
        started = rec.last_started_block
        since = (
            started.started_at
            if started is not None and started.block_id in waiting
            else rec.updated_at
        )
        blocks = ", ".join(f"'{b}'" for b in waiting) or "a wait block"
        summary = f"Paused since {self.at(since)} at {blocks}, waiting for input"
        if message:
            summary += f" ({_clip(str(message))})"
        summary += f"; resume it with `flowtrail resume {rec.id} --input JSON`."
        return self.done(
            "waiting_for_input",
            summary,
            {
                "paused_since": iso(since),
                "waiting_for_s": seconds_between(since, self.now),
                "waiting_blocks": waiting,
                "message": message,
                **self.markers(),
            },
        )

    def queued(self, workers: int | None, ahead: int, job: QueueJob | None) -> Verdict:
        rec = self.rec
        queue = rec.queue_name or "default"
        since = rec.queued_at or rec.started_at
        evidence: dict[str, Any] = {
            "queue": rec.queue_name,
            "queued_at": iso(since),
            "waiting_for_s": seconds_between(since, self.now),
            "expires_at": iso(rec.expires_at),
            "ahead": ahead,
            "live_workers": workers,
            "live_worker_window_s": LIVE_WORKER_SECONDS,
            "job": None
            if job is None
            else {"id": job.id, "status": job.status, "scheduled_at": iso(job.scheduled_at)},
        }
        head = f"Queued since {self.at(since)} in queue '{queue}'"
        if rec.expires_at is not None and rec.expires_at <= self.now:
            return self.done(
                "queued_expired",
                f"{head} and past its time-to-live since {self.at(rec.expires_at)}: no worker "
                "will claim it, and the sweeper ends it failed (expired) at its next pass, by "
                f"about {self.at(max(rec.expires_at, self.now) + self.sweep_interval())}.",
                evidence,
            )
        if job is not None and job.status in JOB_DONE:
            state = "is no longer in the queue" if job.status == "absent" else f"is {job.status}"
            return self.done(
                "queued_job_lost",
                f"{head}, but its queue job {job.id} {state}: no worker will run it, and the "
                "sweeper's reconciliation ends it failed at its next pass, by about "
                f"{self.at(self.now + self.sweep_interval())}.",
                evidence,
            )
        if job is not None and job.scheduled_at is not None and job.scheduled_at > self.now:
            wait = ago((job.scheduled_at - self.now).total_seconds())
            return self.done(
                "queued_scheduled",
                f"{head}; its queue job {job.id} is scheduled for {stamp(job.scheduled_at)} "
                f"(in {wait}: a recovery attempt waits its backoff), and no worker takes it "
                "before then.",
                evidence,
            )
        ahead_text = (
            f"{ahead} run{'s' if ahead != 1 else ''} ahead of it" if ahead else "no run ahead of it"
        )
        if not workers:
            if workers is None:
                why_none = (
                    "this database has no queue workers (workers need PostgreSQL with "
                    "`flowtrail db upgrade` applied)"
                )
            else:
                why_none = (
                    f"no worker has sent a heartbeat in the last {LIVE_WORKER_SECONDS:g}s; "
                    "start one with `flowtrail worker`"
                )
            return self.done("queued_no_worker", f"{head}, {ahead_text}, and {why_none}.", evidence)
        expiry = f"; it expires at {self.at(rec.expires_at)}" if rec.expires_at else ""
        return self.done(
            "queued_waiting_for_worker",
            f"{head} with {ahead_text}; {workers} live worker{'s' if workers != 1 else ''} "
            f"will claim it when one is free{expiry}.",
            evidence,
        )

    # -- running ---------------------------------------------------------------------------

    def sweep_interval(self) -> timedelta:
        return timedelta(seconds=self.settings.sweep_seconds)

    def sweep_due(self) -> datetime:
        """When the sweeper will have ended a run whose lease expired: at its first pass
        after the expiry, so at most one interval later."""
        expiry = self.rec.lease_expires_at or self.now
        return max(expiry, self.now) + self.sweep_interval()

    def running(
        self,
        blocks: list[RunningBlock],
        timeouts: Mapping[str, float],
        usual: Mapping[str, Sequence[float]],
        gone: bool | None,
    ) -> Verdict:
        rec = self.rec
        lease = self.lease
        worker = _worker(rec)
        held_by = f"worker {worker}" if worker else "its worker"
        evidence: dict[str, Any] = {
            "block": blocks[0].to_dict(self.now) if blocks else None,
            "running_blocks": len(blocks) if len(blocks) > 1 else None,
            "process_gone": gone,
            **self.lease_evidence(),
            **self.markers(),
            "deadline_at": iso(rec.deadline_at),
        }
        if lease is not None and lease.state == "expired":
            if gone is None:
                state = "nobody renews it"
            else:
                state = "its process is gone" if gone else "its process is alive but silent"
            evidence["sweep_due_at"] = iso(self.sweep_due())
            return self.done(
                "lease_expired",
                f"Still marked running, but its lease expired at {self.at(rec.lease_expires_at)}"
                f" and {state}; {held_by} held it, {self.where()}; the sweeper ends it crashed "
                f"by about {self.at(self.sweep_due())}.",
                evidence,
            )
        if gone:
            evidence["sweep_due_at"] = iso(self.sweep_due())
            until = (
                f"its lease runs out at {self.at(rec.lease_expires_at)}, then the sweeper "
                f"ends it crashed by about {self.at(self.sweep_due())}"
                if rec.lease_expires_at is not None
                else "it holds no lease, so only a cancel or the sweeper ends it"
            )
            return self.done(
                "process_gone",
                f"Marked running, but the process executing it ({held_by}) is gone, "
                f"{self.where()}; {until}.",
                evidence,
            )
        beat = (
            f"heartbeat {ago(lease.heartbeat_age_s)} ago"
            if lease is not None and lease.heartbeat_age_s is not None
            else "no heartbeat recorded"
        )
        if lease is not None and lease.state == "late":
            beat += " (late)"
        if rec.loop_blocked_since is not None and rec.loop_lag_ms is not None:
            inside = f" in {blocks[0].label()}" if blocks else ""
            return self.done(
                "event_loop_blocked",
                f"The event loop of {held_by} has been blocked since "
                f"{self.at(rec.loop_blocked_since)}{inside}: async code that does not await "
                f"(CPU-bound work or a blocking call) holds it; the lease is still renewed "
                f"({beat}), so the run is not swept.",
                evidence,
            )
        for block in blocks:
            limit = timeouts.get(block.block_id)
            running_for = (self.now - block.started_at).total_seconds()
            if limit is not None and running_for > limit:
                evidence["block"] = block.to_dict(self.now)
                evidence["timeout_s"] = limit
                return self.done(
                    "block_over_timeout",
                    f"{_capital(block.label())} has been running for {ago(running_for)}, since "
                    f"{stamp(block.started_at)}, past its timeout of {ago(limit)}, and has not "
                    f"stopped; {held_by}, {beat}.",
                    evidence,
                )
        for block in blocks:
            past = [d for d in usual.get(block.block_id, ()) if d >= 0]
            if len(past) < SLOW_MIN_SAMPLES:
                continue
            median = statistics.median(past)
            running_for = (self.now - block.started_at).total_seconds()
            if running_for >= SLOW_MIN_SECONDS and running_for > SLOW_FACTOR * median:
                evidence["block"] = block.to_dict(self.now)
                evidence["usual_s"] = round(median, 3)
                evidence["usual_samples"] = len(past)
                return self.done(
                    "block_slow",
                    f"{_capital(block.label())} has been running for {ago(running_for)}, since "
                    f"{stamp(block.started_at)}, over {SLOW_FACTOR:g}x its usual {ago(median)} "
                    f"(median of {len(past)} previous executions); {held_by}, {beat}.",
                    evidence,
                )
        if blocks:
            first = blocks[0]
            also = f" and {len(blocks) - 1} more" if len(blocks) > 1 else ""
            doing = f"running {first.label()}{also} since {self.at(first.started_at)}"
            timeout = timeouts.get(first.block_id)
            if timeout is not None:
                evidence["timeout_s"] = timeout
        elif rec.last_completed_block is not None:
            doing = (
                f"running, between blocks (last completed '{rec.last_completed_block.block_id}' "
                f"at {self.at(rec.last_completed_block.ended_at)})"
            )
        else:
            doing = f"running since {self.at(rec.started_at)}, before its first block"
        return self.done(
            "running_healthy",
            f"{_capital(doing)}; {held_by}, {beat}.",
            evidence,
        )


def stamp(when: datetime | None) -> str:
    """A time in a sentence: ISO to the second, UTC."""
    return "an unknown time" if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _path(rec: RunRecord) -> str | None:
    return rec.finalization_path.value if rec.finalization_path else None


def _clip(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
