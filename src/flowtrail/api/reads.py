"""Reading runs: one run's record, its span tree and its ``why`` verdict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowtrail.api.auth import Reader
from flowtrail.api.common import RUN_ERRORS, RunId, detail_of, settings_of
from flowtrail.api.reading import read
from flowtrail.diagnostics.view import steps_tree
from flowtrail.liveness.why import explain
from flowtrail.store import Store

router = APIRouter(tags=["runs"])


@router.get("/runs/{run_id}", summary="One run", responses=RUN_ERRORS)
async def get_run(request: Request, _: Reader, run_id: str = RunId) -> dict[str, Any]:
    """The run's record, the same JSON as ``flowtrail show --json``: status, finalization
    path, who decided, markers, error, cost, tokens, lease, the ``why`` verdict of a run
    not ended, and its steps."""
    return await read(request, lambda store: detail_of(request, store, run_id))


@router.get("/runs/{run_id}/spans", summary="Its span tree", responses=RUN_ERRORS)
async def get_spans(request: Request, _: Reader, run_id: str = RunId) -> dict[str, Any]:
    """The run's span tree. A run that has ended (or paused) has its stored trace
    (``source``: ``trace``); for a run still going the tree is built from the steps
    written so far (``partial``: true, ``source``: ``steps``), each loop and parallel with
    its progress. A run whose trace ``flowtrail prune`` dropped says so (``source``:
    ``pruned``, ``root``: null, ``pruned_at``)."""

    async def tree(store: Store) -> dict[str, Any]:
        record = await store.get_run(run_id)
        stored = record.execution_data
        trace = stored.get("trace") if isinstance(stored, dict) else None
        if record.pruned_at is not None:
            return {
                "run_id": record.id,
                "status": record.status.value,
                "partial": False,
                "source": "pruned",
                "root": None,
                "pruned_at": record.pruned_at.isoformat(),
            }
        if trace:
            root, partial, source = trace, False, "trace"
        else:
            steps = await store.list_steps(record.id)
            root, partial, source = steps_tree(record.workflow_name, steps), True, "steps"
        return {
            "run_id": record.id,
            "status": record.status.value,
            "partial": partial,
            "source": source,
            "root": root,
        }

    return await read(request, tree)


@router.get("/runs/{run_id}/why", summary="Its why verdict", responses=RUN_ERRORS)
async def get_why(request: Request, _: Reader, run_id: str = RunId) -> dict[str, Any]:
    """Why the run is not moving (or how it ended): one verdict with its evidence, as
    ``flowtrail why --json``."""

    async def verdict(store: Store) -> dict[str, Any]:
        found = await explain(store, await store.get_run(run_id), settings_of(request))
        return found.to_dict()

    return await read(request, verdict)
