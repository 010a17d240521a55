"""Retention: ``prune`` drops the traces, steps and outputs of old ended runs and keeps
their summary rows.

What stays on a pruned run is everything the runs list and ``flowtrail show`` summarise:
status, finalization path, who finalized it, the markers, the error (with its path
through child workflows), completion failure, cost, tokens, models, durations, notes,
input (a retry starts from it), the retry links and the workflow snapshot (a retry runs
it). What goes: the stored trace (``execution_data``), the run's output, any pause
snapshot, and its rows in ``workflow_steps`` (each block's output and error). The row
says when (``pruned_at``), so a reader can tell a pruned trace from a missing one.

Only ended runs are ever touched (completed, failed, cancelled, crashed): a queued,
running or paused run is never pruned, whatever ``statuses`` says. The work is done in
batches, each its own short transaction walking an index oldest first, with a pause
between batches as long as the batch held the database (at most ``PAUSE_CAP`` s): a
concurrent writer (a run's progress write, the sweeper) waits for one batch at most.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flowtrail.errors import InputError
from flowtrail.status import TERMINAL_STATUSES, RunStatus
from flowtrail.store.base import Store
from flowtrail.store.common import utcnow

DEFAULT_BATCH = 500
MAX_BATCH = 10_000
PAUSE_CAP = 0.05
# The order statuses are listed in (reports, errors): the order of the enum.
PRUNABLE = tuple(s for s in RunStatus if s in TERMINAL_STATUSES)

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class BadAgeError(InputError):
    """``--older-than`` is not an age like ``30d``."""

    code = "bad_age"


class NotPrunableError(InputError):
    """A status that is not an ended one was asked for: such runs are never pruned."""

    code = "not_prunable"


def parse_age(text: str) -> timedelta:
    """``90s``, ``90m``, ``12h``, ``30d``, ``2w`` -> a ``timedelta``; ``BadAgeError``
    otherwise (a number and one unit, nothing else)."""
    match = _AGE.match(text)
    if not match:
        raise BadAgeError(
            f"not an age: {text!r}; write a whole number and a unit: s (seconds), "
            "m (minutes), h (hours), d (days) or w (weeks), for example 30d or 12h"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise BadAgeError(f"age {text!r} is too large") from None


def prunable_statuses(statuses: tuple[RunStatus, ...] | None) -> tuple[RunStatus, ...]:
    """The statuses to prune: all ended ones for ``None``; ``NotPrunableError`` for one
    that is not ended (queued, running, paused)."""
    if statuses is None or not statuses:
        return PRUNABLE
    live = [s.value for s in statuses if s not in TERMINAL_STATUSES]
    if live:
        raise NotPrunableError(
            f"{', '.join(live)} runs are never pruned (they have not ended); prunable "
            f"statuses: {', '.join(s.value for s in PRUNABLE)}"
        )
    return tuple(s for s in PRUNABLE if s in statuses)


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What ``prune`` removed (or, with ``dry_run``, would remove)."""

    cutoff: datetime
    """Runs started (and ended) before this were pruned."""
    statuses: tuple[RunStatus, ...]
    dry_run: bool
    runs: int = 0
    steps: int = 0
    bytes: int = 0
    """Size of the documents dropped: traces, outputs, pause snapshots, step outputs and
    errors (the database shrinks by about this once its space is reclaimed)."""
    batches: int = 0
    seconds: float = 0.0
    size_before: int | None = None
    """With ``vacuum``: the database's size before and after the space was reclaimed."""
    size_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "cutoff": self.cutoff.isoformat(),
            "statuses": [s.value for s in self.statuses],
            "runs": self.runs,
            "steps": self.steps,
            "bytes": self.bytes,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "vacuumed": self.size_before is not None,
            "size_before": self.size_before,
            "size_after": self.size_after,
        }


async def prune(
    store: Store,
    *,
    older_than: timedelta,
    statuses: tuple[RunStatus, ...] | None = None,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
    vacuum: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Drop the trace, output, pause snapshot and steps of every ended run (in
    ``statuses``, default all ended ones) that started and ended more than
    ``older_than`` before ``now``; keep its summary row and mark it ``pruned_at``.

    ``batch`` runs per transaction. ``dry_run`` changes nothing and reports what would
    go. ``vacuum`` then reclaims the space (SQLite: ``VACUUM`` rewrites the file and
    holds the write lock while it does; PostgreSQL: a plain ``VACUUM``)."""
    if older_than < timedelta(0):
        raise BadAgeError(f"older_than must not be negative, got {older_than}")
    if not 1 <= batch <= MAX_BATCH:
        raise InputError(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
    wanted = prunable_statuses(statuses)
    now = now or utcnow()
    cutoff = now - older_than
    began = time.monotonic()
    runs = steps = size = batches = 0
    after: tuple[datetime, str] | None = None
    while True:
        held = time.monotonic()
        found = await store.prune_batch(cutoff, wanted, after, batch, dry_run=dry_run, now=utcnow())
        held = time.monotonic() - held
        if found.last is None:
            break
        batches += 1
        runs, steps, size = runs + found.runs, steps + found.steps, size + found.bytes
        after = found.last
        if not dry_run:
            # Let writers that queued behind this batch in before the next one.
            await asyncio.sleep(min(PAUSE_CAP, held))
    before_size = after_size = None
    if vacuum and not dry_run:
        before_size = await store.database_size()
        await store.reclaim_space()
        after_size = await store.database_size()
    return PruneReport(
        cutoff=cutoff,
        statuses=wanted,
        dry_run=dry_run,
        runs=runs,
        steps=steps,
        bytes=size,
        batches=batches,
        seconds=time.monotonic() - began,
        size_before=before_size,
        size_after=after_size,
    )
