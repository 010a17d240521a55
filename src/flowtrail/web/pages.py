"""The pages: the runs list (``/``), a run (``/runs/{id}``), and the HTML fragments the
pages poll to stay live (``/fragments/...``). Server-rendered; ``static/app.js`` only
polls fragments, ticks relative times and drives the keyboard."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from flowtrail.errors import BadCursorError, RunNotFoundError
from flowtrail.status import RETRYABLE, FinalizationPath, RunStatus
from flowtrail.store.base import Store
from flowtrail.web import waterfall
from flowtrail.web.filters import STATUSES, FilterError, Filters, parse
from flowtrail.web.reads import STUCK, RunView, list_page, read_run, reader, settings_of, utcnow

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

# How often the pages poll, in seconds (only while the tab is visible).
LIST_POLL_SECONDS = 5
RUN_POLL_SECONDS = 2


def _money(value: Any) -> str:
    if not value:
        return "—"
    cost = float(value)
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


def _ago(iso: str | None, now: datetime | None = None) -> str:
    when = waterfall.parse_ts(iso)
    if when is None:
        return "—"
    seconds = max(0.0, ((now or utcnow()) - when).total_seconds())
    return waterfall.fmt_ms(seconds * 1000) + " ago"


def _between(earlier: str | None, later: str | None) -> str | None:
    """The time from one ISO timestamp to another, for people (``None`` if either is)."""
    start, end = waterfall.parse_ts(earlier), waterfall.parse_ts(later)
    if start is None or end is None:
        return None
    return waterfall.fmt_ms(max(0.0, (end - start).total_seconds() * 1000))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


templates.env.filters.update(
    ms=waterfall.fmt_ms,
    money=_money,
    ago=_ago,
    pretty=_json,
    between=_between,
    short=lambda s: str(s)[:12],
)
templates.env.globals.update(
    STATUSES=STATUSES,
    stuck_verdicts=STUCK,
    path_docs={p.value: (p.__doc__ or "") for p in FinalizationPath},
)


def request_role(request: Request) -> str | None:
    """``operator``, ``read`` or ``None`` (no valid token), as the API's auth decides
    (a token in ``Authorization: Bearer`` or the ``flowtrail_token`` cookie; with no tokens
    configured everyone is an operator)."""
    from flowtrail.api.auth import caller_role
    from flowtrail.api.problems import Problem

    try:
        return caller_role(request).value
    except Problem:
        return None


def _denied(request: Request) -> Response | None:
    if request_role(request) is not None:
        return None
    return templates.TemplateResponse(request, "login.html", {"title": "Sign in"}, status_code=401)


SHORT_ID = 12


def distinct_prefix_length(ids: list[str], minimum: int = SHORT_ID) -> int:
    """How much of each id the list shows: ``minimum`` characters, or more when two ids on
    the page share that prefix (runs started in the same millisecond do), so no two rows
    read the same."""
    ordered = sorted(ids)
    length = minimum
    for a, b in itertools.pairwise(ordered):
        shared = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
        length = max(length, shared + 1)
    return length


def _filters(request: Request) -> tuple[Filters, str | None]:
    query = request.query_params
    try:
        return parse(dict(query), query.getlist("status")), None
    except FilterError as exc:
        return Filters(), str(exc)


async def _rows_context(
    request: Request, filters: Filters, problem: str | None = None
) -> dict[str, Any]:
    async with reader(request) as store:
        try:
            page = await list_page(store, filters, settings_of(request))
        except BadCursorError as exc:  # a hand-edited or stale link: start from the top
            problem = problem or str(exc)
            filters = replace(filters, cursor=None)
            page = await list_page(store, filters, settings_of(request))
    older = filters.url(cursor=page.next_cursor) if page.next_cursor else None
    return {
        "rows": page.rows,
        "id_length": distinct_prefix_length([row["id"] for row in page.rows]),
        "older": older,
        "filters": filters,
        "now": utcnow(),
        "problem": problem,
    }


@router.get("/", response_class=HTMLResponse)
async def runs_page(request: Request) -> Response:
    if (denied := _denied(request)) is not None:
        return denied
    filters, problem = _filters(request)
    context = await _rows_context(request, filters, problem)
    filters = context["filters"]
    context.update(
        title="Runs",
        poll_seconds=LIST_POLL_SECONDS,
        fragment_url=filters.url("/fragments/runs", cursor=filters.cursor),
    )
    return templates.TemplateResponse(request, "runs.html", context)


@router.get("/fragments/runs", response_class=HTMLResponse)
async def runs_fragment(request: Request) -> Response:
    if (denied := _denied(request)) is not None:
        return denied
    filters, _ = _filters(request)
    context = await _rows_context(request, filters)
    return templates.TemplateResponse(request, "_rows.html", context)


def _trace(view: RunView) -> dict[str, Any] | None:
    """What the waterfall draws: the stored trace, or for a run still going with steps
    recorded, the steps so far (its trace is only written at its end or pause)."""
    from flowtrail.diagnostics.view import steps_tree

    record = view.record
    data = record.execution_data if isinstance(record.execution_data, dict) else {}
    stored = data.get("trace")
    if record.status in (RunStatus.RUNNING, RunStatus.QUEUED) and view.steps:
        tree = steps_tree(record.workflow_name, view.steps)
        tree["started_at"] = record.started_at.isoformat()
        return waterfall.settle(tree)
    if isinstance(stored, dict):
        return stored
    return None


_INPUT_FIELD = r"\b{}\.input\.([A-Za-z_][A-Za-z0-9_]*)"


def resume_fields(snapshot: Any, waiting: list[str]) -> list[str]:
    """The fields of the resume input the workflow reads (``approve.input.by`` → ``by``),
    in the order they first appear: the resume form's inputs."""
    text = json.dumps(snapshot) if snapshot is not None else ""
    fields: dict[str, None] = {}
    for block in waiting:
        for match in re.finditer(_INPUT_FIELD.format(re.escape(block)), text):
            fields[match.group(1)] = None
    return list(fields)


