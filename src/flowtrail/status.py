"""The status vocabulary and the one transition table every writer goes through.

Every surface (Python API, CLI, database) speaks these exact words; there is no other
spelling of any of them.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CRASHED}
)


class FinalizationPath(StrEnum):
    COMPLETED = "completed"
    FALLBACK_COMPLETED = "fallback_completed"
    FORCE_FAILED = "force_failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    CRASHED = "crashed"
    EXPIRED = "expired"


class FinalizedBy(StrEnum):
    ENGINE = "engine"
    SWEEPER = "sweeper"
    API = "api"
    RECONCILER = "reconciler"


# The status each path writes. A path is the *why*; the status is the *what*.
PATH_STATUS: dict[FinalizationPath, RunStatus] = {
    FinalizationPath.COMPLETED: RunStatus.COMPLETED,
    FinalizationPath.FALLBACK_COMPLETED: RunStatus.COMPLETED,
    FinalizationPath.FORCE_FAILED: RunStatus.FAILED,
    FinalizationPath.CANCELLED: RunStatus.CANCELLED,
    FinalizationPath.PAUSED: RunStatus.PAUSED,
    FinalizationPath.CRASHED: RunStatus.CRASHED,
    FinalizationPath.EXPIRED: RunStatus.FAILED,
}

# Every allowed status change, listed once. Terminal statuses have no way out.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.CRASHED,
            RunStatus.PAUSED,
        }
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.CRASHED: frozenset(),
}


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[current]


def sources_for(target: RunStatus) -> tuple[RunStatus, ...]:
    """The statuses a row may be in for a compare-and-set to ``target`` to succeed."""
    return tuple(s for s, allowed in TRANSITIONS.items() if target in allowed)
