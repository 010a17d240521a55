"""``flowtrail show``, ``runs`` and ``cancel``: reading and steering stored runs."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from flowtrail.cli.common import (
    EXIT_NOT_FOUND,
    DbOption,
    JsonOption,
    err,
    guard,
    open_db,
    out,
    parse_status,
    resolve_run_id,
    settings_for,
)
from flowtrail.cli.output import (
    print_json,
    runs_table,
    short_id_length,
    show_record,
    show_verdict,
    span_tree,
)
from flowtrail.diagnostics.summary import record_detail, run_summary
from flowtrail.diagnostics.view import steps_tree
from flowtrail.errors import InputError
from flowtrail.liveness.sweeper import cancel_if_gone, export_ended
from flowtrail.liveness.why import explain
from flowtrail.status import RunStatus
from flowtrail.store import RunRecord, Store
from flowtrail.store.common import utcnow
from flowtrail.store.records import CancelOutcome, RunQuery

RunIdArgument = Annotated[
    str, typer.Argument(metavar="RUN_ID", help="A run id, or a unique prefix of one.")
]


def show(run_id: RunIdArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One run: status, finalization path, markers, error, cost and span tree (for a run
    still going, the steps so far, with each loop's and parallel's progress)."""

    async def go() -> int:
        settings = settings_for(db)
        store = await open_db(settings, db=db)
        try:
            record = await store.get_run(await resolve_run_id(store, run_id))
            steps = await store.list_steps(record.id)
            found = None
            if not record.status.terminal:
                found = await explain(store, record, settings, steps)
        finally:
            await store.close()
        data = record_detail(
            record, steps, found, now=utcnow(), lease_seconds=settings.lease_seconds
        )
        if as_json:
            print_json(out, data)
            return 0
        show_record(out, data)
        if not record.status.terminal and not _has_trace(data) and steps:
            # Still going, no stored trace yet: the steps so far are the span tree.
            out.print("[dim]steps so far:[/]", markup=True)
            tree, hidden = span_tree(steps_tree(record.workflow_name, steps))
            out.print(tree)
            if hidden:
                out.print(f"[dim]… {hidden} more steps (--json for all)[/]", markup=True)
        return 0

    raise typer.Exit(guard(go, as_json))


def _has_trace(data: dict[str, Any]) -> bool:
    stored = data.get("execution_data")
    return isinstance(stored, dict) and bool(stored.get("trace"))


