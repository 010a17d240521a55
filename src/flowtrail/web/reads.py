"""What the pages read, through ``request.app.state``: a reader store (the pool when the
app has one, else the app's store), a page of run summaries, and one run with its steps
and verdict. The summaries are the one shape every surface shares
(``flowtrail.diagnostics.summary.run_summary``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from flowtrail.diagnostics.summary import record_detail, run_summary
from flowtrail.liveness.verdicts import Verdict
from flowtrail.liveness.why import explain
from flowtrail.settings import Settings
from flowtrail.store.base import Store
from flowtrail.store.records import RunRecord, StepRecord
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


def summary(record: RunRecord, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """The run's summary row, as the API's list and ``flowtrail runs --json`` give it."""
    return run_summary(record, now=now, lease_seconds=lease_seconds)


@dataclass(slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


async def list_page(store: Store, filters: Filters, settings: Settings) -> Page:
    """One page of run summaries, newest first, each non-terminal one with its verdict
    (``why``) and a ``stuck`` flag."""
    now = utcnow()
    page = await store.list_summaries(filters.to_query())
    records, cursor = list(page.rows), page.next_cursor
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
    detail = record_detail(record, steps, found, now=utcnow(), lease_seconds=settings.lease_seconds)
    return RunView(record, steps, found, detail)
