"""Why is this run not moving? One verdict, with the evidence for it.

``verdict`` is a pure function of the run's row and a few facts gathered around it (the
live queue workers and the runs queued ahead, the blocks running now, their timeouts and
usual durations, whether the process holding the run is known to be gone), so every
verdict is testable without a clock or a database. ``why`` gathers those facts from a
store in a few reads and calls it.

The checks go from what settles the question to what only describes it: an ended run is
ended whatever its row says besides; a cancel request explains a running run before its
health does; a lease nobody renews outranks anything the row says about blocks (nobody is
executing them); a blocked event loop explains a block that overran its timeout (the
timer cannot fire), and a timeout is a firmer fact than a usual duration.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from datetime import datetime

from flowtrail.liveness.blocks import block_timeouts, running_blocks
from flowtrail.liveness.process import process_gone
from flowtrail.liveness.verdicts import (
    LIVE_WORKER_SECONDS,
    VERDICTS,
    Facts,
    Verdict,
)
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store.base import Store
from flowtrail.store.common import utcnow
from flowtrail.store.records import QueueJob, RunRecord, StepRecord

__all__ = ["VERDICTS", "Verdict", "block_timeouts", "explain", "running_blocks", "verdict", "why"]

# Previous completed runs whose steps give a block's usual duration.
USUAL_RUNS = 20
# Running blocks looked at (a wide parallel has many; the oldest tell the story).
RUNNING_BLOCKS = 20
# Blocks whose usual duration is looked up (each is one read).
USUAL_LOOKUPS = 3


def verdict(
    record: RunRecord,
    now: datetime,
    settings: Settings,
    *,
    workers: int | None = None,
    ahead: int = 0,
    job: QueueJob | None = None,
    steps: Sequence[StepRecord] | None = None,
    timeouts: Mapping[str, float] | None = None,
    usual_durations: Mapping[str, Sequence[float]] | None = None,
    process_is_gone: bool | None = None,
) -> Verdict:
    """The verdict on ``record`` at ``now``.

    ``workers``: live queue workers (``None``: this database has no queue). ``ahead``:
    runs of its queue queued before it and still waiting. ``job``: the queue job that is
    to execute it. ``steps``: the run's steps
    (those running are the blocks it executes now). ``timeouts``: per block id, the
    longest it may run (``block_timeouts``). ``usual_durations``: per block id, how long
    it took in previous completed runs. ``process_is_gone``: whether the process holding
    the run is known to be gone (``None``: unknown, e.g. it runs on another host).
    """
    facts = Facts(record, now, settings)
    status = record.status
    if status is RunStatus.CRASHED:
        return facts.crashed()
    if status.terminal:
        return facts.ended()
    if record.cancel_requested_at is not None:
        return facts.cancelling(process_is_gone)
    if status is RunStatus.PAUSED:
        return facts.paused()
    if status is RunStatus.QUEUED:
        return facts.queued(workers, ahead, job)
    return facts.running(
        running_blocks(record, steps), timeouts or {}, usual_durations or {}, process_is_gone
    )


def _known_gone(record: RunRecord) -> bool | None:
    """Whether the process holding ``record`` is known to be gone: answered only on the
    host it ran on (``None`` elsewhere, or when no process was recorded)."""
    if record.worker_host is None or record.worker_pid is None:
        return None
    if record.worker_host != socket.gethostname():
        return None
    return process_gone(record.worker_host, record.worker_pid, record.worker_started_at)


async def why(store: Store, run_id: str, settings: Settings) -> Verdict:
    """The verdict on run ``run_id`` now, from what ``store`` holds: the row, and for a
    queued run its queue's state, for a running one its running steps, their timeouts
    (from the stored definition) and their usual durations (previous completed runs).
    ``RunNotFoundError`` for an unknown id."""
    return await explain(store, await store.get_run(run_id), settings)


async def explain(
    store: Store,
    record: RunRecord,
    settings: Settings,
    steps: Sequence[StepRecord] | None = None,
) -> Verdict:
    """``why`` for a row already read, and its steps when they were read too (``flowtrail
    show`` has both): the reads around them."""
    if record.status is RunStatus.QUEUED and record.cancel_requested_at is None:
        queue = await store.queue_state(record, LIVE_WORKER_SECONDS)
        return verdict(
            record,
            utcnow(),
            settings,
            workers=queue.live_workers,
            ahead=queue.ahead,
            job=queue.job,
        )
    if record.status is not RunStatus.RUNNING:
        return verdict(record, utcnow(), settings)
    if steps is None:
        steps = await store.running_steps(record.id, RUNNING_BLOCKS)
    blocks = running_blocks(record, steps)
    timeouts: dict[str, float] = {}
    usual: dict[str, list[float]] = {}
    if blocks:
        timeouts = block_timeouts(await store.get_snapshot(record.snapshot_hash))
        for block_id in dict.fromkeys(b.block_id for b in blocks[:USUAL_LOOKUPS]):
            usual[block_id] = await store.block_durations(
                record.workflow_name, block_id, exclude=record.id, runs=USUAL_RUNS
            )
    return verdict(
        record,
        utcnow(),
        settings,
        steps=steps,
        timeouts=timeouts,
        usual_durations=usual,
        process_is_gone=_known_gone(record),
    )
