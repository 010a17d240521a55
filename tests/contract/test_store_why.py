"""What "why is this run not moving?" reads from the store, on both backends: where a
queued run stands in its queue, the blocks a run is executing, how long a block took in
previous completed runs."""

from __future__ import annotations

from tests.contract.conftest import Kit
from tests.contract.test_store_lease import W1

from flowtrail.status import RunStatus
from flowtrail.store import NewRun, ProgressWrite
from flowtrail.store.common import utcnow
from flowtrail.store.records import QueueJob, StepWrite


async def queued(kit: Kit, run_id: str, queue: str) -> str:
    await kit.store.put_snapshot("hash-wf", "wf", {"name": "wf"})
    await kit.store.create_run(
        NewRun(run_id, "wf", "hash-wf", RunStatus.QUEUED, "queue", utcnow(), None,
               queue_name=queue)
    )  # fmt: skip
    return run_id


async def test_queue_state_counts_the_runs_of_its_queue_queued_before_it(kit: Kit) -> None:
    first = await queued(kit, "q1", "a")
    await queued(kit, "q2", "a")
    other = await queued(kit, "q3", "b")
    last = await queued(kit, "q4", "a")
    store = kit.store
    state = await store.queue_state(await store.get_run(last), 30)
    assert state.ahead == 2
    assert (await store.queue_state(await store.get_run(first), 30)).ahead == 0
    assert (await store.queue_state(await store.get_run(other), 30)).ahead == 0
    assert await store.claim(first, W1, 30) is not None  # no longer waiting
    assert (await store.queue_state(await store.get_run(last), 30)).ahead == 1
    if store.backend == "sqlite":
        assert state.live_workers is None and state.job is None  # no queue here
        return
    assert state.live_workers == 0  # Procrastinate's schema, and no worker
    assert state.job is None  # no job recorded yet
    await store.set_job_id(last, 987654)
    gone = await store.queue_state(await store.get_run(last), 30)
    assert gone.job == QueueJob(987654, "absent")


def step(block: str, status: str, started: float, ended: float | None = None) -> StepWrite:
    return StepWrite(
        position="",
        block_id=block,
        block_type="function",
        status=status,
        started_at=Kit.at(started),
        ended_at=None if ended is None else Kit.at(ended),
    )


async def test_running_steps_and_usual_durations(kit: Kit) -> None:
    store = kit.store
    for n, seconds in enumerate((1.0, 2.0, 3.0)):
        run_id = await kit.run(workflow="wf", started_at=Kit.at(n * 10), run_id=f"done-{n}")
        done = step("b", "completed", 0, seconds)
        await store.write_progress(run_id, ProgressWrite(steps=(done,)))
        await store.finalize(run_id, kit.fin(RunStatus.COMPLETED))
    failed = await kit.run(workflow="wf", started_at=Kit.at(40), run_id="failed")
    await store.write_progress(failed, ProgressWrite(steps=(step("b", "completed", 0, 50),)))
    await store.finalize(failed, kit.fin(RunStatus.FAILED))  # not a usual run: left out
    other = await kit.run(workflow="other", run_id="other")
    await store.write_progress(other, ProgressWrite(steps=(step("b", "completed", 0, 90),)))
    await store.finalize(other, kit.fin(RunStatus.COMPLETED))

    now = await kit.run(workflow="wf", started_at=Kit.at(50), run_id="now")
    steps = (step("a", "completed", 0, 1), step("b", "running", 2), step("c", "running", 1))
    await store.write_progress(now, ProgressWrite(steps=steps))
    running = await store.running_steps(now)
    assert [(s.block_id, s.status) for s in running] == [("c", "running"), ("b", "running")]
    assert await store.running_steps(now, limit=1) == running[:1]

    assert sorted(await store.block_durations("wf", "b", exclude=now)) == [1.0, 2.0, 3.0]
    assert await store.block_durations("wf", "b", exclude=now, runs=1) == [3.0]  # latest
    assert await store.block_durations("wf", "a", exclude=now) == []
