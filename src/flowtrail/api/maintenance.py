"""Keeping the database small over HTTP (operator tokens): ``flowtrail prune``'s work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from flowtrail.api.auth import Operator
from flowtrail.api.problems import responses
from flowtrail.retention import DEFAULT_BATCH, MAX_BATCH, parse_age, prune
from flowtrail.status import RunStatus
from flowtrail.store import Store

router = APIRouter(tags=["maintenance"])


class PruneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    older_than: str = Field(
        max_length=40,
        description="Prune ended runs that started and ended longer ago than this: a whole "
        "number and a unit, s, m, h, d or w (`30d`).",
        examples=["30d"],
    )
    statuses: list[RunStatus] = Field(
        default_factory=list,
        max_length=10,
        description="Only runs that ended with these statuses (default: every ended one).",
    )
    dry_run: bool = Field(False, description="Change nothing; say what would go.")
    batch: int = Field(DEFAULT_BATCH, ge=1, le=MAX_BATCH, description="Runs per transaction.")


@router.post(
    "/prune",
    summary="Prune old runs",
    responses=responses(400, 403, 413, 422),
)
async def prune_runs(request: Request, body: PruneBody, _: Operator) -> dict[str, Any]:
    """Drop the traces, steps, outputs and pause snapshots of old ended runs and keep
    their summary rows (status, path, markers, error, cost, durations), as ``flowtrail
    prune`` does, in short batches. 422 ``bad_age`` for an ``older_than`` that is not an
    age, ``not_prunable`` for a status that is not an ended one. The space is reclaimed
    by ``flowtrail prune --vacuum``, not from here (SQLite's VACUUM holds the writer)."""
    store: Store = request.app.state.store
    report = await prune(
        store,
        older_than=parse_age(body.older_than),
        statuses=tuple(body.statuses) or None,
        dry_run=body.dry_run,
        batch=body.batch,
    )
    return report.to_dict()
