""" "Why is this run not moving?" on real runs, on both backends: each verdict is what
the store says about a run that really is in that state."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
from datetime import timedelta
from typing import Any

from flowtrail.liveness.why import Verdict, verdict, why
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore, open_store
from flowtrail.store.common import utcnow
from tests.integration.diagnostics.support import execute_sql

CODE = """
import asyncio
import time

async def wait_long():
    await asyncio.sleep(30)

async def nap(seconds):
    await asyncio.sleep(seconds)

async def hog(seconds):
    time.sleep(seconds)  # blocks the event loop: CPU-bound async code
    return "done"

def quick():
    return 1

def boom():
    raise RuntimeError("boom")
"""


def chain(*blocks: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """start -> each block in turn."""
    ids = ["start", *(b for b, _ in blocks)]
    return {
        "name": "why",
        "blocks": {"start": {"type": "start"}, **dict(blocks)},
        "connections": [f"{a} -> {b}" for a, b in itertools.pairwise(ids)],
    }


def fn(call: str, **spec: Any) -> dict[str, Any]:
    return {"type": "function", "call": f"FNS:{call}", **spec}


def settings_for(db: SqlStore, **fields: Any) -> Settings:
    return Settings(database_url=db.url, **fields)


async def until_started(db: SqlStore, run_id: str, block_id: str) -> None:
    for _ in range(500):
        marker = (await db.get_run(run_id)).last_started_block
        if marker is not None and marker.block_id == block_id:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"block {block_id} never started")


async def test_a_paused_run_is_waiting_for_input(db: SqlStore, flow: Any) -> None:
    f = flow(
        chain(("prep", fn("quick")), ("ask", {"type": "wait", "for": "input", "message": "OK?"})),
        CODE,
    )
    settings = settings_for(db)
    report = await Runner(settings, db).run(f.workflow)
    assert report.status is RunStatus.PAUSED
    v = await why(db, report.run_id, settings)
    assert v.verdict == "waiting_for_input"
    assert v.evidence["waiting_blocks"] == ["ask"]
    assert v.evidence["message"] == "OK?"
    assert "'ask'" in v.summary and "OK?" in v.summary
    assert v.evidence["paused_since"] is not None


async def test_a_run_in_a_slow_block_is_healthy_and_named(
    db: SqlStore, db2: SqlStore, flow: Any
) -> None:
    f = flow(chain(("prep", fn("quick")), ("wait", fn("wait_long", timeout=30))), CODE)
    settings = settings_for(db, lease_seconds=3)
    handle = await Runner(settings, db).start(f.workflow)
    try:
        await until_started(db2, handle.run_id, "wait")
        v = await why(db2, handle.run_id, settings)
        assert v.verdict == "running_healthy", v.summary
        assert "block 'wait' (function)" in v.summary
        assert v.evidence["block"]["id"] == "wait"
        assert v.evidence["timeout_s"] == 30.0  # read from the stored definition
        assert v.evidence["last_completed_block"]["block_id"] == "prep"
        assert v.evidence["lease_state"] == "held"
        assert v.evidence["heartbeat_age_s"] < 3
        assert v.evidence["worker"]["pid"] is not None

        # The engine enforces timeouts, so an overrun is shown here on the real row: the
        # same row, read later than its block's timeout, is a block over its timeout.
        record = await db2.get_run(handle.run_id)
        later = utcnow() + timedelta(seconds=31)
        fresh = dataclasses.replace(record, lease_expires_at=later + timedelta(seconds=1))
        over = verdict(fresh, later, settings, timeouts={"wait": 30.0})
        assert over.verdict == "block_over_timeout"
        assert "timeout of 30s" in over.summary
    finally:
        handle.cancel()
        await handle.result()
    assert (await why(db2, handle.run_id, settings)).verdict == "ended"


async def test_every_block_in_flight_is_counted_from_the_steps(
    db: SqlStore, db2: SqlStore, flow: Any
) -> None:
    f = flow(
        chain(("par", {"type": "parallel", "count": 3, "blocks": {"w": fn("wait_long")}})),
        CODE,
    )
    settings = settings_for(db, lease_seconds=3)
    handle = await Runner(settings, db).start(f.workflow)
    try:
        for _ in range(200):
            v = await why(db2, handle.run_id, settings)
            if v.evidence.get("running_blocks", 0) >= 4:  # the parallel and its 3 branches
                break
            await asyncio.sleep(0.05)
    finally:
        handle.cancel()
        await handle.result()
    assert v.verdict == "running_healthy", v.summary
    assert v.evidence["running_blocks"] == 4
    assert "and 3 more" in v.summary


async def test_a_block_far_slower_than_in_previous_runs_is_slow(
    db: SqlStore, db2: SqlStore, flow: Any
) -> None:
    f = flow(
        {
            "name": "usual",
            "inputs": {"seconds": {"type": "number", "default": 0.01}},
            "blocks": {
                "start": {"type": "start"},
                "work": fn("nap", **{"with": {"seconds": "{{ start.seconds }}"}}),
            },
            "connections": ["start -> work"],
        },
        CODE,
    )
    settings = settings_for(db, lease_seconds=3)
    runner = Runner(settings, db)
    for _ in range(3):  # the usual: each execution recorded as a completed step
        assert (await runner.run(f.workflow)).status is RunStatus.COMPLETED
    handle = await runner.start(f.workflow, {"seconds": 30})
    try:
        await until_started(db2, handle.run_id, "work")
        v = await why(db2, handle.run_id, settings)
        for _ in range(100):  # over a second in the block: long enough to call slow
            if v.verdict != "running_healthy":
                break
            await asyncio.sleep(0.05)
            v = await why(db2, handle.run_id, settings)
    finally:
        handle.cancel()
        await handle.result()
    assert v.verdict == "block_slow", v.summary
    assert v.evidence["usual_samples"] == 3
    assert v.evidence["usual_s"] < 1
    assert v.evidence["block"]["id"] == "work"
    assert "Block 'work' (function)" in v.summary and "ms (median of 3" in v.summary


def _watch(url: str, run_id: str, settings: Settings, stop: threading.Event) -> list[Verdict]:
    """Ask ``why`` every 50 ms from a thread of its own (its own event loop and store),
    while the run's event loop may be blocked."""

    async def go() -> list[Verdict]:
        seen: list[Verdict] = []
        async with open_store(url) as store:
            while not stop.is_set():
                seen.append(await why(store, run_id, settings))
                await asyncio.sleep(0.05)
        return seen

    return asyncio.run(go())


