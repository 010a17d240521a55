"""Builders for the store contract tests (the ``kit`` fixture)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowtrail.status import PATH_STATUS, FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import (
    CompletedMarker,
    Finalization,
    NewRun,
    SqlStore,
    StartedMarker,
)

T0 = datetime(2026, 11, 25, 16, 24, 15, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# The path each status is usually reached by (running has none: it is resumed to).
PATH_FOR = {status: path for path, status in reversed(PATH_STATUS.items())}


@dataclass
class Kit:
    store: SqlStore

    at = staticmethod(at)

    async def run(
        self,
        status: RunStatus = RunStatus.RUNNING,
        *,
        workflow: str = "wf",
        started_at: datetime = T0,
        run_id: str | None = None,
        input: Any = None,
    ) -> str:
        await self.store.put_snapshot(f"hash-{workflow}", workflow, {"name": workflow})
        run_id = run_id or f"run-{uuid.uuid4().hex}"
        await self.store.create_run(
            NewRun(
                id=run_id,
                workflow_name=workflow,
                snapshot_hash=f"hash-{workflow}",
                status=status,
                trigger="test",
                started_at=started_at,
                input={"n": 1} if input is None else input,
            )
        )
        return run_id

    @staticmethod
    def started(block: str, when: datetime) -> StartedMarker:
        return StartedMarker(block, f"{block} name", "function", when)

    @staticmethod
    def completed(block: str, when: datetime, success: bool = True) -> CompletedMarker:
        return CompletedMarker(block, f"{block} name", "function", when, success)

    @staticmethod
    def fin(status: RunStatus, **overrides: Any) -> Finalization:
        fields: dict[str, Any] = {
            "status": status,
            "path": PATH_FOR.get(status, FinalizationPath.COMPLETED),
            "finalized_by": FinalizedBy.ENGINE,
            "ended_at": None if status is RunStatus.PAUSED else at(60),
            "duration_ms": None if status is RunStatus.PAUSED else 60_000,
        }
        fields.update(overrides)
        return Finalization(**fields)


@pytest.fixture
def kit(store: SqlStore) -> Kit:
    return Kit(store)
