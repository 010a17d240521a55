"""The status vocabulary and the one transition table every writer goes through.

Every surface (Python API, CLI, database) speaks these exact words; there is no other
spelling of any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


def _document(members: Mapping[StrEnum, str]) -> None:
    """Give each enum member its own docstring (``help()``, IDEs and the docs read it)."""
    for member, doc in members.items():
        member.__doc__ = doc


class RunStatus(StrEnum):
    """Where a run is: one word, the same on every surface."""

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


_document(
    {
        RunStatus.QUEUED: "Written, waiting for a worker to claim it.",
        RunStatus.RUNNING: "An engine is executing it (or was, until a sweep says otherwise).",
        RunStatus.PAUSED: "Stopped at a `wait for: input` block; its snapshot awaits a resume.",
        RunStatus.COMPLETED: "Ended successfully (`completed` or `fallback_completed` path).",
        RunStatus.FAILED: "Ended by an error, a timeout, a forced failure or expiry.",
        RunStatus.CANCELLED: "Ended by a cancel request; no other terminal write replaces it.",
        RunStatus.CRASHED: "Its process died or stopped heartbeating; the sweeper ended it.",
    }
)

TERMINAL_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CRASHED}
)


RETRYABLE = (RunStatus.CRASHED, RunStatus.FAILED, RunStatus.CANCELLED)
"""The statuses a run can be retried from (``flowtrail retry``): it ended unfinished."""


class FinalizationPath(StrEnum):
    """Why a run's status was written: the path its finalization took."""

    COMPLETED = "completed"
    FALLBACK_COMPLETED = "fallback_completed"
    FORCE_FAILED = "force_failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    CRASHED = "crashed"
    EXPIRED = "expired"


_document(
    {
        FinalizationPath.COMPLETED: "Success, with the full trace stored.",
        FinalizationPath.FALLBACK_COMPLETED: (
            "Success, but the full trace could not be stored: a minimal record keeps the "
            "output and `completion_failure` says why."
        ),
        FinalizationPath.FORCE_FAILED: (
            "An unhandled block error, a timeout, or a failure forced from outside."
        ),
        FinalizationPath.CANCELLED: "Cancelled by request.",
        FinalizationPath.PAUSED: "A pause checkpoint (not terminal).",
        FinalizationPath.CRASHED: "The run's lease expired and the sweeper ended it.",
        FinalizationPath.EXPIRED: "Queued, and never claimed before its time-to-live.",
    }
)


class FinalizedBy(StrEnum):
    """Who wrote a run's finalization."""

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
_document(
    {
        FinalizedBy.ENGINE: "The engine that executed the run.",
        FinalizedBy.SWEEPER: "The sweeper, finding the run's lease expired.",
        FinalizedBy.API: "A request from outside the engine (a cancel of a paused run).",
        FinalizedBy.RECONCILER: "The reconciler, matching queue state with run state.",
    }
)

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
