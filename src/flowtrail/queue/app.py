"""The Procrastinate app flowtrail uses, with its one task: execute a queued run.

A job's only argument is the run id; everything else (the definition, the input) is on
the run row. The task hands the id to the ``RunExecutor`` the worker put in the job
context, so the app itself holds no state and the enqueuing side can use the same app.
"""

from __future__ import annotations

from typing import Protocol

import psycopg_pool
from procrastinate import App, JobContext, PsycopgConnector

from flowtrail.queue.defaults import DEFAULT_QUEUE, TASK_NAME, require_postgres

CONTEXT_KEY = "flowtrail"


class RunTask(Protocol):
    """What the task calls: ``execute.RunExecutor`` in a worker."""

    async def execute(self, run_id: str, job_id: int | None) -> None: ...


def make_app(url: str, *, connections: int = 1, pooled: bool = True) -> App:
    """A Procrastinate app on the flowtrail database at ``url`` (open it with
    ``async with app.open_async()``). ``pooled=False`` opens a connection per query: the
    enqueuing side defers one job and needs nothing kept open."""
    require_postgres(url)
    connector = PsycopgConnector(
        conninfo=url,
        min_size=1 if pooled else 0,
        max_size=max(1, connections),
        timeout=10.0,
        kwargs={"application_name": "flowtrail-queue"},
        pool_factory=psycopg_pool.AsyncConnectionPool
        if pooled
        else psycopg_pool.AsyncNullConnectionPool,
    )
    app = App(connector=connector)

    @app.task(name=TASK_NAME, queue=DEFAULT_QUEUE, pass_context=True)
    async def execute_run(context: JobContext, run_id: str) -> None:
        executor: RunTask = context.additional_context[CONTEXT_KEY]
        await executor.execute(run_id, context.job.id)

    return app
