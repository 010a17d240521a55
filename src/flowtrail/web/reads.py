"""What the pages read, through ``request.app.state``: a reader store (the pool when the
app has one, else the app's store), a page of run summaries, and one run with its steps
and verdict. The summaries are the one shape every surface shares
(``flowtrail.diagnostics.summary.run_summary``)."""

from __future__ import annotations

import base64
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from flowtrail.diagnostics.view import record_json
from flowtrail.liveness.lease import lease_state
from flowtrail.liveness.verdicts import Verdict
from flowtrail.liveness.why import explain
from flowtrail.settings import Settings
from flowtrail.store.base import Store
from flowtrail.store.records import RunFilter, RunRecord, StepRecord
from flowtrail.web.filters import Filters

# The verdicts on a non-terminal run that mean nobody is moving it forward.
STUCK = frozenset(
    {
        "queued_no_worker",
        "queued_expired",
        "queued_job_lost",
        "block_over_timeout",
        "block_slow",
        "event_loop_blocked",
        "process_gone",
        "lease_expired",
    }
)
# Verdicts asked for per list page at most (each is a few reads).
VERDICTS_PER_PAGE = 20


def utcnow() -> datetime:
    return datetime.now(UTC)


def settings_of(request: Request) -> Settings:
    found = getattr(request.app.state, "settings", None)
    return found if isinstance(found, Settings) else Settings()


@asynccontextmanager
async def reader(request: Request) -> AsyncIterator[Store]:
    """A store to read with: one of the app's reader pool when it has one."""
    pool = getattr(request.app.state, "readers", None)
    if pool is not None:
        async with pool.reader() as store:
            yield store
        return
    yield request.app.state.store


def _summary_module() -> Any:
    """``flowtrail.diagnostics.summary`` (the one summary builder), or None before it
    exists: then the record's JSON stands in for it."""
    try:
        return importlib.import_module("flowtrail.diagnostics.summary")
    except ImportError:
        return None


def summary(record: RunRecord, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """The run's summary row, as the API's list gives it."""
    module = _summary_module()
    if module is None:
        lease = lease_state(record, now, lease_seconds)
        return {
            **record_json(record, include_trace=False),
            "lease": None if lease is None else lease.to_dict(),
        }
    data: dict[str, Any] = module.run_summary(record, now=now, lease_seconds=lease_seconds)
    return data


@dataclass(slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


async def list_page(store: Store, filters: Filters, settings: Settings) -> Page:
    """One page of run summaries, newest first, each non-terminal one with its verdict
    (``why``) and a ``stuck`` flag."""
    now = utcnow()
    if hasattr(store, "list_summaries"):
        page = await store.list_summaries(filters.to_query())
        records, cursor = list(page.rows), page.next_cursor
    else:
        records, cursor = await _list_fallback(store, filters)
    rows = []
    asked = 0
    for record in records:
        row = summary(record, now, settings.lease_seconds)
        row["verdict"] = None
        if not record.status.terminal and asked < VERDICTS_PER_PAGE:
            asked += 1
            found = await explain(store, record, settings)
            row["verdict"] = found.to_dict()
        row["stuck"] = bool(row["verdict"] and row["verdict"]["verdict"] in STUCK)
        rows.append(row)
    return Page(rows, cursor)


def _cursor(record: RunRecord) -> str:
    raw = f"{record.started_at.isoformat()}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    at, _, run_id = raw.partition("|")
    return datetime.fromisoformat(at), run_id


async def _list_fallback(store: Store, filters: Filters) -> tuple[list[RunRecord], str | None]:
    """The list for a store without ``list_summaries``: filtered here."""
    status = filters.statuses[0] if len(filters.statuses) == 1 else None
    records = await store.list_runs(RunFilter(status, filters.workflow, 2000))

    def keep(r: RunRecord) -> bool:
        duration = r.duration_ms
        return (
            (not filters.statuses or r.status in filters.statuses)
            and (filters.trigger is None or r.trigger == filters.trigger)
            and (filters.since is None or r.started_at >= filters.since)
            and (filters.until is None or r.started_at < filters.until)
            and (
                filters.min_duration_ms is None
                or (duration is not None and duration >= filters.min_duration_ms)
            )
            and (filters.min_cost is None or r.cost_total >= filters.min_cost)
            and (
                filters.has_error is None
                or bool(r.error_message or r.error_block_id) is filters.has_error
            )
        )

    kept = sorted(filter(keep, records), key=lambda r: (r.started_at, r.id), reverse=True)
    if filters.cursor:
        at, run_id = _after(filters.cursor)
        kept = [r for r in kept if (r.started_at, r.id) < (at, run_id)]
    page = kept[: filters.limit]
    more = len(kept) > filters.limit
    return page, _cursor(page[-1]) if more and page else None


@dataclass(slots=True)
class RunView:
    record: RunRecord
    steps: list[StepRecord]
    verdict: Verdict | None
    detail: dict[str, Any]


async def read_run(store: Store, run_id: str, settings: Settings) -> RunView:
    """One run as the run page shows it: its record (``RunNotFoundError`` when unknown),
    its steps and, while not ended, its verdict."""
    record = await store.get_run(run_id)
    steps = await store.list_steps(record.id)
    found = None
    if not record.status.terminal:
        found = await explain(store, record, settings, steps)
    now = utcnow()
    module = _summary_module()
    if module is None:
        detail = summary(record, now, settings.lease_seconds)
    else:
        detail = module.record_detail(
            record, steps, found, now=now, lease_seconds=settings.lease_seconds
        )
    return RunView(record, steps, found, detail)
