"""``flowtrail run`` and ``flowtrail resume``: start or continue a run, follow it, summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flowtrail.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_STORE,
    STATUS_EXIT,
    DbOption,
    JsonOption,
    err,
    fail,
    guard,
    open_db,
    out,
    resolve_run_id,
    settings_for,
)
from flowtrail.cli.output import print_json, show_record
from flowtrail.cli.progress import Progress
from flowtrail.cli.queueing import enqueue
from flowtrail.cli.stopping import Stopper, resume_command
from flowtrail.diagnostics.masking import Masker
from flowtrail.diagnostics.view import record_json, unrecorded_json
from flowtrail.errors import FlowtrailError, InputError, RunStateError
from flowtrail.model.compile import compile_file
from flowtrail.model.inputs import validate_inputs
from flowtrail.model.loading import read_input
from flowtrail.queue.defaults import DEFAULT_QUEUE
from flowtrail.runner import Runner, RunReport, stored_workflow
from flowtrail.status import RunStatus
from flowtrail.store import Store


async def finish(
    report: RunReport, store: Store | None, as_json: bool, db: str | None = None
) -> int:
    data: dict[str, Any]
    if store is not None and not report.record_final:
        return await not_final(report, store, as_json)
    if store is not None:
        data = record_json(await store.get_run(report.run_id))
    else:
        data = unrecorded_json(report)
    if as_json:
        print_json(out, data)
    else:
        show_record(err, data, spans=False)
        if data["status"] == RunStatus.PAUSED.value and store is not None:
            err.print("resume it with:", highlight=False)
            err.print(f"  {resume_command(report.run_id, db)}", highlight=False, markup=False)
    return STATUS_EXIT.get(report.status, EXIT_FAILED)


async def not_final(report: RunReport, store: Store, as_json: bool) -> int:
    """The engine reached an outcome the database does not hold: say so, exit 5."""
    try:
        stored: str | None = (await store.get_run(report.run_id)).status.value
    except FlowtrailError:
        stored = None
    message = (
        f"run {report.run_id} ended {report.status.value}, but its record is not final: "
        f"{report.completion_failure or 'the terminal write failed'}. "
        + (
            f"The database still says {stored}."
            if stored
            else "The run cannot be read back from the database."
        )
    )
    if as_json:
        data = unrecorded_json(report)
        del data["status"]  # never claim a status the database does not hold
        data.update(
            record_final=False,
            engine_status=report.status.value,
            stored_status=stored,
            completion_failure=report.completion_failure,
            recorded=stored is not None,
            run_error=data["error"],
            error={"code": "record_not_final", "message": message},
        )
        print_json(out, data)
    err.print(f"[red]error[/] (record_not_final): {message}", markup=True)
    return EXIT_STORE


def run(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Workflow file (YAML or JSON).")],
    input: Annotated[
        str | None,
        typer.Option("--input", "-i", metavar="JSON", help="Run input: JSON, or @file.json."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    timeout: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Run deadline in seconds.")
    ] = None,
    no_record: Annotated[
        bool,
        typer.Option("--no-record", help="Do not write the durable record (nothing is stored)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Queue the run for a `flowtrail worker` (PostgreSQL): print its record "
            "(status queued) and exit 0 at once.",
        ),
    ] = False,
    queue_name: Annotated[
        str | None,
        typer.Option(metavar="NAME", help=f"With --queue: the queue (default {DEFAULT_QUEUE})."),
    ] = None,
    expires_in: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            metavar="SECONDS",
            help="With --queue: a run no worker claims by then ends failed, path expired "
            "(default FLOWTRAIL_QUEUE_TTL_SECONDS, 86400).",
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="With --queue: follow the run to its end; exit as `run` does."),
    ] = False,
) -> None:
    """Run a workflow, showing live progress on stderr, then a summary (or, with
    --queue, queue it for a worker)."""
    if queue:
        _refuse_with_queue(no_record=no_record, timeout=timeout, as_json=as_json)
        raise typer.Exit(
            guard(
                lambda: enqueue(
                    file,
                    input,
                    db,
                    as_json,
                    queue_name=queue_name or DEFAULT_QUEUE,
                    expires_in=expires_in,
                    wait=wait,
                ),
                as_json,
            )
        )
    for given, flag in (
        (queue_name, "--queue-name"),
        (expires_in, "--expires-in"),
        (wait, "--wait"),
    ):
        if given:
            fail(EXIT_INVALID, InputError(f"{flag} goes with --queue"), as_json)

    async def go() -> int:
        with Stopper() as stopper:
            workflow = compile_file(file)
            if no_record and workflow.can_pause:
                raise InputError(
                    f"--no-record: block '{workflow.pause_points[0]}' can pause the run for "
                    "input, and a run without a record could never be resumed; run it "
                    "without --no-record"
                )
            values = read_input(input)
            settings = settings_for(db).with_overrides(run_timeout=timeout)
            # bad input opens no database; a secret used as an input key is not echoed
            validate_inputs(workflow.definition, values, Masker(settings.masked_secrets).text)
            store = None if no_record else await open_db(settings, create=True, db=db)
            try:
                stopper.check()
                observers = [] if quiet else [Progress(err)]
                runner = Runner(settings, store)
                handle = stopper.attach(
                    await runner.start(workflow, values, trigger="cli", observers=observers)
                )
                err.print(f"[dim]run {handle.run_id}[/]", markup=True)
                report = await handle.result()
                return await finish(report, store, as_json, db)
            finally:
                if store is not None:
                    await store.close()

    raise typer.Exit(guard(go, as_json))


def _refuse_with_queue(*, no_record: bool, timeout: float | None, as_json: bool) -> None:
    """Options of a run in this process that a queued run cannot honour."""
    if no_record:
        fail(
            EXIT_INVALID,
            InputError("--no-record: a queued run lives in its record; it cannot go without"),
            as_json,
        )
    if timeout is not None:
        fail(
            EXIT_INVALID,
            InputError(
                "--timeout applies to a run in this process; a queued run keeps its "
                "workflow's `timeout:` (or the worker's FLOWTRAIL_RUN_TIMEOUT)"
            ),
            as_json,
        )


def resume(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="A paused run (a unique id prefix will do).")
    ],
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON",
            help="JSON given to the waiting block(s), or @file.json.",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Continue a paused run exactly where it stopped."""

    async def go() -> int:
        with Stopper() as stopper:
            values = read_input(input)
            settings = settings_for(db)
            store = await open_db(settings, db=db)
            try:
                full_id = await resolve_run_id(store, run_id)
                record = await store.get_run(full_id)
                if record.status is not RunStatus.PAUSED:
                    raise RunStateError(f"run {full_id} is {record.status.value}, not paused")
                workflow = await stored_workflow(store, record)
                stopper.check()
                runner = Runner(settings, store)
                handle = stopper.attach(
                    await runner.resume(
                        workflow, full_id, values, observers=[] if quiet else [Progress(err)]
                    )
                )
                report = await handle.result()
                return await finish(report, store, as_json, db)
            finally:
                await store.close()

    raise typer.Exit(guard(go, as_json))