async def test_a_block_hogging_the_event_loop_is_event_loop_blocked(
    db: SqlStore, flow: Any
) -> None:
    f = flow(chain(("hog", fn("hog", **{"with": {"seconds": 3.0}}))), CODE)
    settings = settings_for(db, lease_seconds=0.6)
    handle = await Runner(settings, db).start(f.workflow)
    stop = threading.Event()
    watcher = asyncio.get_running_loop().run_in_executor(
        None, _watch, db.url, handle.run_id, settings, stop
    )
    report = await handle.result()
    stop.set()
    seen = await watcher
    assert report.status is RunStatus.COMPLETED
    blocked = [v for v in seen if v.verdict == "event_loop_blocked"]
    assert blocked, sorted({v.verdict for v in seen})
    assert "block 'hog'" in blocked[-1].summary
    assert blocked[-1].evidence["loop_lag_ms"] >= 1000
    assert blocked[-1].evidence["loop_blocked_since"] is not None
    assert blocked[-1].evidence["lease_state"] in ("held", "late")  # never swept
    assert not any(v.verdict == "lease_expired" for v in seen)
    assert (await why(db, handle.run_id, settings)).verdict == "ended"


async def test_a_queued_run_with_no_worker(db: SqlStore, flow: Any) -> None:
    f = flow(chain(("prep", fn("quick"))), CODE)
    settings = settings_for(db)
    runner = Runner(settings, db)
    first = await runner.enqueue(f.workflow, queue_name="jobs")
    second = await runner.enqueue(f.workflow, queue_name="jobs")
    v = await why(db, second.id, settings)
    assert v.verdict == "queued_no_worker"
    assert v.evidence["ahead"] == 1
    assert v.evidence["queue"] == "jobs"
    assert "queue 'jobs'" in v.summary
    assert (await why(db, first.id, settings)).evidence["ahead"] == 0


