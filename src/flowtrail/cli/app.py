"""The ``flowtrail`` command: the Typer app, its commands (one module per group), ``main``.

Each command enters the async core through one ``asyncio.run``; ``cli.common`` holds the
exit codes and the error handling they share.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from types import FrameType
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from flowtrail import otel
from flowtrail.cli import (
    authoring,
    pruning,
    queueing,
    records,
    retrying,
    running,
    serving,
    sweeping,
)
from flowtrail.cli.common import out


def _untyped(params: list[Any]) -> list[Any]:
    """Help shows no type tag (``<str>``, ``<bool>``, ``<path>``) after an argument or a
    flag: it reads like a value to type. Options that take a value keep their metavar."""
    for param in params:
        if isinstance(param, TyperArgument) or getattr(param, "is_flag", False):
            setattr(param, "display_type_rich", _no_type)  # noqa: B010 - per instance
    return params


def _no_type(ctx: Any) -> None:
    return None


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:  # typer's vendored click types
        return _untyped(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:  # typer's vendored click types
        return _untyped(super().get_params(ctx))


def _version() -> str:
    try:
        return package_version("flowtrail")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        out.print(f"flowtrail {_version()}")
        raise typer.Exit(0)


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="flowtrail: workflows whose every run leaves a durable trail.",
)
db_app = typer.Typer(cls=Group, no_args_is_help=True, help="Database migrations.")
app.add_typer(db_app, name="db")


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the flowtrail version and exit.",
        ),
    ] = False,
) -> None:
    """flowtrail: workflows whose every run leaves a durable trail."""


def _command(name: str | None = None) -> Callable[[Callable[..., Any]], Any]:
    return app.command(name, cls=Command)


_command()(running.run)
_command()(running.resume)
_command()(retrying.retry)
_command()(records.show)
_command("runs")(records.list_runs)
_command()(records.cancel)
_command()(queueing.worker)
_command()(records.why)
_command()(sweeping.sweep)
_command()(serving.serve)
_command("prune")(pruning.prune_runs)
_command()(authoring.validate)
_command()(authoring.schema)
db_app.command("upgrade", cls=Command)(authoring.db_upgrade)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM outside a run behaves like Ctrl-C (a run command installs its own handler
    # that cancels the run instead of raising).
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app(prog_name="flowtrail")
    except SystemExit as exc:
        otel.close()  # the spans still queued go out first (bounded), whichever way we exit
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
