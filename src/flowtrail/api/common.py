"""What the route modules share: the run id path parameter, the settings, the problem
responses every run route declares, and how a run's answer is built."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Path, Request
from fastapi.responses import JSONResponse

from flowtrail.api.problems import responses
from flowtrail.api.reading import reading, run_detail
from flowtrail.diagnostics.view import record_json
from flowtrail.runner import RunHandle
from flowtrail.settings import Settings
from flowtrail.store import Store

RunId = Path(
    description="The run's full id.", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"
)
RUN_ERRORS = responses(400, 404, 422)
STEER_ERRORS = {**RUN_ERRORS, **responses(403, 409, 413)}
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted: the run goes on; its record is at `Location`."},
}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def location(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}"


def accepted(data: dict[str, Any], run_id: str) -> JSONResponse:
    """202 with the run's record so far and where to follow it."""
    return JSONResponse(data, status_code=202, headers={"Location": location(run_id)})


def keep(request: Request, handle: RunHandle) -> None:
    """The server holds the runs it executes until they end (stopped with it on
    shutdown)."""
    handles: dict[str, RunHandle] = request.app.state.handles
    handles[handle.run_id] = handle
    handle.task.add_done_callback(lambda _: handles.pop(handle.run_id, None))


async def answer(request: Request, handle: RunHandle, wait: bool) -> JSONResponse:
    """For a run this server started or resumed: 202 with its record so far, or
    (``wait``) 200 with its record once it has ended or paused."""
    keep(request, handle)
    if wait:
        # shielded: a client that goes away stops waiting, not the run
        await asyncio.shield(handle.task)
    async with reading(request) as store:
        if wait:
            return JSONResponse(await detail_of(request, store, handle.run_id))
        record = await store.get_run(handle.run_id)
    return accepted(record_json(record, include_trace=False), handle.run_id)


async def detail_of(request: Request, store: Store, run_id: str) -> dict[str, Any]:
    """The run's record as ``GET /api/v1/runs/{id}`` answers it."""
    from flowtrail.liveness.why import explain

    settings = settings_of(request)
    record = await store.get_run(run_id)
    steps = await store.list_steps(record.id)
    found = None
    if not record.status.terminal:
        found = await explain(store, record, settings, steps)
    return run_detail(record, steps, found, settings)
