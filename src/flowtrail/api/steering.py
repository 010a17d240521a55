"""Steering runs (operator tokens): cancel, resume with input, retry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowtrail.api.auth import Operator
from flowtrail.api.common import ACCEPTED, STEER_ERRORS, RunId, answer
from flowtrail.api.problems import problem
from flowtrail.errors import MissingSecretError, RunStateError
from flowtrail.liveness.sweeper import cancel_if_gone, export_ended
from flowtrail.runner import Runner, stored_workflow
from flowtrail.status import RunStatus
from flowtrail.store import Store

router = APIRouter(tags=["steering"])


class ResumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Any = Field(None, description="JSON given to the waiting block(s).")
    wait: bool = Field(
        False, description="Answer when the run has ended or paused again (200), not at once."
    )


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_block: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Run this block and everything downstream of it again (default: only "
        "what did not complete).",
    )
    wait: bool = Field(False, description="Answer when the new run has ended or paused (200).")


@router.post("/runs/{run_id}/cancel", summary="Cancel it", responses=STEER_ERRORS)
async def cancel_run(request: Request, _: Operator, run_id: str = RunId) -> dict[str, Any]:
    """Request cancellation: a paused or queued run is cancelled at once, a running one
    stops at its next check (about 0.5 s); one whose process is gone (on this host) is
    ended now. 409 ``run_ended`` when it had already ended."""
    store: Store = request.app.state.store
    outcome = await store.request_cancel(run_id, "api")
    if not outcome.requested:
        raise problem(
            409,
            "run_ended",
            f"run {run_id} already ended: {outcome.status.value}; nothing was changed",
        )
    status, finalized = outcome.status, outcome.finalized
    settings = request.app.state.settings
    if finalized:  # its run span, when OpenTelemetry export is on
        await export_ended(store, run_id, settings)
    elif (ended := await cancel_if_gone(store, run_id, settings)) is not None:
        status, finalized = ended.status, ended.status is RunStatus.CANCELLED
    worker = outcome.worker
    return {
        "id": run_id,
        "status": status.value,
        "requested": True,
        "finalized": finalized,
        "worker": None if worker is None else {"host": worker.host, "pid": worker.pid},
    }


@router.post(
    "/runs/{run_id}/resume",
    summary="Resume a paused run",
    responses={**STEER_ERRORS, **ACCEPTED},
)
async def resume_run(
    request: Request, body: ResumeBody, _: Operator, run_id: str = RunId
) -> JSONResponse:
    """Continue a paused run where it stopped, giving ``input`` to the waiting block(s).
    202 at once (the run goes on in this server), or with ``wait`` 200 and the record once
    it has ended or paused again. 409 ``not_paused`` for a run that is not paused; 422
    ``invalid_input`` when a block reads an input that was not given."""
    store: Store = request.app.state.store
    runner: Runner = request.app.state.runner
    record = await store.get_run(run_id)
    if record.status is not RunStatus.PAUSED:
        raise _not_paused(run_id, record.status)
    workflow = await stored_workflow(store, record)
    try:
        handle = await runner.resume(workflow, run_id, body.input)
    except MissingSecretError:
        raise
    except RunStateError as exc:  # another caller resumed or cancelled it first
        now = await store.get_run(run_id)
        if now.status is not RunStatus.PAUSED:
            raise _not_paused(run_id, now.status) from exc
        raise
    return await answer(request, handle, body.wait)


def _not_paused(run_id: str, status: RunStatus) -> Exception:
    return problem(
        409, "not_paused", f"run {run_id} is {status.value}, not paused: there is nothing to resume"
    )


@router.post(
    "/runs/{run_id}/retry",
    summary="Retry it as a new run",
    responses={**STEER_ERRORS, **ACCEPTED},
)
async def retry_run(
    request: Request, body: RetryBody, _: Operator, run_id: str = RunId
) -> JSONResponse:
    """A crashed, failed or cancelled run again, as a new run of the same definition and
    input linked to it (``retry_of``), reusing the blocks that completed. 202 with the new
    run at once, or with ``wait`` 200 once it has ended. 409 ``not_retryable`` for a run
    that cannot be retried (still going, completed, or retried already); 422
    ``invalid_input`` for an unknown ``from_block``."""
    runner: Runner = request.app.state.runner
    try:
        handle = await runner.retry(run_id, from_block=body.from_block, trigger="api")
    except MissingSecretError:
        raise
    except RunStateError as exc:
        raise problem(409, "not_retryable", str(exc)) from exc
    return await answer(request, handle, body.wait)
