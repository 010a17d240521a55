"""The JSON API under ``/api/v1``: reading runs, steering them, the workflows this
server starts and the live events of a run."""

from __future__ import annotations

from fastapi import APIRouter

from flowtrail.api import events, listing, maintenance, reads, starting, steering
from flowtrail.api.problems import responses

router = APIRouter(prefix="/api/v1", responses=responses(401, 503))
for part in (listing, reads, steering, starting, events, maintenance):
    router.include_router(part.router)
