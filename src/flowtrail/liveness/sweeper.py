"""The sweeper: every run ends explained, even when the process running it does not.

A pass reads, in one round trip of index scans, the non-terminal runs that need it and
ends each by a compare-and-set on the row as it was seen (``Store.end_run``), with a note
saying who acted, when, why and on what evidence:

* running, lease expired → ``crashed`` (cause ``process_gone`` when its process is known
  dead on this host, else ``lease_expired``);
* running, cancel requested longer ago than the grace (``Settings.cancel_grace``, one
  lease by default), or asked to cancel and its lease expired → ``cancelled``, forced;
* queued past its time-to-live → ``failed``, path ``expired``;
* reconciliation with the job queue (Procrastinate, on PostgreSQL, when its tables are
  there; it runs even when the queue is empty): a non-terminal run whose job ended, is
  gone or sits with a stalled queue worker is ended by the ``reconciler`` (a queued run
  ``failed``; a running one ``crashed``, but only once its lease expired too: a live
  lease is the authority on a running run), and a job still waiting or running for a
  run that ended is cancelled, or asked to abort.

Only one sweeper acts at a time across processes (``Store.sweeper_lock``: a PostgreSQL
advisory lock; on SQLite the compare-and-set alone keeps two sweepers from both ending a
run). ``run_sweeper`` is the loop a worker or ``flowtrail sweep`` runs; ``reap_here`` is
the cheap check every command makes on opening the database: the runs of this host whose
process is gone and whose lease expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowtrail.errors import SettingsError, StoreError
from flowtrail.liveness import endings
from flowtrail.liveness.process import process_gone
from flowtrail.otel import RunInfo
from flowtrail.otel import exporter as otel_exporter
from flowtrail.settings import Settings, parse_switch
from flowtrail.status import FinalizedBy, RunStatus
from flowtrail.store import open_store
from flowtrail.store.base import Store
from flowtrail.store.common import utcnow
from flowtrail.store.records import ForcedEnd, QueueScan, RunRecord, SweepScan

if TYPE_CHECKING:
    from flowtrail.otel.export import Exporter

log = logging.getLogger("flowtrail.liveness")

# Runs of each kind handled per pass; more wait for the next pass (a pass stays short).
SCAN_LIMIT = 500
# A queue worker whose last heartbeat is older than this is stalled: Procrastinate's own
# default (``stalled_worker_timeout``), three of its heartbeats.
STALLED_WORKER_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SweepAction:
    """One run the pass ended."""

    run_id: str
    status: RunStatus
    action: str  # crashed | cancel_forced | expired | reconciled
    message: str
    crash_cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "action": self.action,
            "crash_cause": self.crash_cause,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class JobAction:
    """One queue job the pass cancelled (``todo``) or asked to abort (``doing``), because
    its run had ended."""

    job_id: int
    run_id: str
    action: str  # cancelled | abort_requested

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "run_id": self.run_id, "action": self.action}


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one pass did. ``held_lock`` False: another sweeper was at work, so this
    pass did nothing. ``passed_over``: runs found but changed before they could be ended
    (a renewed lease, an engine that finished): left alone, rightly."""

    at: datetime
    held_lock: bool
    found: int = 0
    actions: tuple[SweepAction, ...] = ()
    passed_over: tuple[str, ...] = ()
    elapsed_ms: float = 0.0
    jobs: tuple[JobAction, ...] = ()
    queue: bool = False
    """Whether the database has a job queue, reconciled by this pass."""

    def summary(self) -> str:
        if not self.held_lock:
            return "another sweeper holds the lock: this pass did nothing"
        jobs = f", {len(self.jobs)} queue job(s) cancelled" if self.jobs else ""
        if not self.actions and not self.jobs:
            return f"nothing to do ({self.found} found, {len(self.passed_over)} moved on)"
        return f"ended {len(self.actions)} run(s){jobs}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "held_lock": self.held_lock,
            "found": self.found,
            "actions": [a.to_dict() for a in self.actions],
            "passed_over": list(self.passed_over),
            "jobs": [j.to_dict() for j in self.jobs],
            "queue": self.queue,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "summary": self.summary(),
        }


