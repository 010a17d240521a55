"""``flowtrail show``, ``runs`` and ``cancel``: reading and steering stored runs."""

from __future__ import annotations

from typing import Annotated

import typer

from flowtrail.cli.common import (
    DbOption,
    JsonOption,
    err,
    guard,
    open_db,
    out,
    resolve_run_id,
    settings_for,
)
from flowtrail.cli.output import dump, runs_table, short_id_length, show_record
from flowtrail.diagnostics.view import record_json
from flowtrail.errors import InputError
from flowtrail.status import RunStatus
from flowtrail.store import Store
from flowtrail.store.records import RunFilter

RunIdArgument = Annotated[
    str, typer.Argument(metavar="RUN_ID", help="A run id, or a unique prefix of one.")
]


def show(run_id: RunIdArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One run: status, finalization path, markers, error, cost and span tree."""

    async def go() -> int:
        store = await open_db(settings_for(db), db=db)
        try:
            data = record_json(await store.get_run(await resolve_run_id(store, run_id)))
        finally:
            await store.close()
        if as_json:
            out.print(dump(data))
        else:
            show_record(out, data)
        return 0

    raise typer.Exit(guard(go, as_json))


def list_runs(
    status: Annotated[
        str | None, typer.Option(metavar="STATUS", help="Only runs with this status.")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only runs of this workflow.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="At most this many runs.")
    ] = 20,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recent runs, newest first."""

    async def go() -> int:
        try:
            wanted = RunStatus(status) if status else None
        except ValueError:
            raise InputError(
                f"unknown status '{status}' (one of: {', '.join(s.value for s in RunStatus)})"
            ) from None
        store = await open_db(settings_for(db), db=db)
        try:
            rows = await store.list_runs(RunFilter(wanted, workflow, limit))
            short = {} if as_json else await short_ids(store, [r.id for r in rows])
        finally:
            await store.close()
        data = [record_json(r) for r in rows]
        if as_json:
            out.print(dump(data))
        else:
            out.print(runs_table(data, short, out.width))
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
    """Request cancellation: a paused run is cancelled at once, a running one stops at its
    next check (about 0.5 s)."""

    async def go() -> int:
        store = await open_db(settings_for(db), db=db)
        try:
            full_id = await resolve_run_id(store, run_id)
            outcome = await store.request_cancel(full_id, "cli")
        finally:
            await store.close()
        data = {
            "id": full_id,
            "status": outcome.status.value,
            "requested": outcome.requested,
            "finalized": outcome.finalized,
        }
        if as_json:
            out.print(dump(data))
        elif outcome.finalized:
            err.print(f"run {full_id} cancelled")
        elif outcome.requested:
            err.print(f"cancellation of run {full_id} requested; it stops at its next check")
        else:
            err.print(f"run {full_id} already ended: {outcome.status.value}")
        return 0

    raise typer.Exit(guard(go, as_json))
