"""The workflows this server serves (``flowtrail serve --workflows DIR``) and starting
runs of them: in this server (waited for, or not) or queued for a worker (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowtrail.api.auth import Operator, Reader
from flowtrail.api.common import ACCEPTED, STEER_ERRORS, accepted, answer, so_far
from flowtrail.api.problems import problem
from flowtrail.diagnostics.masking import Masker
from flowtrail.model.graph import Workflow
from flowtrail.model.inputs import declared_inputs, validate_inputs
from flowtrail.queue.defaults import DEFAULT_QUEUE, require_postgres
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.store import Store

router = APIRouter(tags=["workflows"])


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Any = Field(None, description="The run input: a JSON object for `inputs:`.")
    queue: bool = Field(
        False, description="Queue the run for a `flowtrail worker` (PostgreSQL): 202 at once."
    )
    wait: bool = Field(
        True,
        description="Run it in this server and answer when it has ended or paused (200); "
        "false: 202 at once.",
    )
    queue_name: str | None = Field(
        None, min_length=1, max_length=128, description=f"With queue: (default {DEFAULT_QUEUE})."
    )
    expires_in: float | None = Field(
        None,
        gt=0,
        le=366 * 24 * 3600,
        description="With queue: seconds a run may wait for a worker before it ends failed "
        "(path expired).",
    )


def _workflow(request: Request, name: str) -> Workflow:
    workflows: dict[str, Workflow] = request.app.state.workflows
    found = workflows.get(name)
    if found is None:
        served = ", ".join(sorted(workflows)) or "none (start the server with --workflows DIR)"
        raise problem(
            404,
            "workflow_not_found",
            f"this server serves no workflow '{name}' (it serves: {served})",
        )
    return found


def _listing(workflow: Workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "description": workflow.definition.description,
        "inputs": declared_inputs(workflow.definition),
        "can_pause": workflow.can_pause,
        "definition_hash": workflow.definition_hash,
    }


@router.get("/workflows", summary="The workflows this server starts")
async def list_workflows(request: Request, _: Reader) -> dict[str, Any]:
    """Every workflow of the server's ``--workflows`` folder, with the inputs it declares
    (as ``flowtrail validate --inputs`` lists them)."""
    workflows: dict[str, Workflow] = request.app.state.workflows
    return {"workflows": [_listing(workflows[name]) for name in sorted(workflows)]}


@router.post(
    "/workflows/{name}/runs",
    summary="Start a run",
    responses={**STEER_ERRORS, **ACCEPTED},
)
async def start_run(request: Request, name: str, body: StartBody, _: Operator) -> JSONResponse:
    """Start a run of a served workflow. By default it runs in this server and the answer
    (200) is its record once it has ended or paused; ``wait: false`` answers 202 at once.
    ``queue: true`` writes it ``queued`` for a worker (PostgreSQL only: 409
    ``queue_unavailable`` otherwise) and answers 202. Either 202 carries the run's record
    so far and ``Location``. Input that does not fit the workflow's ``inputs:`` is 422
    ``invalid_input``, and nothing is run."""
    workflow = _workflow(request, name)
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    if body.queue:
        require_postgres(settings.database_url)
    values = validate_inputs(workflow.definition, body.input, Masker(settings.masked_secrets).text)
    if body.queue:
        # Imported here: Procrastinate is needed only for queued runs.
        from flowtrail.queue.submit import submit_run

        record = await submit_run(
            store,
            workflow,
            values,
            settings=settings,
            queue_name=body.queue_name or DEFAULT_QUEUE,
            expires_in=body.expires_in,
            trigger="api",
        )
        return accepted(so_far(request, record), record.id)
    if body.queue_name is not None or body.expires_in is not None:
        raise problem(422, "invalid_request", "queue_name and expires_in go with queue: true")
    runner: Runner = request.app.state.runner
    handle = await runner.start(workflow, values, trigger="api")
    return await answer(request, handle, body.wait)
