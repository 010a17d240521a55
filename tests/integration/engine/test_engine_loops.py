"""Loops (count, for_each, while, do_while, caps, empty), parallels (limit, order, empty)
and a loop inside a parallel inside a loop."""

from __future__ import annotations

import pytest

from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    ContainerCompleted,
    ContainerStarted,
    Frame,
)
from flowtrail.engine.executor import RunOptions
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import engine_blocks, max_overlap, run_workflow


async def test_count_loop_runs_count_times_with_loop_index() -> None:
    result, log = await run_workflow("loop_count.yaml", {"n": 3})

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"results": [{"result": 0}, {"result": 10}, {"result": 20}]}
    assert [e.index for e in log.iterations("repeat")] == [0, 1, 2]
    assert all(e.success for e in log.iterations("repeat"))
    assert [e.path for e in log.started("times_ten")] == [
        (Frame("repeat", "loop", i),) for i in range(3)
    ]
    (done,) = log.containers_completed("repeat")
    assert done.success is True and done.iterations == 3


async def test_for_each_loop_reads_loop_item_and_loop_index() -> None:
    result, log = await run_workflow("loop_for_each.yaml", {"items": ["a", {"k": 1}, 7]})

    assert result.status is RunStatus.COMPLETED
    assert result.output == {
        "results": [
            {"result": {"index": 0, "item": "a"}},
            {"result": {"index": 1, "item": {"k": 1}}},  # native values, not their text
            {"result": {"index": 2, "item": 7}},
        ]
    }
    assert engine_blocks.CALLS == [("label", (0, "a")), ("label", (1, {"k": 1})), ("label", (2, 7))]
    assert [e.path for e in log.started("tag")] == [(Frame("each", "loop", i),) for i in range(3)]


async def test_while_loop_stops_when_its_condition_on_loop_index_is_false() -> None:
    result, log = await run_workflow("loop_while.yaml", {"n": 3})

    assert result.error is None
    assert result.status is RunStatus.COMPLETED
    assert result.output == {"results": [{"result": 0}, {"result": 1}, {"result": 2}]}
    assert len(log.started("tick")) == 3
    (done,) = log.containers_completed("counting")
    assert done.iterations == 3
    (started,) = log.containers_started("counting")
    assert started.total is None  # a while loop does not know its length up front


@pytest.mark.parametrize(("n", "expected_runs"), [(0, 1), (1, 1), (3, 3)])
async def test_do_while_loop_runs_at_least_once(n: int, expected_runs: int) -> None:
    # `loop.index + 1 < n` is false after the first pass for n <= 1: one run, never zero.
    result, log = await run_workflow("loop_do_while.yaml", {"n": n})

    assert result.error is None
    assert result.status is RunStatus.COMPLETED
    assert result.output == {"results": [{"result": i} for i in range(expected_runs)]}
    assert len(log.started("tick")) == expected_runs
    (done,) = log.containers_completed("again")
    assert done.success is True and done.iterations == expected_runs


async def test_do_while_condition_reads_the_inner_blocks_outputs() -> None:
    result, log = await run_workflow("loop_do_while_inner.yaml", {"target": 7})

    assert result.error is None
    assert result.status is RunStatus.COMPLETED
    # step = 2, 4, 6, 8: the loop stops after the first value that is not < 7
    assert result.output == {"results": [{"result": v} for v in (2, 4, 6, 8)]}
    assert len(log.started("step")) == 4


@pytest.mark.parametrize(
    ("workflow", "inputs", "container", "message", "inner", "inner_runs"),
    [
        (
            "loop_count.yaml",
            {"n": 5},
            "repeat",
            "5 iterations exceed max_iterations (3)",
            "times_ten",
            0,
        ),
        (
            "loop_for_each.yaml",
            {"items": [1, 2, 3, 4]},
            "each",
            "4 iterations exceed max_iterations (3)",
            "tag",
            0,
        ),
        (
            "loop_while.yaml",
            {"n": 100},
            "counting",
            "reached max_iterations (5) and the condition still holds",
            "tick",
            5,
        ),
        (
            "loop_do_while.yaml",
            {"n": 100},
            "again",
            "reached max_iterations (4) and the condition still holds",
            "tick",
            4,
        ),
    ],
)
async def test_loop_over_max_iterations_fails_with_a_clear_message(
    workflow: str,
    inputs: dict[str, object],
    container: str,
    message: str,
    inner: str,
    inner_runs: int,
) -> None:
    result, log = await run_workflow(workflow, inputs)

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == container
    assert result.error == message
    assert len(log.started(inner)) == inner_runs
    (done,) = log.containers_completed(container)
    assert done.success is False and done.error == message


@pytest.mark.parametrize(
    ("workflow", "inputs", "container", "inner"),
    [
        ("loop_count.yaml", {"n": 0}, "repeat", "times_ten"),
        ("loop_for_each.yaml", {"items": []}, "each", "tag"),
        ("loop_while.yaml", {"n": 0}, "counting", "tick"),
        ("parallel_limit.yaml", {"delays": []}, "fan", "work"),
    ],
)
async def test_empty_loop_or_parallel_yields_no_results_but_still_has_lifecycle_events(
    workflow: str, inputs: dict[str, object], container: str, inner: str
) -> None:
    result, log = await run_workflow(workflow, inputs)

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"results": []}
    assert len(log.containers_started(container)) == 1
    (done,) = log.containers_completed(container)
    assert done.success is True and done.iterations == 0
    assert log.events.index(log.containers_started(container)[0]) < log.events.index(done)
    assert log.started(inner) == []
    assert log.iterations(container) == []