async def test_a_queued_run_with_a_live_worker_waits_for_it(db: SqlStore, flow: Any) -> None:
    if db.backend != "postgres":
        return  # a queue worker needs PostgreSQL: covered by the no-worker case above
    # Procrastinate's worker table as its schema declares it (`db upgrade` applies it)
    await execute_sql(
        db.url,
        [
            "CREATE TABLE IF NOT EXISTS procrastinate_workers (id bigint PRIMARY KEY "
            "GENERATED ALWAYS AS IDENTITY, last_heartbeat timestamptz NOT NULL DEFAULT NOW())",
            "INSERT INTO procrastinate_workers DEFAULT VALUES",
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (NOW() - interval '10 minutes')",  # stalled: not counted
        ],
    )
    f = flow(chain(("prep", fn("quick"))), CODE)
    settings = settings_for(db)
    run = await Runner(settings, db).enqueue(f.workflow, expires_in=600)
    v = await why(db, run.id, settings)
    assert v.verdict == "queued_waiting_for_worker", v.summary
    assert v.evidence["live_workers"] == 1
    assert "1 live worker" in v.summary


async def test_a_queued_run_and_its_queue_job(db: SqlStore, flow: Any) -> None:
    if db.backend != "postgres":
        return  # the job queue needs PostgreSQL
    from flowtrail.queue.submit import defer_run

    f = flow(chain(("prep", fn("quick"))), CODE)
    settings = settings_for(db)
    run = await Runner(settings, db).enqueue(f.workflow, queue_name="later")
    job_id = await defer_run(db.url, run.id, "later", delay=600)  # a recovery backoff
    await db.set_job_id(run.id, job_id)
    v = await why(db, run.id, settings)
    assert v.verdict == "queued_scheduled", v.summary
    assert v.evidence["job"]["id"] == job_id and v.evidence["job"]["status"] == "todo"
    assert f"job {job_id} is scheduled for" in v.summary

    await execute_sql(db.url, [f"DELETE FROM procrastinate_jobs WHERE id = {job_id}"])
    lost = await why(db, run.id, settings)
    assert lost.verdict == "queued_job_lost", lost.summary
    assert lost.evidence["job"] == {"id": job_id, "status": "absent", "scheduled_at": None}


async def test_a_queued_run_past_its_time_to_live(db: SqlStore, flow: Any) -> None:
    f = flow(chain(("prep", fn("quick"))), CODE)
    settings = settings_for(db)
    run = await Runner(settings, db).enqueue(f.workflow, expires_in=0.05)
    await asyncio.sleep(0.1)
    v = await why(db, run.id, settings)
    assert v.verdict == "queued_expired"
    assert run.expires_at is not None
    assert v.evidence["expires_at"] == run.expires_at.isoformat()


async def test_ended_runs(db: SqlStore, flow: Any) -> None:
    settings = settings_for(db)
    ok = await Runner(settings, db).run(flow(chain(("a", fn("quick"))), CODE).workflow)
    bad = await Runner(settings, db).run(flow(chain(("b", fn("boom"))), CODE).workflow)
    done = await why(db, ok.run_id, settings)
    assert done.verdict == "ended" and done.status is RunStatus.COMPLETED
    assert done.evidence["finalization_path"] == "completed"
    failed = await why(db, bad.run_id, settings)
    assert failed.verdict == "ended" and failed.status is RunStatus.FAILED
    assert failed.evidence["error"]["block_id"] == "b"
    assert "boom" in failed.summary
