"""What every command shares: the consoles, exit codes, the ``--db``/``--json`` options,
and one way to turn flowtrail errors into a clear message and an exit code.

Exit codes: 0 completed (or success), 1 the run failed, 2 invalid workflow, input or
usage (nothing was run), 3 the run paused for input, 4 unknown run or a run in the wrong
state, 5 the database could not be used, 130 cancelled or interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from flowtrail.cli.output import print_json
from flowtrail.errors import (
    AmbiguousRunIdError,
    DatabaseNotFoundError,
    FlowtrailError,
    InputError,
    RunNotFoundError,
    RunStateError,
    StoreError,
    WorkflowError,
)
from flowtrail.liveness.sweeper import Sweeper
from flowtrail.settings import DEFAULT_DATABASE_PATH, Settings
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore, Store, open_store
from flowtrail.store.common import redact_url

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


def _console(stderr: bool) -> Console:
    """Lines are never hard-wrapped: on a terminal the terminal folds them, and output to
    a file or a pipe (logs, CI) keeps each message on one line. Tables still fit a
    terminal, or ``COLUMNS`` when it is set."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = UNBOUNDED_WIDTH
    return console


UNBOUNDED_WIDTH = 100_000
err = _console(stderr=True)
out = _console(stderr=False)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Database URL (sqlite:///path or "
        "postgresql://…); default FLOWTRAIL_DATABASE_URL "
        "or sqlite:///.flowtrail/flowtrail.db",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (human-readable text goes to stderr).")
]
T = TypeVar("T")
log = logging.getLogger("flowtrail.cli")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived before a run started: nothing was run."""

    code = "interrupted"


def fail(code: int, error: FlowtrailError | Interrupted | str, as_json: bool = False) -> NoReturn:
    message = str(error)
    kind = getattr(error, "code", "error")
    if as_json:
        data: dict[str, Any] = {"code": kind, "message": message}
        if isinstance(error, AmbiguousRunIdError):
            data["candidates"] = error.candidates
        print_json(out, {"error": data})
    err.print(f"[red]error[/] ({kind}): {escape(message)}", markup=True)
    raise typer.Exit(code)


def guard(fn: Callable[[], Coroutine[Any, Any, T]], as_json: bool = False) -> T:
    """Run a coroutine, turning flowtrail errors into exit codes and clear messages."""
    try:
        return asyncio.run(fn())
    except (WorkflowError, InputError) as exc:
        fail(EXIT_INVALID, exc, as_json)
    except (RunNotFoundError, AmbiguousRunIdError, RunStateError) as exc:
        fail(EXIT_NOT_FOUND, exc, as_json)
    except StoreError as exc:
        fail(EXIT_STORE, exc, as_json)
    except FlowtrailError as exc:
        fail(EXIT_INVALID, exc, as_json)
    except Interrupted as exc:
        fail(EXIT_CANCELLED, exc, as_json)
    except KeyboardInterrupt:
        fail(EXIT_CANCELLED, Interrupted("interrupted"), as_json)


def settings_for(db: str | None) -> Settings:
    return Settings.from_env(database_url=db)


async def open_db(
    settings: Settings, *, create: bool = False, db: str | None = None, reap: bool = True
) -> SqlStore:
    """Connect. The embedded SQLite default migrates itself; a shared PostgreSQL database
    is migrated on purpose, with ``flowtrail db upgrade``. Only ``run`` may create the
    SQLite file (``create``): a read never makes a new, empty database. ``db`` is the
    ``--db`` the command was given, repeated in the upgrade hint.

    Then (``reap``) the runs of this host whose process is gone and whose lease expired
    are ended ``crashed``: one indexed read, so every command can afford it, and an
    embedded database needs no sweeper to explain a killed ``flowtrail run``."""
    store = open_store(settings.database_url, create=create)
    try:
        await store.open()
    except DatabaseNotFoundError as exc:
        if db is None and not os.environ.get("FLOWTRAIL_DATABASE_URL"):
            raise DatabaseNotFoundError(
                f"no flowtrail database found: no {DEFAULT_DATABASE_PATH.parent} folder in "
                f"{Path.cwd()} or any folder above it (`flowtrail run` creates one in the "
                "current folder; --db or FLOWTRAIL_DATABASE_URL name another database)"
            ) from exc
        raise
    try:
        if store.backend == "sqlite":
            await store.migrate()
        elif pending := await store.pending_migrations():
            raise StoreError(
                f"the database schema is not up to date ({len(pending)} migration(s) pending: "
                f"{', '.join(pending)}); run `{upgrade_command(db)}`"
            )
        if reap:
            await _reap(store, settings)
    except BaseException:
        await store.close()
        raise
    return store


async def _reap(store: SqlStore, settings: Settings) -> None:
    try:
        report = await Sweeper(store, settings).reap_here()
    except StoreError as exc:  # a read still reads: the next command tries again
        log.warning("could not check for runs whose process is gone: %s", exc)
        return
    for action in report.actions:
        err.print(
            f"[dim]run {action.run_id} ended {action.status.value}: its process is gone "
            "(it had stopped without ending the run)[/]",
            markup=True,
        )


def upgrade_command(db: str | None) -> str:
    """The command that migrates the database this command used (``--db`` repeated)."""
    return f"flowtrail db upgrade --db {redact_url(db)}" if db else "flowtrail db upgrade"


SHOWN_CANDIDATES = 10


async def resolve_run_id(store: Store, given: str) -> str:
    """The run a full id or a unique prefix of one names, as git does with commits."""
    found = await store.run_ids_with_prefix(given, SHOWN_CANDIDATES + 1)
    if given in found:
        return given
    if len(found) == 1:
        return found[0]
    if not found:
        raise RunNotFoundError(given, redact_url(store.url))
    more = len(found) > SHOWN_CANDIDATES
    raise AmbiguousRunIdError(given, found[:SHOWN_CANDIDATES], more)


def parse_status(text: str) -> RunStatus:
    """A ``--status`` value; ``InputError`` listing the statuses otherwise."""
    try:
        return RunStatus(text)
    except ValueError:
        raise InputError(
            f"unknown status '{text}' (one of: {', '.join(s.value for s in RunStatus)})"
        ) from None
