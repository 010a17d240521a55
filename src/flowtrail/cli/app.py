"""The ``flowtrail`` command: the Typer app, its commands (one module per group), ``main``.

Each command enters the async core through one ``asyncio.run``; ``cli.common`` holds the
exit codes and the error handling they share.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

import typer

from flowtrail.cli import authoring, records, running

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="flowtrail: workflows whose every run leaves a durable trail.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
app.add_typer(db_app, name="db")

app.command()(running.run)
app.command()(running.resume)
app.command()(records.show)
app.command("runs")(records.list_runs)
app.command()(records.cancel)
app.command()(authoring.validate)
app.command()(authoring.schema)
db_app.command("upgrade")(authoring.db_upgrade)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM outside a run behaves like Ctrl-C (a run command installs its own handler
    # that cancels the run instead of raising).
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
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
