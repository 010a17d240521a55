"""write_progress: one round trip, markers folded monotonically in SQL."""

from __future__ import annotations

import asyncio
import itertools
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowtrail.status import RunStatus
from flowtrail.store import ProgressWrite

_counter = itertools.count()


async def test_is_exactly_one_round_trip(store, kit) -> None:
    run_id = await kit.run()
    before = store.round_trips
    write = ProgressWrite(
        started=kit.started("a", kit.at(1)),
        completed=kit.completed("a", kit.at(2)),
        cost_total=0.5,
        marker_write_failures=1,
    )
    assert await store.write_progress(run_id, write) is False
    assert store.round_trips - before == 1


async def test_newer_replaces_older_never_does(store, kit) -> None:
    run_id = await kit.run()
    await store.write_progress(run_id, ProgressWrite(started=kit.started("b2", kit.at(2))))
    await store.write_progress(run_id, ProgressWrite(started=kit.started("b1", kit.at(1))))
    assert (await store.get_run(run_id)).last_started_block == kit.started("b2", kit.at(2))
    await store.write_progress(run_id, ProgressWrite(started=kit.started("b3", kit.at(3))))
    assert (await store.get_run(run_id)).last_started_block == kit.started("b3", kit.at(3))


async def test_equal_timestamp_replaces(store, kit) -> None:
    run_id = await kit.run()
    same = kit.at(5)
    await store.write_progress(run_id, ProgressWrite(completed=kit.completed("x", same)))
    await store.write_progress(run_id, ProgressWrite(completed=kit.completed("y", same, False)))
    assert (await store.get_run(run_id)).last_completed_block == kit.completed("y", same, False)


async def test_started_and_completed_fold_independently(store, kit) -> None:
    run_id = await kit.run()
    await store.write_progress(
        run_id,
        ProgressWrite(
            started=kit.started("s-new", kit.at(10)), completed=kit.completed("c-old", kit.at(1))
        ),
    )
    await store.write_progress(
        run_id,
        ProgressWrite(
            started=kit.started("s-old", kit.at(5)), completed=kit.completed("c-new", kit.at(6))
        ),
    )
    run = await store.get_run(run_id)
    assert run.last_started_block == kit.started("s-new", kit.at(10))
    assert run.last_completed_block == kit.completed("c-new", kit.at(6))


async def test_none_fields_leave_columns_alone(store, kit) -> None:
    run_id = await kit.run()
    full = ProgressWrite(
        started=kit.started("a", kit.at(1)),
        completed=kit.completed("a", kit.at(2)),
        cost_total=3.0,
        marker_write_failures=2,
    )
    await store.write_progress(run_id, full)
    await store.write_progress(run_id, ProgressWrite())
    run = await store.get_run(run_id)
    assert run.last_started_block == full.started
    assert run.last_completed_block == full.completed
    assert (run.cost_total, run.marker_write_failures) == (3.0, 2)


async def test_cost_and_failure_count_never_go_down(store, kit) -> None:
    run_id = await kit.run()
    for cost, failures in [(1.25, 1), (0.5, 0), (2.0, 3), (math.nan, None), (1.0, 2)]:
        write = ProgressWrite(cost_total=cost, marker_write_failures=failures)
        await store.write_progress(run_id, write)
    run = await store.get_run(run_id)
    assert (run.cost_total, run.marker_write_failures) == (2.0, 3)


async def test_returns_the_cancel_flag(store, kit) -> None:
    run_id = await kit.run()
    assert await store.write_progress(run_id, ProgressWrite()) is False
    await store.request_cancel(run_id, "api")
    before = store.round_trips
    assert await store.write_progress(run_id, ProgressWrite(cost_total=1.0)) is True
    assert store.round_trips - before == 1


async def test_progress_never_touches_an_ended_run_and_says_stop(store, kit) -> None:
    run_id = await kit.run()
    await store.finalize(run_id, kit.fin(RunStatus.COMPLETED))
    before = await store.get_run(run_id)
    assert await store.write_progress(run_id, ProgressWrite(cost_total=9.0)) is True
    after = await store.get_run(run_id)
    assert (after.cost_total, after.updated_at) == (before.cost_total, before.updated_at)
    assert await store.write_progress("no-such-run", ProgressWrite(cost_total=1.0)) is True


# Few distinct instants, so that ties are common.
_writes = st.lists(
    st.tuples(st.sampled_from(["started", "completed"]), st.integers(0, 4)),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writes=_writes)
async def test_stored_marker_is_the_latest_with_ties_to_the_last_writer(store, kit, writes) -> None:
    run_id = await kit.run(run_id=f"prop-{next(_counter)}")
    expected: dict[str, tuple[int, str]] = {}
    for i, (kind, second) in enumerate(writes):
        block = f"b{i}"
        when = kit.at(second)
        if kind == "started":
            write = ProgressWrite(started=kit.started(block, when))
        else:
            write = ProgressWrite(completed=kit.completed(block, when))
        await store.write_progress(run_id, write)
        if kind not in expected or second >= expected[kind][0]:
            expected[kind] = (second, block)
    run = await store.get_run(run_id)
    started, completed = expected.get("started"), expected.get("completed")
    assert run.last_started_block == (
        kit.started(started[1], kit.at(started[0])) if started else None
    )
    assert run.last_completed_block == (
        kit.completed(completed[1], kit.at(completed[0])) if completed else None
    )


async def test_concurrent_callers_share_one_store(store, kit) -> None:
    run_ids = [await kit.run() for _ in range(3)]
    writes = [
        store.write_progress(run_id, ProgressWrite(started=kit.started(f"b{i}", kit.at(i))))
        for i in range(20)
        for run_id in run_ids
    ]
    assert await asyncio.gather(*writes) == [False] * 60
    for run_id in run_ids:
        assert (await store.get_run(run_id)).last_started_block == kit.started("b19", kit.at(19))
