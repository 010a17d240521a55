"""``flowtrail run`` and ``flowtrail resume``: start or continue a run, follow it, summarise."""

from __future__ import annotations

import asyncio
import shlex
import signal
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from flowtrail.cli.common import (
    EXIT_FAILED,
    EXIT_STORE,
    STATUS_EXIT,
    DbOption,
    Interrupted,
    JsonOption,
    err,
    guard,
    open_db,
    out,
    resolve_run_id,
    settings_for,
)
from flowtrail.cli.output import dump, show_record
from flowtrail.cli.progress import Progress
from flowtrail.diagnostics.masking import Masker
from flowtrail.diagnostics.view import record_json, unrecorded_json
from flowtrail.errors import FlowtrailError, InputError, RunStateError
from flowtrail.model.compile import compile_file
from flowtrail.model.inputs import validate_inputs
from flowtrail.model.loading import read_input
from flowtrail.runner import RunHandle, Runner, RunReport, stored_workflow
from flowtrail.status import RunStatus
from flowtrail.store import Store
from flowtrail.store.common import redact_url

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    """Ctrl-C and SIGTERM for the whole life of a run command.

    Installed before anything else, so a signal never kills the process: before the run
    starts it means "start nothing" (``Interrupted``); once a run exists it cancels it,
    which records the request, finalizes the run ``cancelled`` and ends with the summary.
    The handlers run on the event loop, so they act while a plain-Python block holds a
    thread and while an ``async`` block awaits.
    """

    def __init__(self) -> None:
        self.handle: RunHandle | None = None
        self.signal: str | None = None

    def __enter__(self) -> Stopper:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            with suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.signal = self.signal or sig.name
        if self.handle is not None:
            self.handle.cancel(f"cli:{self.signal}")

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal came before the run started."""
        if self.signal is not None:
            raise Interrupted(f"{self.signal} received before the run started; nothing was run")

    def attach(self, handle: RunHandle) -> RunHandle:
        self.handle = handle
        if self.signal is not None:  # it came while the run row was being written
            handle.cancel(f"cli:{self.signal}")
        return handle


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
        out.print(dump(data))
    else:
        show_record(err, data, spans=False)
        if data["status"] == RunStatus.PAUSED.value and store is not None:
            err.print("resume it with:", highlight=False)
            err.print(f"  {resume_command(report.run_id, db)}", highlight=False, markup=False)
    return STATUS_EXIT.get(report.status, EXIT_FAILED)


def resume_command(run_id: str, db: str | None) -> str:
    """The command that resumes a paused run, ``--db`` repeated when one was given; the
    input is a placeholder to replace with the JSON the waiting block expects (and a
    password in the URL, shown as ``***``)."""
    parts = ["flowtrail", "resume", run_id]
    if db:
        parts += ["--db", shlex.quote(redact_url(db))]  # a password is not echoed
    return " ".join([*parts, "--input", "'<JSON>'"])


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
        out.print(dump(data))
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
) -> None:
    """Run a workflow, showing live progress on stderr, then a summary."""

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
