"""flowtrail: a workflow engine whose every run leaves a durable trail.

The public Python API::

    import flowtrail

    workflow = flowtrail.load_workflow("examples/quickstart/quickstart.yaml")
    report = flowtrail.run(workflow, {"count": 3})          # embedded SQLite by default
    print(report.status, report.output)
    flowtrail.get_run(report.run_id)                        # the stored record
    flowtrail.resume(run_id, {"approved": True})            # continue a paused run
    flowtrail.cancel(run_id)                                # durable cancel request
    flowtrail.retry(run_id)                                 # a crashed run, continued
    flowtrail.submit(workflow, {"count": 3})                # queue it for a worker
                                                            # (PostgreSQL)
    flowtrail.why(run_id).summary                           # why is it not moving?
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from flowtrail.engine.blocks import Prices, Reported
from flowtrail.engine.current import CurrentStep, current_step
from flowtrail.engine.events import Event, Tokens
from flowtrail.engine.observers import Observer
from flowtrail.errors import (
    BlockError,
    FlowtrailError,
    InputError,
    QueueError,
    RunNotFoundError,
    RunStateError,
    StoreError,
    WorkflowError,
)
from flowtrail.liveness.sweeper import cancel_if_gone, export_ended
from flowtrail.liveness.why import Verdict
from flowtrail.liveness.why import why as _why
from flowtrail.model.compile import compile_definition, compile_file
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.graph import Workflow
from flowtrail.queue.defaults import DEFAULT_QUEUE, require_postgres
from flowtrail.runner import RunHandle, Runner, RunReport, stored_workflow
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, RunStatus
from flowtrail.store import CancelOutcome, RunRecord, SqlStore, Store, open_store

load_workflow = compile_file


async def run_async(
    workflow: Workflow,
    inputs: Any = None,
    *,
    settings: Settings | None = None,
    record: bool = True,
    observers: Sequence[Observer] = (),
) -> RunReport:
    """Run a workflow to the end with its durable record (``record=False``: none)."""
    settings = settings or Settings.from_env()
    if not record:
        return await Runner(settings).run(workflow, inputs, observers=observers)
    store = open_store(settings.database_url)
    await store.open()
    try:
        await store.migrate()
        return await Runner(settings, store).run(workflow, inputs, observers=observers)
    finally:
        await store.close()


def run(workflow: Workflow, inputs: Any = None, **kwargs: Any) -> RunReport:
    """The synchronous door: ``asyncio.run(run_async(...))``."""
    return asyncio.run(run_async(workflow, inputs, **kwargs))


@asynccontextmanager
async def _existing_store(settings: Settings, *, migrate: bool) -> AsyncIterator[SqlStore]:
    """The database of ``settings``, which must already exist (``DatabaseNotFoundError``
    otherwise: reading never creates one). SQLite migrates itself when ``migrate``."""
    store = open_store(settings.database_url, create=False)
    await store.open()
    try:
        if migrate and store.backend == "sqlite":
            await store.migrate()
        yield store
    finally:
        await store.close()


async def resume_async(
    run_id: str,
    resume_input: Any = None,
    *,
    workflow: Workflow | None = None,
    settings: Settings | None = None,
    observers: Sequence[Observer] = (),
) -> RunReport:
    """Continue a paused run to its end (or its next pause). Without ``workflow`` the
    definition stored with the run is used, as ``flowtrail resume`` does."""
    settings = settings or Settings.from_env()
    async with _existing_store(settings, migrate=True) as store:
        if workflow is None:
            workflow = await stored_workflow(store, await store.get_run(run_id))
        runner = Runner(settings, store)
        handle = await runner.resume(workflow, run_id, resume_input, observers=observers)
        return await handle.result()


async def retry_async(
    run_id: str,
    *,
    from_block: str | None = None,
    settings: Settings | None = None,
    observers: Sequence[Observer] = (),
) -> RunReport:
    """Retry a crashed, failed or cancelled run as a new run (linked both ways, its
    ``attempt`` one more) and run it to its end: blocks that completed in the old run are
    reused, not run again; ``from_block`` runs that block and everything downstream of
    it again. ``RunStateError`` when the run cannot be retried (it did not end, it
    completed, or it was retried already); ``InputError`` for an unknown ``from_block``."""
    settings = settings or Settings.from_env()
    async with _existing_store(settings, migrate=True) as store:
        runner = Runner(settings, store)
        handle = await runner.retry(run_id, from_block=from_block, observers=observers)
        return await handle.result()


def retry(run_id: str, **kwargs: Any) -> RunReport:
    """The synchronous ``retry_async``."""
    return asyncio.run(retry_async(run_id, **kwargs))


def resume(run_id: str, resume_input: Any = None, **kwargs: Any) -> RunReport:
    """The synchronous ``resume_async``. Raises ``RunStateError`` when the run is not
    paused, ``RunNotFoundError`` for an unknown id."""
    return asyncio.run(resume_async(run_id, resume_input, **kwargs))


async def submit_async(
    workflow: Workflow,
    inputs: Any = None,
    *,
    settings: Settings | None = None,
    queue_name: str = DEFAULT_QUEUE,
    expires_in: float | None = None,
) -> RunRecord:
    """Queue a run for a ``flowtrail worker`` and return its record at once (status
    ``queued``; follow it with ``get_run``). Needs PostgreSQL, migrated with ``flowtrail
    db upgrade`` (``QueueError`` for another database). The whole definition, child
    workflows included, is stored with the run: the worker runs exactly this. A run no
    worker claims within ``expires_in`` seconds (default ``settings.queue_ttl_seconds``,
    24 h) ends ``failed`` with path ``expired``."""
    settings = settings or Settings.from_env()
    require_postgres(settings.database_url)
    # Imported here: ``import flowtrail`` does not pay for importing Procrastinate.
    from flowtrail.queue.submit import submit_run

    async with _existing_store(settings, migrate=False) as store:
        if pending := await store.pending_migrations():
            raise StoreError(
                f"the database schema is not up to date ({', '.join(pending)} pending); "
                "run `flowtrail db upgrade`"
            )
        return await submit_run(
            store,
            workflow,
            inputs,
            settings=settings,
            queue_name=queue_name,
            expires_in=expires_in,
        )


def submit(workflow: Workflow, inputs: Any = None, **kwargs: Any) -> RunRecord:
    """The synchronous ``submit_async``."""
    return asyncio.run(submit_async(workflow, inputs, **kwargs))


async def cancel_async(
    run_id: str, *, settings: Settings | None = None, by: str = "api"
) -> CancelOutcome:
    """Record a durable cancel request: a paused or queued run is cancelled at once, the
    process executing a running run stops it at its next check (or, when that process is
    known gone, the request ends the run now), an ended run is left alone
    (``outcome.requested`` is then False)."""
    settings = settings or Settings.from_env()
    async with _existing_store(settings, migrate=True) as store:
        outcome = await store.request_cancel(run_id, by)
        if outcome.finalized:
            await export_ended(store, run_id, settings)
        if outcome.requested and not outcome.finalized:
            ended = await cancel_if_gone(store, run_id, settings)
            if ended is not None and ended.status.terminal:
                cancelled = ended.status is RunStatus.CANCELLED
                return CancelOutcome(ended.status, True, cancelled, outcome.worker)
        return outcome


def cancel(run_id: str, **kwargs: Any) -> CancelOutcome:
    """The synchronous ``cancel_async``."""
    return asyncio.run(cancel_async(run_id, **kwargs))


async def get_run_async(run_id: str, *, settings: Settings | None = None) -> RunRecord:
    """The stored record of one run. ``RunNotFoundError`` names the database searched."""
    settings = settings or Settings.from_env()
    async with _existing_store(settings, migrate=True) as store:
        return await store.get_run(run_id)


def get_run(run_id: str, **kwargs: Any) -> RunRecord:
    """The synchronous ``get_run_async``."""
    return asyncio.run(get_run_async(run_id, **kwargs))


async def why_async(
    run_id: str, *, settings: Settings | None = None, database_url: str | None = None
) -> Verdict:
    """Why is this run not moving? One ``Verdict`` (``verdict``, ``summary``,
    ``evidence``), as ``flowtrail why`` gives it. ``database_url`` overrides the
    settings' database; ``RunNotFoundError`` for an unknown id."""
    settings = settings or Settings.from_env()
    if database_url is not None:
        settings = dataclasses.replace(settings, database_url=database_url)
    async with _existing_store(settings, migrate=True) as store:
        return await _why(store, run_id, settings)


def why(run_id: str, **kwargs: Any) -> Verdict:
    """The synchronous ``why_async``."""
    return asyncio.run(why_async(run_id, **kwargs))


__all__ = [
    "BlockError",
    "CancelOutcome",
    "CurrentStep",
    "Event",
    "FinalizationPath",
    "FlowtrailError",
    "InputError",
    "Observer",
    "Prices",
    "QueueError",
    "Reported",
    "RunHandle",
    "RunNotFoundError",
    "RunRecord",
    "RunReport",
    "RunStateError",
    "RunStatus",
    "Runner",
    "Settings",
    "Store",
    "StoreError",
    "Tokens",
    "Verdict",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowError",
    "cancel",
    "cancel_async",
    "compile_definition",
    "compile_file",
    "current_step",
    "get_run",
    "get_run_async",
    "load_workflow",
    "open_store",
    "resume",
    "resume_async",
    "retry",
    "retry_async",
    "run",
    "run_async",
    "submit",
    "submit_async",
    "why",
    "why_async",
]
