"""The run list: ``GET /api/v1/runs``, filtered, newest first, keyset-paged, lean rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from flowtrail.api.auth import Reader
from flowtrail.api.common import settings_of
from flowtrail.api.problems import responses
from flowtrail.api.reading import read
from flowtrail.diagnostics.summary import run_summary
from flowtrail.status import RunStatus
from flowtrail.store.common import utcnow
from flowtrail.store.records import RunQuery

router = APIRouter(tags=["runs"])
MAX_LIMIT = 500


def _aware(when: datetime | None) -> datetime | None:
    """A time given without a zone is UTC (as every time flowtrail writes)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


@router.get("/runs", summary="The runs, newest first", responses=responses(400, 422))
async def list_runs(
    request: Request,
    _: Reader,
    status: Annotated[
        list[RunStatus],
        Query(description="Only runs with one of these statuses (repeat it for several)."),
    ] = [],  # noqa: B006 - FastAPI copies a query default
    workflow: Annotated[
        str | None, Query(max_length=200, description="Only runs of this workflow.")
    ] = None,
    trigger: Annotated[
        str | None,
        Query(max_length=50, description="Only runs started this way: cli, api, queue, retry…"),
    ] = None,
    since: Annotated[
        datetime | None,
        Query(description="Only runs started at or after this time (ISO 8601; UTC if no zone)."),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Only runs started before this time.")
    ] = None,
    min_duration_ms: Annotated[
        int | None,
        Query(ge=0, le=2**53, description="Only runs that took at least this long."),
    ] = None,
    min_cost: Annotated[
        float | None, Query(ge=0, le=1e12, description="Only runs that cost at least this (USD).")
    ] = None,
    has_error: Annotated[
        bool | None, Query(description="true: only runs with an error; false: only without.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=1000, description="`next_cursor` of the previous page, unchanged."),
    ] = None,
) -> dict[str, Any]:
    """One page of runs, newest first (by start, then id), each as its summary row (the
    rows of ``flowtrail runs --json``: never the trace, input or output). ``next_cursor``
    gives the next page (``null`` on the last); pages never shift when runs start
    meanwhile. 400 ``bad_cursor`` for a cursor no page gave out."""
    query = RunQuery(
        statuses=tuple(dict.fromkeys(status)),
        workflow_name=workflow,
        trigger=trigger,
        started_since=_aware(since),
        started_until=_aware(until),
        min_duration_ms=min_duration_ms,
        min_cost=min_cost,
        has_error=has_error,
        limit=limit,
        cursor=cursor,
    )
    page = await read(request, lambda store: store.list_summaries(query))
    now = utcnow()
    lease_seconds = settings_of(request).lease_seconds
    return {
        "runs": [run_summary(row, now=now, lease_seconds=lease_seconds) for row in page.rows],
        "next_cursor": page.next_cursor,
    }
