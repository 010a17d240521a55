"""``flowtrail retry``: a crashed, failed or cancelled run again, as a new run linked to
it that reuses what completed."""

from __future__ import annotations

from typing import Annotated

import typer

from flowtrail.cli.common import (
    DbOption,
    JsonOption,
    err,
    guard,
    open_db,
    resolve_run_id,
    settings_for,
)
from flowtrail.cli.progress import Progress
from flowtrail.cli.running import finish
from flowtrail.cli.stopping import Stopper
from flowtrail.runner import Runner


def retry(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID", help="A crashed, failed or cancelled run (a unique id prefix)."
        ),
    ],
    from_block: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="BLOCK",
            help="Run this block and everything downstream of it again (by default only "
            "what did not complete runs).",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Retry a run as a new run of the same definition and input: blocks that completed
    are reused (not run again), the rest runs; exit codes as for `run`. A block that was
    running when its process died runs again."""

    async def go() -> int:
        with Stopper() as stopper:
            settings = settings_for(db)
            store = await open_db(settings, db=db)
            try:
                full_id = await resolve_run_id(store, run_id)
                stopper.check()
                runner = Runner(settings, store)
                handle = stopper.attach(
                    await runner.retry(
                        full_id,
                        from_block=from_block,
                        trigger="cli",
                        observers=[] if quiet else [Progress(err)],
                    )
                )
                err.print(f"[dim]run {handle.run_id} (a retry of {full_id})[/]", markup=True)
                report = await handle.result()
                return await finish(report, store, as_json, db)
            finally:
                await store.close()

    raise typer.Exit(guard(go, as_json))
