"""What the route modules share: the run id path parameter, the settings, the problem
responses every run route declares, and how a run's answer is built."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Path, Request
from fastapi.responses import JSONResponse

from flowtrail.api.problems import responses
from flowtrail.api.reading import read, run_detail
from flowtrail.diagnostics.summary import record_json
from flowtrail.liveness.why import explain
from flowtrail.runner import RunHandle
from flowtrail.settings import Settings
from flowtrail.store import RunRecord, Store

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


def so_far(request: Request, record: RunRecord) -> dict[str, Any]:
    """A run's record without its trace: what a 202 carries."""
    lease_seconds = settings_of(request).lease_seconds
    return record_json(record, lease_seconds=lease_seconds, include_trace=False)


async def answer(request: Request, handle: RunHandle, wait: bool) -> JSONResponse:
    """For a run this server started or resumed: 202 with its record so far, or
    (``wait``) 200 with its record once it has ended or paused."""
    keep(request, handle)
    if wait:
        # shielded: a client that goes away stops waiting, not the run
        await asyncio.shield(handle.task)
        return JSONResponse(await read(request, lambda s: detail_of(request, s, handle.run_id)))
    record = await read(request, lambda store: store.get_run(handle.run_id))
    return accepted(so_far(request, record), handle.run_id)


async def detail_of(request: Request, store: Store, run_id: str) -> dict[str, Any]:
    """The run's record as ``GET /api/v1/runs/{id}`` answers it."""
    settings = settings_of(request)
    record = await store.get_run(run_id)
    steps = await store.list_steps(record.id)
    found = None
    if not record.status.terminal:
        found = await explain(store, record, settings, steps)
    return run_detail(record, steps, found, settings)