async def _run_context(
    request: Request, store: Store, run_id: str, *, everything: bool
) -> dict[str, Any]:
    settings = settings_of(request)
    view = await read_run(store, run_id, settings)
    record = view.record
    now = utcnow()
    trace = _trace(view)
    fall = waterfall.build(
        trace,
        record.started_at,
        now,
        summarize=not everything,
        max_rows=waterfall.MAX_ROWS_ALL if everything else waterfall.MAX_ROWS,
    )
    detail = view.detail
    error = detail.get("error") or None
    error_key = None
    if error and error.get("block_id"):
        error_key = fall.keys_by_block.get(error["block_id"])
    error_key = error_key or fall.error_key
    operator = request_role(request) == "operator"
    paused = detail.get("paused") or None
    fields: list[str] = []
    if operator and record.status is RunStatus.PAUSED and paused:
        fields = resume_fields(
            await store.get_snapshot(record.snapshot_hash), list(paused["waiting_blocks"])
        )
    truncation = (
        record.execution_data.get("truncation") if isinstance(record.execution_data, dict) else None
    )
    return {
        "run": detail,
        "record": record,
        "verdict": None if view.verdict is None else view.verdict.to_dict(),
        "fall": fall,
        "error": error,
        "error_key": error_key,
        "terminal": record.status.terminal,
        "operator": operator,
        "can_cancel": not record.status.terminal,
        "can_resume": record.status is RunStatus.PAUSED,
        "can_retry": record.status in RETRYABLE and not record.retried_by,
        "resume_fields": fields,
        "everything": everything,
        "truncation": truncation,
        "now": now,
        "poll_seconds": RUN_POLL_SECONDS,
        "title": f"{record.status.value} · {record.workflow_name} · {record.id[:12]}",
    }


def _not_found(request: Request, run_id: str) -> Response:
    return templates.TemplateResponse(
        request,
        "not_found.html",
        {"title": "Run not found", "run_id": run_id},
        status_code=404,
    )


async def _run_response(request: Request, run_id: str, everything: bool, page: str) -> Response:
    """A run rendered with ``page`` (the whole page, or the fragment a poll swaps in)."""
    if (denied := _denied(request)) is not None:
        return denied
    try:
        async with reader(request) as store:
            context = await _run_context(request, store, run_id, everything=everything)
    except RunNotFoundError:
        return _not_found(request, run_id)
    return templates.TemplateResponse(request, page, context)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, all: int = 0) -> Response:
    return await _run_response(request, run_id, bool(all), "run.html")


@router.get("/fragments/runs/{run_id}", response_class=HTMLResponse)
async def run_fragment(request: Request, run_id: str, all: int = 0) -> Response:
    return await _run_response(request, run_id, bool(all), "_run_body.html")


@router.get("/fragments/runs/{run_id}/span", response_class=HTMLResponse)
async def span_fragment(request: Request, run_id: str, key: str = "") -> Response:
    """One span's details (inputs, output, error, tokens…), fetched when it is clicked:
    the waterfall itself carries only the skeleton."""
    if (denied := _denied(request)) is not None:
        return denied
    try:
        async with reader(request) as store:
            view = await read_run(store, run_id, settings_of(request))
    except RunNotFoundError:
        return _not_found(request, run_id)
    span = waterfall.find(_trace(view), key)
    step = None
    if span is not None and span.get("position") is not None:
        step = next(
            (
                s
                for s in view.steps
                if s.position == span["position"] and s.block_id == span.get("block_id")
            ),
            None,
        )
    context = {"span": span, "step": step, "key": key, "run_id": run_id}
    return templates.TemplateResponse(request, "_span.html", context)
