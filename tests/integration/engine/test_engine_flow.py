"""Graph behaviour of real workflows: sequence, fan-out/fan-in, branches converging, and
what a failing block does to the run (handled by an error edge, or not)."""

from __future__ import annotations

import pytest

from flowtrail.engine.events import BlockCompleted, BlockStarted
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import engine_blocks, run_workflow


async def test_sequence_runs_blocks_in_order_passing_native_values() -> None:
    result, log = await run_workflow("sequence.yaml", {"x": 1})

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"result": "total=111"}
    # Each block starts only after the one before it completed, in file order.
    kinds = [(type(e).__name__, e.block_id) for e in log]
    assert kinds == [
        ("BlockStarted", "start"),
        ("BlockCompleted", "start"),
        ("BlockStarted", "first"),
        ("BlockCompleted", "first"),
        ("BlockStarted", "second"),
        ("BlockCompleted", "second"),
        ("BlockStarted", "third"),
        ("BlockCompleted", "third"),
    ]
    for before, after in [("start", "first"), ("first", "second"), ("second", "third")]:
        assert log.started(after)[0].started_at >= log.one_completed(before).ended_at
    # A whole-string template keeps the native type: `second` got the int 11, not "11".
    assert log.one_completed("second").input == {"a": 11, "b": 100}
    assert log.one_completed("first").output == {"result": 11}
    assert engine_blocks.CALLS == [("add", (1, 10)), ("add", (11, 100)), ("echo", "total=111")]


async def test_fan_out_branches_overlap_in_time_and_fan_in_runs_once() -> None:
    result, log = await run_workflow("fan_out.yaml")

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"result": ["L", "R"]}
    left_start, right_start = log.started("left")[0], log.started("right")[0]
    left_end, right_end = log.one_completed("left"), log.one_completed("right")
    # Concurrency, measured: each branch started before the other one ended.
    assert left_start.started_at < right_end.ended_at
    assert right_start.started_at < left_end.ended_at
    # Fan-in: `join` started exactly once, and only after both branches completed.
    joins = log.started("join")
    assert len(joins) == 1
    assert joins[0].started_at >= max(left_end.ended_at, right_end.ended_at)
    assert log.one_completed("join").input == {"value": ["L", "R"]}


@pytest.mark.parametrize(
    ("amount", "ran", "pruned", "branch"),
    [
        (500, ["start", "check", "big_a", "big_b", "after"], ["small_a"], "big"),
        (5, ["start", "check", "small_a", "after"], ["big_a", "big_b"], "small"),
    ],
)
async def test_condition_branches_converge_on_one_block(
    amount: int, ran: list[str], pruned: list[str], branch: str
) -> None:
    result, log = await run_workflow("condition.yaml", {"amount": amount})

    assert result.status is RunStatus.COMPLETED
    assert log.one_completed("check").output == {"branch": branch}
    assert log.started_ids() == ran
    assert log.completed_ids() == ran
    # The block after the branch runs once whichever way it went...
    assert len(log.started("after")) == 1
    assert result.output == {"result": f"after {branch}"}
    # ...and the blocks of the branch not taken (including the pruned cascade) never start.
    for block in pruned:
        assert log.started(block) == []


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
async def test_router_takes_one_route_and_converges(channel: str) -> None:
    result, log = await run_workflow("router.yaml", {"channel": channel})

    assert result.status is RunStatus.COMPLETED
    assert log.one_completed("pick_channel").output == {"route": channel}
    assert log.started_ids() == ["start", "pick_channel", channel, "done"]
    assert len(log.started("done")) == 1
    assert result.output == {"result": f"sent via {channel}"}
    assert ("echo", channel) in engine_blocks.CALLS
    for other in {"email", "sms", "push"} - {channel}:
        assert log.started(other) == []
        assert ("echo", other) not in engine_blocks.CALLS


async def test_router_picking_an_unknown_route_fails_the_router() -> None:
    result, log = await run_workflow("router.yaml", {"channel": "pigeon"})

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "pick_channel"
    assert "router picked 'pigeon', which is not one of its routes: email, sms, push" in (
        result.error or ""
    )
    assert log.started_ids() == ["start", "pick_channel"]


async def test_error_edge_handles_the_failure_and_the_run_goes_on() -> None:
    result, log = await run_workflow("error_edge.yaml")

    assert result.status is RunStatus.COMPLETED
    assert result.error is None
    risky = log.one_completed("risky")
    assert risky.success is False
    assert risky.handled is True
    assert risky.output == {"error": "RuntimeError: disk on fire"}
    # The error edge fired and the handler read `risky.error`; the success path was pruned.
    assert result.output == {"result": "recovered from: RuntimeError: disk on fire"}
    assert log.started("on_success") == []
    assert log.started_ids() == ["start", "risky", "recover"]


async def test_unhandled_error_fails_the_run_awaits_siblings_and_starts_nothing_new() -> None:
    result, log = await run_workflow("unhandled_error.yaml")

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "doomed"
    assert result.error == "RuntimeError: kaboom"
    assert result.output is None
    doomed = log.one_completed("doomed")
    assert doomed.success is False and doomed.handled is False
    # The sibling that was in flight when `doomed` failed was awaited, not abandoned.
    slow = log.one_completed("slow")
    assert slow.success is True
    assert slow.output == {"result": "slow done"}
    assert slow.ended_at > doomed.ended_at
    # Nothing started after the failure: not the follow-up of either branch.
    assert [e for e in log.started() if e.started_at > doomed.ended_at] == []
    assert log.started("after_doomed") == []
    assert log.started("after_slow") == []
    assert log.events[-1] == slow
    assert isinstance(log.events[-1], BlockCompleted)
    assert not any(isinstance(e, BlockStarted) for e in log.events[log.events.index(doomed) :])


async def test_failing_parallel_branch_awaits_running_branches_and_starts_no_more() -> None:
    result, log = await run_workflow("parallel_failure.yaml")

    assert result.status is RunStatus.FAILED
    # The error names the inner block, and says which container and branch it came from.
    assert result.error_block_id == "work"
    assert (
        result.error == "parallel 'fan' failed, block 'work': branch 0: RuntimeError: fail failed"
    )
    branches = {e.path[-1].index: e for e in log.completed("work")}
    assert branches[0].success is False
    # Branch 1 was running when branch 0 failed: it was awaited and completed.
    assert branches[1].success is True
    assert branches[1].ended_at > branches[0].ended_at
    # Branch 2 was waiting for a free slot: it never started, nor did anything after.
    assert sorted(branches) == [0, 1]
    assert [c for c in engine_blocks.CALLS if c[0] == "by_kind"] == [
        ("by_kind", "fail"),
        ("by_kind", "slow"),
    ]
    assert log.started("after") == []
    (done,) = log.containers_completed("fan")
    assert done.success is False and done.error == result.error