class Sweeper:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def sweep_once(self) -> SweepReport:
        """One pass, if no other sweeper is at work."""
        t0 = time.perf_counter()
        now = utcnow()
        async with self.store.sweeper_lock() as held:
            if not held:
                return SweepReport(now, False, elapsed_ms=_ms_since(t0))
            # The queue first: what it knows explains a dead run better than the lease.
            queue = await self.store.reconcile_scan(
                now,
                now - timedelta(seconds=STALLED_WORKER_SECONDS),
                now - timedelta(seconds=self.settings.lease_seconds),
                SCAN_LIMIT,
            )
            planned = {
                rec.id: (rec, endings.reconciled(rec, job, now), "reconciled")
                for rec, job in (queue.runs if queue is not None else ())
            }
            scan = await self._scan(now)
            found = len(planned.keys() | _ids(scan))
            for plan in self._plan(scan, now, here_only=False):
                planned.setdefault(plan[0].id, plan)
            actions, passed = await self._apply(list(planned.values()))
            jobs = await self._cancel_jobs(queue) if queue is not None else ()
        return SweepReport(
            now, True, found, actions, passed, _ms_since(t0), jobs, queue is not None
        )

    async def reap_here(self) -> SweepReport:
        """Only the runs of this host whose process is gone and whose lease expired:
        what every command does on opening the database (no lock: the compare-and-set
        alone makes it safe beside a sweeper)."""
        t0 = time.perf_counter()
        now = utcnow()
        scan = await self._scan(now)
        actions, passed = await self._apply(self._plan(scan, now, here_only=True))
        return SweepReport(now, True, len(actions) + len(passed), actions, passed, _ms_since(t0))

    async def _scan(self, now: datetime) -> SweepScan:
        cancel_before = now - timedelta(seconds=self.settings.cancel_grace)
        return await self.store.sweep_scan(now, cancel_before, SCAN_LIMIT)

    def _plan(
        self, scan: SweepScan, now: datetime, *, here_only: bool
    ) -> list[tuple[RunRecord, ForcedEnd, str]]:
        """What to do with each run found; a run asked to cancel ends ``cancelled``,
        whichever way it was found dead."""
        planned: dict[str, tuple[RunRecord, ForcedEnd, str]] = {}
        grace = self.settings.cancel_grace
        for rec in scan.lease_expired:
            gone = process_gone(rec.worker_host, rec.worker_pid, rec.worker_started_at)
            if here_only and not gone:
                continue
            cause = endings.PROCESS_GONE if gone else endings.LEASE_EXPIRED
            if rec.cancel_requested_at is not None:
                why = (
                    "its process is gone" if gone else "its lease expired"
                ) + f" ({endings.worker_text(rec)}) before it stopped"
                end = endings.cancel_forced(rec, now, why, lease_expired=True)
                planned[rec.id] = (rec, end, "cancel_forced")
            else:
                planned[rec.id] = (rec, endings.crashed(rec, now, cause), "crashed")
        if here_only:
            return list(planned.values())
        for rec in scan.cancel_overdue:
            if rec.id not in planned:
                why = f"the run had not stopped {grace:g} s later ({endings.worker_text(rec)})"
                end = endings.cancel_forced(rec, now, why, grace_seconds=grace)
                planned[rec.id] = (rec, end, "cancel_forced")
        for rec in scan.queue_expired:
            planned[rec.id] = (rec, endings.expired(rec, now), "expired")
        return list(planned.values())

    async def _apply(
        self, planned: list[tuple[RunRecord, ForcedEnd, str]]
    ) -> tuple[tuple[SweepAction, ...], tuple[str, ...]]:
        actions: list[SweepAction] = []
        passed: list[str] = []
        for rec, end, action in planned:
            if await self.store.end_run(rec.id, end):
                message = end.error_message or action
                log.info("run %s ended %s by the sweeper: %s", rec.id, end.status, message)
                actions.append(SweepAction(rec.id, end.status, action, message, end.crash_cause))
                self._export(rec, end)
            else:
                passed.append(rec.id)
        return tuple(actions), tuple(passed)

    def _export(self, rec: RunRecord, end: ForcedEnd) -> None:
        """The run span of a run ended here, when OpenTelemetry export is on: its engine
        is gone, so this is all of its trace that can still be sent (``flowtrail.otel``)."""
        _export_span(rec.id, self.settings, lambda: forced_end_info(rec, end, time.time()))

    async def _cancel_jobs(self, queue: QueueScan) -> tuple[JobAction, ...]:
        done: list[JobAction] = []
        for stray in queue.jobs:
            if not await self.store.cancel_job(stray.job.id):
                continue  # it ended meanwhile
            await self.store.add_note(stray.run_id, endings.job_note(stray.job, stray.run_status))
            action = "cancelled" if stray.job.status == "todo" else "abort_requested"
            log.info("queue job %s of run %s (%s): %s", stray.job.id, stray.run_id,
                     stray.run_status, action)  # fmt: skip
            done.append(JobAction(stray.job.id, stray.run_id, action))
        return tuple(done)


async def cancel_if_gone(
    store: Store, run_id: str, settings: Settings | None = None
) -> RunRecord | None:
    """After a cancel request: a running run whose process is known gone (it ran on this
    host) has no engine left to honour it, so the request ends it now, ``cancelled``,
    forced, by ``api``. Returns the row as it is then, or ``None`` when its process may
    still live (nothing was done: its engine, or the sweeper after the grace, ends it).
    With OpenTelemetry export on (``settings``, else the environment), the run span of
    the run it ended is exported."""
    rec = await store.get_run(run_id)
    gone = process_gone(rec.worker_host, rec.worker_pid, rec.worker_started_at)
    if rec.status is not RunStatus.RUNNING or not gone:
        return None
    why = f"its process ({endings.worker_text(rec)}) was gone, so the request ended the run"
    end = endings.cancel_forced(rec, utcnow(), why, who=FinalizedBy.API)
    if await store.end_run(run_id, end):
        log.info("run %s ended cancelled: %s", run_id, end.error_message)
        _export_span(run_id, settings, lambda: forced_end_info(rec, end, time.time()))
    return await store.get_run(run_id)