def list_runs(
    status: Annotated[
        list[str] | None,
        typer.Option(metavar="STATUS", help="Only runs with this status (repeat for several)."),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only runs of this workflow.")
    ] = None,
    trigger: Annotated[
        str | None, typer.Option(metavar="TRIGGER", help="Only runs started so (cli, python…).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Only runs started at or after WHEN: ISO-8601 (UTC unless it says) or an "
            "age (30m, 2h, 7d).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Only runs started before WHEN (as --since)."),
    ] = None,
    min_duration: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="Only runs that took at least this long (500ms, 2s, 5m)."
        ),
    ] = None,
    min_cost: Annotated[
        float | None, typer.Option(min=0, metavar="USD", help="Only runs that cost this much.")
    ] = None,
    has_error: Annotated[
        bool | None,
        typer.Option(
            "--has-error/--no-error", help="Only runs with an error / only runs without one."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="At most this many runs.")
    ] = 20,
    cursor: Annotated[
        str | None,
        typer.Option(metavar="CURSOR", help="The next page: the cursor the last page gave."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recent runs, newest first. When there are more, the cursor of the next page is
    printed on stderr (next_cursor: …): pass it back with --cursor."""

    async def go() -> int:
        now = utcnow()
        query = RunQuery(
            statuses=tuple(parse_status(s) for s in status or ()),
            workflow_name=workflow,
            trigger=trigger,
            started_since=None if since is None else parse_when(since, now, "--since"),
            started_until=None if until is None else parse_when(until, now, "--until"),
            min_duration_ms=None if min_duration is None else parse_duration_ms(min_duration),
            min_cost=min_cost,
            has_error=has_error,
            limit=limit,
            cursor=cursor,
        )
        settings = settings_for(db)
        store = await open_db(settings, db=db)
        try:
            page = await store.list_summaries(query)
            short = {} if as_json else await short_ids(store, [r.id for r in page.rows])
        finally:
            await store.close()
        now = utcnow()
        data = [run_summary(r, now=now, lease_seconds=settings.lease_seconds) for r in page.rows]
        if as_json:
            print_json(out, data)
        else:
            out.print(runs_table(data, short, out.width))
        if page.next_cursor is not None:
            err.print(f"next_cursor: {page.next_cursor}", highlight=False, markup=False)
        return 0

    raise typer.Exit(guard(go, as_json))


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(text: str, option: str = "--min-duration") -> int:
    """``500ms``, ``2s``, ``1.5m``, ``3h``, ``7d``, ``1w``; a bare number is seconds."""
    try:
        return max(0, round(float(text) * 1000))
    except ValueError:
        pass
    match = _AGE.match(text)
    if not match:
        raise InputError(
            f"{option}: '{text}' is not a duration (a number of seconds, or 500ms, 2s, 5m, "
            "3h, 7d, 1w)"
        )
    return round(float(match.group(1)) * _UNIT_MS[match.group(2)])


def parse_when(text: str, now: datetime, option: str) -> datetime:
    """An instant: ISO-8601 (a date, or a date and time; UTC unless it gives an offset),
    or an age (``30m``, ``2h``, ``7d``: that long before ``now``)."""
    if _AGE.match(text):
        return now - timedelta(milliseconds=parse_duration_ms(text, option))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{option}: '{text}' is neither an ISO-8601 time (2026-01-31, "
            "2026-01-31T12:00:00Z) nor an age (30m, 2h, 7d)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def why(run_id: RunIdArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Why is this run not moving? One verdict (queued with no worker, running a block
    past its timeout, event loop blocked, waiting for input, lease expired, crashed, …)
    with its evidence: timestamps, heartbeat age, worker, markers, event-loop lag."""

    async def go() -> int:
        settings = settings_for(db)
        store = await open_db(settings, db=db)
        try:
            full_id = await resolve_run_id(store, run_id)
            found = await explain(store, await store.get_run(full_id), settings)
        finally:
            await store.close()
        if as_json:
            print_json(out, found.to_dict())
        else:
            show_verdict(out, found.to_dict())
        return 0

    raise typer.Exit(guard(go, as_json))


SHORT_ID = 10  # never shorter than this: a short id stays unique as runs accumulate


async def short_ids(store: Store, ids: list[str]) -> dict[str, str]:
    """One prefix length for the table, long enough that every shown id is unique in the
    whole database (so it can be typed back: ``show``, ``cancel`` and ``resume`` take it)."""
    length = SHORT_ID
    for run_id in ids:
        neighbours = await store.run_id_neighbours(run_id)
        length = max(length, short_id_length(run_id, neighbours, SHORT_ID))
    return {run_id: run_id[:length] for run_id in ids}


def cancel(run_id: RunIdArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Request cancellation: a paused or queued run is cancelled at once, a running one
    stops at its next check (about 0.5 s), and one whose process is gone (on this host)
    is ended now. Exits 4 when the run had already ended."""

    async def go() -> int:
        settings = settings_for(db)
        # No reaping first: a dead run the user asks to cancel ends cancelled, not crashed.
        store = await open_db(settings, db=db, reap=False)
        try:
            full_id = await resolve_run_id(store, run_id)
            outcome = await store.request_cancel(full_id, "cli")
            ended = None
            if outcome.finalized:
                await export_ended(store, full_id, settings)
            if outcome.requested and not outcome.finalized:
                ended = await cancel_if_gone(store, full_id, settings)
        finally:
            await store.close()
        code, message, executing = cancel_report(full_id, outcome, ended, settings.cancel_grace)
        worker = outcome.worker
        data = {
            "id": full_id,
            "status": (ended.status if ended else outcome.status).value,
            "requested": outcome.requested,
            "finalized": outcome.finalized
            or (ended is not None and ended.status is RunStatus.CANCELLED),
            "worker": None if worker is None else {"host": worker.host, "pid": worker.pid},
            "executing": executing,
            "message": message,
        }
        if as_json:
            print_json(out, data)
        err.print(message)
        return code

    raise typer.Exit(guard(go, as_json))


def cancel_report(
    run_id: str, outcome: CancelOutcome, ended: RunRecord | None, grace: float
) -> tuple[int, str, bool | None]:
    """(exit code, what is true, whether a process executes the run: None = unknown).
    ``ended``: the row after the request ended a run whose process was gone."""
    if outcome.finalized:
        return 0, f"run {run_id} cancelled", False
    if not outcome.requested:
        return (
            EXIT_NOT_FOUND,
            f"run {run_id} already ended: {outcome.status.value}; nothing was changed",
            False,
        )
    worker = outcome.worker
    where = f" (pid {worker.pid} on {worker.host})" if worker else ""
    if ended is not None and ended.status is RunStatus.CANCELLED:
        return (
            0,
            f"run {run_id} cancelled: its process{where} was gone, so nothing could stop "
            "it; the request ended it now",
            False,
        )
    if ended is not None and ended.status.terminal:
        return (
            EXIT_NOT_FOUND,
            f"run {run_id} had already ended: {ended.status.value} (its process{where} "
            "was gone); the cancel request was recorded and changed nothing else",
            False,
        )
    if worker is not None and worker.host != socket.gethostname():
        return (
            0,
            f"cancellation of run {run_id} requested; it runs on {worker.host} (pid "
            f"{worker.pid}), which this host cannot check: its process stops it at its next "
            f"check, or, if that process is gone, a sweeper ends it cancelled once the "
            f"request is {grace:g} s old",
            None,
        )
    return (
        0,
        f"cancellation of run {run_id} requested; the process executing it{where} stops "
        "it at its next check",
        None if worker is None else True,
    )
