"""``flowtrail sweep``: end, explained, the runs nobody else will end."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from contextlib import suppress
from typing import Annotated

import typer
from rich.markup import escape

from flowtrail.cli.common import DbOption, JsonOption, err, guard, open_db, out, settings_for
from flowtrail.cli.output import print_json
from flowtrail.liveness.sweeper import (
    Recover,
    Sweeper,
    SweepReport,
    recover_crashed_runs,
    run_sweeper,
)
from flowtrail.settings import Settings
from flowtrail.store import Store
from flowtrail.store.common import redact_url


def sweep(
    db: DbOption = None,
    once: Annotated[bool, typer.Option("--once", help="Make one pass, then exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """End the runs nobody else will: a running run whose lease expired (crashed), one
    whose cancel went unanswered past the grace (cancelled, forced), a queued run past its
    time-to-live (failed, expired). Sweeps every FLOWTRAIL_SWEEP_SECONDS until Ctrl-C or
    SIGTERM, or once with --once. Only one sweeper acts at a time."""

    async def go() -> int:
        settings = settings_for(db)
        store = await open_db(settings, db=db, reap=False)  # the sweeper does it all
        try:
            recover = recovery(store.url, settings)
            if once:
                report = await Sweeper(store, settings).sweep_once()
                show(report, as_json, pretty=True)
                if recover is not None:
                    await recover_crashed_runs(store, report, recover)
                return 0
            err.print(
                f"sweeping {escape(redact_url(settings.database_url))} every "
                f"{settings.sweep_seconds:g} s (lease {settings.lease_seconds:g} s, cancel "
                f"grace {settings.cancel_grace:g} s); Ctrl-C or SIGTERM stops",
                highlight=False,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            try:
                await run_sweeper(
                    store, settings, stop, lambda r: show(r, as_json), recover=recover
                )
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)
            return 0
        finally:
            await store.close()

    raise typer.Exit(guard(go, as_json))


def recovery(url: str, settings: Settings) -> Recover | None:
    """Automatic recovery of the queued runs a pass ends ``crashed`` (their workflow's
    ``recovery:``); queued runs exist only on PostgreSQL."""
    if not url.startswith(("postgresql://", "postgres://")):
        return None
    from flowtrail.queue.recovery import recover_crashed  # only a queue pays the import

    def recover(store: Store, run_id: str) -> Awaitable[object]:
        return recover_crashed(store, run_id, settings)

    return recover


def show(report: SweepReport, as_json: bool, *, pretty: bool = False) -> None:
    """One pass: JSON on stdout (one object; one line per pass in a loop), or a line per
    run ended on stderr. A loop says nothing about a pass that ended nothing."""
    if as_json:
        print_json(out, report.to_dict(), indent=2 if pretty else None)
    for action in report.actions:
        err.print(
            f"run {action.run_id}: {action.status.value} ({action.action}): "
            f"{escape(action.message)}",
            highlight=False,
        )
    for job in report.jobs:
        err.print(
            f"queue job {job.job_id} of run {job.run_id} (which had ended): {job.action}",
            highlight=False,
        )
    if pretty and not report.actions and not report.jobs:
        err.print(report.summary(), highlight=False)
