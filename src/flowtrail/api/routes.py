"""The JSON API under ``/api/v1``: runs (list, detail, spans, why, events), steering
(cancel, resume, retry) and the workflows this server starts runs of."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request

from flowtrail.api.auth import Operator, Reader
from flowtrail.api.problems import problem, responses
from flowtrail.api.reading import reading, run_detail
from flowtrail.diagnostics.view import steps_tree
from flowtrail.liveness.sweeper import cancel_if_gone
from flowtrail.liveness.why import explain
from flowtrail.settings import Settings
from flowtrail.status import RunStatus

router = APIRouter(prefix="/api/v1", responses=responses(401, 503))
RunId = Path(
    description="The run's full id.", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"
)
RUN_ERRORS = responses(400, 404, 422)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.get("/runs/{run_id}", tags=["runs"], summary="One run", responses=RUN_ERRORS)
async def get_run(request: Request, _: Reader, run_id: str = RunId) -> dict[str, Any]:
    """The run's record, the same JSON as ``flowtrail show --json``: status, finalization
    path, who decided, markers, error, cost, tokens, lease, the ``why`` verdict of a run
    not ended, and its steps."""
    settings = _settings(request)
    async with reading(request) as store:
        record = await store.get_run(run_id)
        steps = await store.list_steps(record.id)
        found = None
        if not record.status.terminal:
            found = await explain(store, record, settings, steps)
    return run_detail(record, steps, found, settings)


@router.get("/runs/{run_id}/spans", tags=["runs"], summary="Its span tree", responses=RUN_ERRORS)
async def get_spans(request: Request, _: Reader, run_id: str = RunId) -> dict[str, Any]:
    """The run's span tree. A run that has ended (or paused) has its stored trace; for a
    run still going the tree is built from the steps written so far (``partial``: true),
    each loop and parallel with its progress."""
    async with reading(request) as store:
        record = await store.get_run(run_id)
        stored = record.execution_data
        trace = stored.get("trace") if isinstance(stored, dict) else None
        if trace:
            return {"run_id": record.id, "status": record.status.value, "partial": False,
                    "source": "trace", "root": trace}  # fmt: skip
        steps = await store.list_steps(record.id)
    return {
        "run_id": record.id,
        "status": record.status.value,
        "partial": True,
        "source": "steps",
        "root": steps_tree(record.workflow_name, steps),
    }


@router.get("/runs/{run_id}/why", tags=["runs"], summary="Its why verdict", responses=RUN_ERRORS)
async def get_why(request: Request, _: Reader, run_id: str = RunId) -> dict[str, Any]:
    """Why the run is not moving (or how it ended): one verdict with its evidence, as
    ``flowtrail why --json``."""
    async with reading(request) as store:
        record = await store.get_run(run_id)
        found = await explain(store, record, _settings(request))
    return found.to_dict()


@router.post(
    "/runs/{run_id}/cancel",
    tags=["steering"],
    summary="Cancel it",
    responses={**RUN_ERRORS, **responses(403, 409)},
)
async def cancel_run(request: Request, _: Operator, run_id: str = RunId) -> dict[str, Any]:
    """Request cancellation: a paused or queued run is cancelled at once, a running one
    stops at its next check (about 0.5 s); one whose process is gone (on this host) is
    ended now. 409 ``run_ended`` when it had already ended."""
    store = request.app.state.store
    outcome = await store.request_cancel(run_id, "api")
    if not outcome.requested:
        raise problem(
            409,
            "run_ended",
            f"run {run_id} already ended: {outcome.status.value}; nothing was changed",
        )
    status = outcome.status
    finalized = outcome.finalized
    if not finalized and (ended := await cancel_if_gone(store, run_id)) is not None:
        status = ended.status
        finalized = ended.status is RunStatus.CANCELLED
    worker = outcome.worker
    return {
        "id": run_id,
        "status": status.value,
        "requested": True,
        "finalized": finalized,
        "worker": None if worker is None else {"host": worker.host, "pid": worker.pid},
    }