async def test_count_loop_container_started_carries_its_total() -> None:
    _result, log = await run_workflow("loop_count.yaml", {"n": 2})

    (started,) = log.containers_started("repeat")
    assert started.total == 2
    _result, each_log = await run_workflow("loop_for_each.yaml", {"items": ["a"]})
    (each_started,) = each_log.containers_started("each")
    assert each_started.total == 1


async def test_parallel_respects_max_concurrency_and_keeps_branch_order() -> None:
    # Branch 0 is the slowest: every other branch finishes before it.
    delays = [0.3, 0.05, 0.05, 0.02, 0.01]
    result, log = await run_workflow("parallel_limit.yaml", {"delays": delays}, run_id="limit-run")

    assert result.status is RunStatus.COMPLETED
    # Results are in branch order even though completion order was different.
    assert result.output == {"results": [{"result": i} for i in range(5)]}
    finish_order = [e.path[-1].index for e in log.completed("work")]
    assert finish_order != sorted(finish_order)
    assert finish_order[-1] == 0
    # Measured two ways: never more than two branches at once, and really two at once.
    assert engine_blocks.PEAK["limit-run"] == 2
    spans = {}
    for event in log.events:
        if isinstance(event, BlockStarted | BlockCompleted) and event.block_id == "work":
            start, end = spans.get(event.path, (None, None))
            if isinstance(event, BlockStarted):
                spans[event.path] = (event.started_at, end)
            else:
                spans[event.path] = (start, event.ended_at)
    assert len(spans) == 5
    assert max_overlap(list(spans.values())) == 2
    (started,) = log.containers_started("fan")
    assert started.total == 5


async def test_loop_in_parallel_in_loop_nests_results_and_event_paths() -> None:
    result, log = await run_workflow("nested.yaml")

    assert result.status is RunStatus.COMPLETED
    expected = {
        "results": [
            {
                "results": [
                    {"results": [{"result": f"o{o}-b{b}-i{i}"} for i in range(2)]} for b in range(2)
                ]
            }
            for o in range(2)
        ]
    }
    assert result.output == expected

    leaves = log.completed("leaf")
    assert len(leaves) == 8
    for leaf in leaves:
        outer, fan, inner = leaf.path
        assert (outer.container_id, outer.kind) == ("outer", "loop")
        assert (fan.container_id, fan.kind) == ("fan", "parallel")
        assert (inner.container_id, inner.kind) == ("inner", "loop")
        # The frames say where the leaf ran, and its output agrees with them.
        assert leaf.output == {"result": f"o{outer.index}-b{fan.index}-i{inner.index}"}
    assert {leaf.path for leaf in leaves} == {
        (Frame("outer", "loop", o), Frame("fan", "parallel", b), Frame("inner", "loop", i))
        for o in range(2)
        for b in range(2)
        for i in range(2)
    }
    # Containers carry the path of the scope they run in, outermost first.
    assert [e.path for e in log.of(ContainerStarted, "outer")] == [()]
    assert [e.path for e in log.of(ContainerStarted, "fan")] == [
        (Frame("outer", "loop", o),) for o in range(2)
    ]
    inner_paths = [e.path for e in log.of(ContainerStarted, "inner")]
    assert len(inner_paths) == 4
    assert set(inner_paths) == {
        (Frame("outer", "loop", o), Frame("fan", "parallel", b)) for o in range(2) for b in range(2)
    }
    assert [e.path for e in log.started("mark")] == [(Frame("outer", "loop", o),) for o in range(2)]
    assert all(e.success for e in log.of(ContainerCompleted))
    assert len(log.of(ContainerCompleted)) == 1 + 2 + 4


async def test_failed_iteration_stops_the_loop_and_takes_its_error_edge() -> None:
    result, log = await run_workflow("loop_error_edge.yaml")

    message = "loop 'each' iteration 1, block 'work': RuntimeError: fail failed"
    assert result.status is RunStatus.COMPLETED
    assert result.output == {"result": f"loop failed: {message}"}
    # Iteration 0 ran, iteration 1 failed, iteration 2 never started.
    assert [e.path for e in log.started("work")] == [
        (Frame("each", "loop", 0),),
        (Frame("each", "loop", 1),),
    ]
    assert [(e.index, e.success) for e in log.iterations("each")] == [(0, True), (1, False)]
    (done,) = log.containers_completed("each")
    assert done.success is False and done.handled is True and done.error == message
    assert log.started("normal") == []


@pytest.mark.parametrize(("limit", "peak"), [(1, 1), (64, 3)])
async def test_run_max_concurrency_bounds_running_blocks(limit: int, peak: int) -> None:
    result, _log = await run_workflow(
        "parallel_plain.yaml", options=RunOptions(max_concurrency=limit), run_id="plain"
    )

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"results": [{"result": "done"}] * 3}
    assert engine_blocks.PEAK["plain"] == peak


async def test_run_max_concurrency_also_bounds_blocks_in_child_workflows() -> None:
    result, _log = await run_workflow(
        "parallel_children.yaml", options=RunOptions(max_concurrency=1), run_id="children"
    )

    assert result.status is RunStatus.COMPLETED
    assert engine_blocks.PEAK["children"] == 1  # today: 3