async def export_ended(store: Store, run_id: str, settings: Settings | None = None) -> None:
    """With OpenTelemetry export on: the run span of a run a request has just ended
    without an engine (a paused or queued run cancelled), read from its row. Never
    raises; reads nothing when export is off."""
    try:
        if _exporter_for(settings) is None:
            return
        rec = await store.get_run(run_id)
    except Exception:
        log.exception("run %s: its run span could not be read for the exporter", run_id)
        return
    _export_span(run_id, settings, lambda: record_info(rec, time.time()))


def _exporter_for(settings: Settings | None) -> Exporter | None:
    if settings is not None:
        return otel_exporter(settings.otel, settings.env)
    flag: bool | None = None
    text = os.environ.get("FLOWTRAIL_OTEL", "")
    if text.strip():
        try:
            flag = parse_switch("FLOWTRAIL_OTEL", text)
        except SettingsError:
            flag = None
    return otel_exporter(flag, os.environ)


def _export_span(run_id: str, settings: Settings | None, info: Callable[[], RunInfo]) -> None:
    """Hand a run span to the exporter when export is on; never raises."""
    try:
        exporter = _exporter_for(settings)
        if exporter is not None:
            exporter.run_span(info())
    except Exception:
        log.exception("run %s: its run span could not be handed to the exporter", run_id)


def record_info(rec: RunRecord, now: float) -> RunInfo:
    """What the run span of an ended run says, from its row."""
    started, completed = rec.last_started_block, rec.last_completed_block
    begun = rec.started_at.timestamp()
    return RunInfo(
        run_id=rec.id,
        workflow=rec.workflow_name,
        status=rec.status.value,
        started_at=begun,
        ended_at=max(begun, rec.ended_at.timestamp() if rec.ended_at else now),
        path=rec.finalization_path.value if rec.finalization_path else None,
        finalized_by=rec.finalized_by.value if rec.finalized_by else None,
        trigger=rec.trigger,
        attempt=rec.attempt,
        retry_of=rec.retry_of,
        cost_total=rec.cost_total,
        tokens_prompt=rec.tokens_prompt,
        tokens_completion=rec.tokens_completion,
        models=tuple(rec.models),
        error_message=rec.error_message,
        error_block_id=rec.error_block_id,
        completion_failure=rec.completion_failure,
        crash_cause=rec.crash_cause,
        last_started_block=started.block_id if started else None,
        last_completed_block=completed.block_id if completed else None,
        epoch=rec.lease_epoch,
    )


def forced_end_info(rec: RunRecord, end: ForcedEnd, now: float) -> RunInfo:
    """What the run span of a run ended from outside says: the row as seen, and the end."""
    return dataclasses.replace(
        record_info(rec, now),
        status=end.status.value,
        ended_at=max(now, rec.started_at.timestamp()),
        path=end.path.value,
        finalized_by=end.finalized_by.value,
        error_message=end.error_message,
        error_block_id=end.error_block_id,
        completion_failure=None,
        crash_cause=end.crash_cause,
    )


def _ids(scan: SweepScan) -> set[str]:
    return {r.id for r in (*scan.lease_expired, *scan.cancel_overdue, *scan.queue_expired)}


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


Recover = Callable[[Store, str], Awaitable[object]]
"""Called with each run a pass ended ``crashed`` (automatic recovery lives above this
layer, with the queue: ``flowtrail.queue.recovery.recover_crashed``)."""


async def sweep_beside(settings: Settings, recover: Recover | None = None) -> None:
    """The sweeper loop on a database connection of its own, until cancelled: what every
    queue worker runs beside its runs (``QueueWorker(companions=...)``)."""
    async with open_store(settings.database_url, create=False) as store:
        await run_sweeper(store, settings, asyncio.Event(), recover=recover)


async def run_sweeper(
    store: Store,
    settings: Settings,
    stop: asyncio.Event,
    on_report: Callable[[SweepReport], None] | None = None,
    *,
    recover: Recover | None = None,
) -> None:
    """Sweep every ``settings.sweep_seconds`` until ``stop`` is set (a worker runs this
    beside its runs; ``flowtrail sweep`` runs it alone). A pass that fails (the database
    is away) is logged and the next one tries again; so is a recovery that fails."""
    sweeper = Sweeper(store, settings)
    while not stop.is_set():
        try:
            report = await sweeper.sweep_once()
        except StoreError as exc:
            log.warning("a sweep pass failed: %s", exc)
        else:
            if on_report is not None:
                on_report(report)
            if recover is not None:
                await recover_crashed_runs(store, report, recover)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.sweep_seconds)


async def recover_crashed_runs(store: Store, report: SweepReport, recover: Recover) -> None:
    for action in report.actions:
        if action.status is RunStatus.CRASHED:
            try:
                await recover(store, action.run_id)
            except Exception as exc:  # the run stays crashed, explained; logged
                log.warning("run %s: automatic recovery failed: %s", action.run_id, exc)
