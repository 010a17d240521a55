"""``flowtrail run --queue`` and ``flowtrail worker``: queued runs on PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from flowtrail.cli.common import (
    EXIT_FAILED,
    STATUS_EXIT,
    DbOption,
    Interrupted,
    err,
    guard,
    open_db,
    out,
    settings_for,
)
from flowtrail.cli.output import print_json, show_record
from flowtrail.cli.stopping import SIGNALS, Stopper, resume_command
from flowtrail.cli.sweeping import recovery
from flowtrail.diagnostics.masking import Masker
from flowtrail.diagnostics.view import record_json
from flowtrail.liveness.sweeper import sweep_beside
from flowtrail.model.compile import compile_file
from flowtrail.model.inputs import validate_inputs
from flowtrail.model.loading import read_input
from flowtrail.queue.defaults import DEFAULT_GRACE_SECONDS, DEFAULT_QUEUE, require_postgres
from flowtrail.status import RunStatus
from flowtrail.store import RunRecord, Store

# How often ``--wait`` reads the run row.
WAIT_POLL_SECONDS = 0.25


async def enqueue(
    file: Path,
    input: str | None,
    db: str | None,
    as_json: bool,
    *,
    queue_name: str,
    expires_in: float | None,
    wait: bool,
) -> int:
    """Validate, write the run ``queued``, defer its job; print the record. With ``wait``,
    follow it to its end and exit like ``run`` does."""
    with Stopper() as stopper:
        workflow = compile_file(file)
        values = read_input(input)
        settings = settings_for(db)
        require_postgres(settings.database_url)  # before any database is opened
        # bad input opens no database; a secret used as an input key is not echoed
        validate_inputs(workflow.definition, values, Masker(settings.masked_secrets).text)
        store = await open_db(settings, db=db)
        try:
            stopper.check()
            # Imported here: Procrastinate costs every other command ~0.1 s of start-up.
            from flowtrail.queue.submit import submit_run

            record = await submit_run(
                store,
                workflow,
                values,
                settings=settings,
                queue_name=queue_name,
                expires_in=expires_in,
                trigger="cli",
            )
            if not wait:
                _print(record, as_json, db)
                err.print(
                    f"[dim]queued on '{queue_name}'; a `flowtrail worker` will run it[/]",
                    markup=True,
                )
                return 0
            err.print(f"[dim]run {record.id} queued; waiting for a worker[/]", markup=True)
            final = await _follow(store, record.id, stopper)
            _print(final, as_json, db)
            return STATUS_EXIT.get(final.status, EXIT_FAILED)
        finally:
            await store.close()


async def _follow(store: Store, run_id: str, stopper: Stopper) -> RunRecord:
    """Read the row until the run has ended or paused. A signal stops the waiting, not
    the run (a worker executes it)."""
    while True:
        record = await store.get_run(run_id)
        if record.status.terminal or record.status is RunStatus.PAUSED:
            return record
        if stopper.signal is not None:
            raise Interrupted(
                f"{stopper.signal} received: stopped waiting; run {run_id} is "
                f"{record.status.value} and goes on (`flowtrail cancel {run_id}` stops it)"
            )
        await asyncio.sleep(WAIT_POLL_SECONDS)


def _print(record: RunRecord, as_json: bool, db: str | None) -> None:
    data: dict[str, Any] = record_json(record)
    if as_json:
        print_json(out, data)
        return
    show_record(err, data, spans=False)
    if record.status is RunStatus.PAUSED:
        err.print("resume it with:", highlight=False)
        err.print(f"  {resume_command(record.id, db)}", highlight=False, markup=False)


def worker(
    db: DbOption = None,
    concurrency: Annotated[
        int, typer.Option(min=1, metavar="N", help="Runs executed at once by this worker.")
    ] = 1,
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            metavar="NAME",
            help=f"A queue to take runs from (repeat for several; default {DEFAULT_QUEUE}).",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="On SIGTERM or Ctrl-C, how long runs in flight may take to end before "
            "they are handed back (ended crashed, cause worker_shutdown).",
        ),
    ] = DEFAULT_GRACE_SECONDS,
) -> None:
    """Execute queued runs (PostgreSQL) until SIGTERM or Ctrl-C; a second signal hands
    back the runs in flight at once."""

    async def go() -> int:
        settings = settings_for(db)
        require_postgres(settings.database_url)
        store = await open_db(settings, db=db)
        try:
            from flowtrail.queue.worker import QueueWorker, WorkerOptions  # as in enqueue

            options = WorkerOptions(concurrency, tuple(queue or (DEFAULT_QUEUE,)), grace)
            # Every worker sweeps (one at a time across them: the sweeper's lock), and
            # recovers the queued runs the sweeper ends crashed.
            recover = recovery(settings.database_url, settings)
            runner = QueueWorker(
                store, settings, options, [lambda: sweep_beside(settings, recover)]
            )
            loop = asyncio.get_running_loop()
            for sig in SIGNALS:
                with suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, runner.stop)
            try:
                await runner.run()
            finally:
                for sig in SIGNALS:
                    with suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)
        finally:
            await store.close()
        return 0

    _log_to_stderr()
    raise typer.Exit(guard(go))


def _log_to_stderr() -> None:
    """A worker says what it does on stderr: flowtrail at INFO, Procrastinate's own
    per-job chatter only from WARNING."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
