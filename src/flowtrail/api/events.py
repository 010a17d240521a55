"""A run's live events as server-sent events (``text/event-stream``).

The server reads the run's row every ``poll_seconds`` (0.5 s), and its steps when the row
says they changed, and sends what changed: ``status`` (the run's record without its
trace, steps and output), ``step`` (one step, when it starts, moves on or ends) and, once
the run has ended, ``end`` (the record) and the stream closes. Events carry state, not
deltas: the first ones after connecting give the whole current state, so a client that
reconnects (``Last-Event-ID``) is whole again at once; event ids keep counting up from the
one it last saw.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from flowtrail.api.auth import Reader
from flowtrail.api.common import RUN_ERRORS, RunId, settings_of
from flowtrail.api.problems import from_error
from flowtrail.api.reading import read
from flowtrail.diagnostics.summary import record_json, step_json
from flowtrail.errors import FlowtrailError
from flowtrail.store import Store
from flowtrail.store.records import RunRecord, StepRecord

router = APIRouter(tags=["runs"])
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
# One event, as OpenAPI 3.1 describes the items of a text/event-stream.
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string", "enum": ["status", "step", "end", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer"},
    },
}
# Fields that change on every heartbeat: a status event is sent when anything else does.
_TICKING = ("heartbeat_at", "lease_expires_at", "updated_at", "loop_lag_ms", "lease")


def _frame(event: str, event_id: int, data: Any) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), default=str)
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n".encode()


def _status(record: RunRecord, lease_seconds: float) -> dict[str, Any]:
    data = record_json(record, lease_seconds=lease_seconds, include_trace=False)
    data.pop("output", None)
    data.pop("input", None)
    return data


def _step_key(step: StepRecord) -> tuple[str, str, int]:
    return (step.position, step.block_id, step.epoch)


def _step_state(step: StepRecord) -> tuple[Any, ...]:
    return (step.status, step.ended_at, step.tries, step.iterations_done, step.error)


async def _poll(
    store: Store, run_id: str, steps_read_at: object
) -> tuple[RunRecord, list[StepRecord] | None]:
    """The run's row, and its steps unless the row has not moved since they were read."""
    record = await store.get_run(run_id)
    if (record.updated_at, record.status) == steps_read_at:
        return record, None
    return record, await store.list_steps(run_id)


async def _stream(
    request: Request, run_id: str, first_id: int, poll: float, lease_seconds: float
) -> AsyncIterator[bytes]:
    event_id = first_id
    yield f"retry: {RETRY_MS}\n\n".encode()
    shown_status: dict[str, Any] | None = None
    shown_steps: dict[tuple[str, str, int], tuple[Any, ...]] = {}
    quiet = 0.0
    steps_read_at: object = None
    while True:
        try:
            poll_once = partial(_poll, run_id=run_id, steps_read_at=steps_read_at)
            record, steps = await read(request, poll_once)
        except FlowtrailError as exc:
            event_id += 1
            yield _frame("error", event_id, from_error(exc).body())
            return
        if steps is not None:
            # Steps are written with the row (its updated_at moves; a heartbeat's does
            # not): a quiet run's steps are not read again on every poll.
            steps_read_at = (record.updated_at, record.status)
        frames = []
        for step in steps or ():
            key, state = _step_key(step), _step_state(step)
            if shown_steps.get(key) != state:
                shown_steps[key] = state
                event_id += 1
                frames.append(_frame("step", event_id, step_json(step)))
        status = _status(record, lease_seconds)
        steady = {k: v for k, v in status.items() if k not in _TICKING}
        if steady != shown_status:
            shown_status = steady
            event_id += 1
            frames.append(_frame("status", event_id, status))
        if record.status.terminal:
            event_id += 1
            frames.append(_frame("end", event_id, status))
        if frames:
            quiet = 0.0
            yield b"".join(frames)
        if record.status.terminal:
            return
        await asyncio.sleep(poll)
        quiet += poll
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield b": keepalive\n\n"


@router.get(
    "/runs/{run_id}/events",
    summary="Its live events (server-sent events)",
    responses={
        **RUN_ERRORS,
        200: {
            "description": "A `text/event-stream`: `status`, `step` and, last, `end` events, "
            "each `data` a JSON object.",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
    },
    response_class=StreamingResponse,
)
async def run_events(
    request: Request,
    _: Reader,
    run_id: str = RunId,
    last_event_id: str | None = Header(
        None, description="Resume numbering after this event id (reconnects)."
    ),
) -> StreamingResponse:
    """The run's status and steps as they change, until it ends."""
    await read(request, lambda store: store.get_run(run_id))  # 404 before the stream starts
    first = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    config = request.app.state.config
    return StreamingResponse(
        _stream(request, run_id, first, config.poll_seconds, settings_of(request).lease_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
