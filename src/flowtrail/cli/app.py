"""``flowtrail`` commands. Each enters the async core through one ``asyncio.run``.

Exit codes: 0 completed (or success), 1 the run failed, 2 invalid workflow, input or
usage (nothing was run), 3 the run paused for input, 4 unknown run or a run in the wrong
state, 5 the database could not be used, 130 cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from flowtrail.cli.output import dump, runs_table, show_record
from flowtrail.cli.progress import Progress
from flowtrail.diagnostics.view import record_json, unrecorded_json
from flowtrail.errors import (
    FlowtrailError,
    InputError,
    RunNotFoundError,
    RunStateError,
    StoreError,
    WorkflowError,
)
from flowtrail.model.compile import compile_definition, compile_file
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.graph import Workflow
from flowtrail.runner import RunHandle, Runner, RunReport
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore, Store, open_store
from flowtrail.store.records import RunFilter

EXIT_FAILED, EXIT_INVALID, EXIT_PAUSED, EXIT_NOT_FOUND, EXIT_STORE, EXIT_CANCELLED = (
    1,
    2,
    3,
    4,
    5,
    130,
)
STATUS_EXIT = {
    RunStatus.COMPLETED: 0,
    RunStatus.FAILED: EXIT_FAILED,
    RunStatus.CANCELLED: EXIT_CANCELLED,
    RunStatus.PAUSED: EXIT_PAUSED,
    RunStatus.CRASHED: EXIT_FAILED,
}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="flowtrail: workflows whose every run leaves a durable trail.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
app.add_typer(db_app, name="db")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path or "
        "postgresql://…); default FLOWTRAIL_DATABASE_URL "
        "or sqlite:///.flowtrail/flowtrail.db",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
T = TypeVar("T")


def _fail(code: int, error: FlowtrailError | str, as_json: bool = False) -> NoReturn:
    message = str(error)
    kind = error.code if isinstance(error, FlowtrailError) else "error"
    if as_json:
        out.print(dump({"error": {"code": kind, "message": message}}))
    err.print(f"[red]error[/] ({kind}): {message}", markup=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], Coroutine[Any, Any, T]], as_json: bool = False) -> T:
    """Run a coroutine, turning flowtrail errors into exit codes and clear messages."""
    try:
        return asyncio.run(fn())
    except (WorkflowError, InputError) as exc:
        _fail(EXIT_INVALID, exc, as_json)
    except (RunNotFoundError, RunStateError) as exc:
        _fail(EXIT_NOT_FOUND, exc, as_json)
    except StoreError as exc:
        _fail(EXIT_STORE, exc, as_json)
    except FlowtrailError as exc:
        _fail(EXIT_INVALID, exc, as_json)


def _settings(db: str | None) -> Settings:
    return Settings.from_env(database_url=db)


async def _open(settings: Settings) -> SqlStore:
    """Connect. The embedded SQLite default migrates itself; a shared PostgreSQL database
    is migrated on purpose, with ``flowtrail db upgrade``."""
    store = open_store(settings.database_url)
    await store.open()
    try:
        if store.backend == "sqlite":
            await store.migrate()
        elif pending := await store.pending_migrations():
            raise StoreError(
                f"the database schema is not up to date ({len(pending)} migration(s) pending: "
                f"{', '.join(pending)}); run `flowtrail db upgrade`"
            )
    except BaseException:
        await store.close()
        raise
    return store


def _read_input(value: str | None) -> Any:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read input file {value[1:]}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--input is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc


async def _follow(handle: RunHandle) -> RunReport:
    """Await a run; Ctrl-C (or SIGTERM) cancels it cleanly instead of killing the process."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handle.cancel, f"cli:{sig.name}")
    try:
        return await handle.result()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def _finish(report: RunReport, store: Store | None, as_json: bool) -> Awaitable[int]:
    async def go() -> int:
        data: dict[str, Any]
        if store is not None:
            data = record_json(await store.get_run(report.run_id))
        else:
            data = unrecorded_json(report)
        if as_json:
            out.print(dump(data))
        else:
            show_record(err, data, spans=False)
        return STATUS_EXIT.get(report.status, EXIT_FAILED)

    return go()


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Workflow file (YAML or JSON).")],
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Run input: JSON, or @file.json.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    timeout: Annotated[float | None, typer.Option(help="Run deadline in seconds.")] = None,
    no_record: Annotated[
        bool,
        typer.Option("--no-record", help="Do not write the durable record (nothing is stored)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Run a workflow, showing live progress on stderr, then a summary."""

    async def go() -> int:
        workflow = compile_file(file)
        values = _read_input(input)
        settings = _settings(db).with_overrides(run_timeout=timeout)
        store = None if no_record else await _open(settings)
        try:
            observers = [] if quiet else [Progress(err)]
            runner = Runner(settings, store)
            handle = await runner.start(workflow, values, trigger="cli", observers=observers)
            err.print(f"[dim]run {handle.run_id}[/]", markup=True)
            report = await _follow(handle)
            return await _finish(report, store, as_json)
        finally:
            if store is not None:
                await store.close()

    raise typer.Exit(_guard(go, as_json))


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="A paused run.")],
    input: Annotated[
        str | None,
        typer.Option("--input", "-i", help="JSON given to the waiting block(s), or @file.json."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Continue a paused run exactly where it stopped."""

    async def go() -> int:
        values = _read_input(input)
        settings = _settings(db)
        store = await _open(settings)
        try:
            record = await store.get_run(run_id)
            if record.status is not RunStatus.PAUSED:
                raise RunStateError(f"run {run_id} is {record.status.value}, not paused")
            workflow = await _stored_workflow(store, record.snapshot_hash, record.pause_state)
            runner = Runner(settings, store)
            handle = await runner.resume(
                workflow, run_id, values, observers=[] if quiet else [Progress(err)]
            )
            report = await _follow(handle)
            return await _finish(report, store, as_json)
        finally:
            await store.close()

    raise typer.Exit(_guard(go, as_json))


async def _stored_workflow(store: Store, snapshot_hash: str, pause_state: Any) -> Workflow:
    """The exact definition the run started with, from its snapshot."""
    document = await store.get_snapshot(snapshot_hash)
    if document is None:
        raise RunStateError(f"the workflow snapshot {snapshot_hash} is missing")
    source = pause_state.get("source") if isinstance(pause_state, dict) else None
    definition = WorkflowDefinition.model_validate(document)
    return compile_definition(definition, source=Path(source) if source else None)


@app.command()
def show(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One run: status, finalization path, markers, error, cost and span tree."""

    async def go() -> int:
        store = await _open(_settings(db))
        try:
            data = record_json(await store.get_run(run_id))
        finally:
            await store.close()
        if as_json:
            out.print(dump(data))
        else:
            show_record(out, data)
        return 0

    raise typer.Exit(_guard(go, as_json))


@app.command("runs")
def list_runs(
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
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
        store = await _open(_settings(db))
        try:
            rows = await store.list_runs(RunFilter(wanted, workflow, limit))
        finally:
            await store.close()
        data = [record_json(r) for r in rows]
        if as_json:
            out.print(dump(data))
        else:
            out.print(runs_table(data))
        return 0

    raise typer.Exit(_guard(go, as_json))


@app.command()
def cancel(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Request cancellation. A running run stops within about one poll interval (0.5 s by
    default); a paused run is cancelled at once."""

    async def go() -> int:
        store = await _open(_settings(db))
        try:
            outcome = await store.request_cancel(run_id, "cli")
        finally:
            await store.close()
        data = {
            "id": run_id,
            "status": outcome.status.value,
            "requested": outcome.requested,
            "finalized": outcome.finalized,
        }
        if as_json:
            out.print(dump(data))
        elif outcome.finalized:
            err.print(f"run {run_id} cancelled")
        elif outcome.requested:
            err.print(f"cancellation of run {run_id} requested; it stops at its next check")
        else:
            err.print(f"run {run_id} already ended: {outcome.status.value}")
        return 0

    raise typer.Exit(_guard(go, as_json))


@app.command()
def validate(file: Path, as_json: JsonOption = False) -> None:
    """Check a workflow file without running it."""
    try:
        workflow = compile_file(file)
    except WorkflowError as exc:
        if as_json:
            out.print(
                dump(
                    {
                        "valid": False,
                        "problems": [
                            {
                                "code": p.code,
                                "message": p.message,
                                "block_id": p.block_id,
                                "line": p.line,
                                "file": p.file,
                            }
                            for p in exc.problems
                        ],
                    }
                )
            )
        for problem in exc.problems:
            err.print(f"[red]✗[/] {problem}", markup=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        out.print(
            dump(
                {
                    "valid": True,
                    "workflow": workflow.name,
                    "definition_hash": workflow.definition_hash,
                }
            )
        )
    else:
        err.print(f"[green]✓[/] {file}: workflow '{workflow.name}' is valid", markup=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the workflow format."""
    out.print(dump(WorkflowDefinition.model_json_schema(by_alias=True)))


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply pending migrations."""

    async def go() -> int:
        store = open_store(_settings(db).database_url)
        await store.open()
        try:
            applied = await store.migrate()
            version = await store.schema_version()
        finally:
            await store.close()
        err.print(f"applied {len(applied)} migration(s); schema version {version}")
        return 0

    raise typer.Exit(_guard(go))


def main() -> None:
    try:
        app(prog_name="flowtrail")
    except SystemExit as exc:
        # A sync function block that ignored cancellation or its timeout still holds a
        # thread; the run is already finalized, so do not wait for it at exit.
        if any(
            t.is_alive() and not t.daemon
            for t in threading.enumerate()
            if t is not threading.main_thread()
        ):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
