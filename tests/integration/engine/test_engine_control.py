"""Response blocks, child workflows (output, failure, event frames, depth cap) and
references (loop/parallel items, run-time reference errors)."""

from __future__ import annotations

import asyncio
import time

from flowtrail.engine.events import Frame
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import engine_blocks, run_workflow


async def test_response_locks_the_output_and_stops_the_run() -> None:
    began = time.monotonic()
    result, log = await run_workflow("respond_early.yaml", {"x": 7})
    elapsed = time.monotonic() - began

    assert result.status is RunStatus.COMPLETED
    # The output is the response block's output, with native and text templates resolved.
    assert result.output == {"answer": 7, "note": "x is 7"}
    assert log.one_completed("reply").output == {"answer": 7, "note": "x is 7"}
    # The parallel block was running, and was abandoned rather than completed.
    assert len(log.started("slow")) == 1
    assert elapsed < 2.0
    # Nothing after or parallel to the response ever completed.
    assert log.completed_ids() == ["start", "reply"]
    assert log.started("after_slow") == []
    await asyncio.sleep(0.05)
    assert engine_blocks.CANCELLED == ["slow"]
    assert engine_blocks.FINISHED == []


async def test_blocks_after_a_response_never_start() -> None:
    result, log = await run_workflow("respond_early.yaml", {"x": 7})
    await asyncio.sleep(0.05)

    assert result.output == {"answer": 7, "note": "x is 7"}
    assert ("echo", "after reply") not in engine_blocks.CALLS
    assert log.started("after_reply") == []


async def test_child_workflow_output_becomes_the_block_output() -> None:
    result, log = await run_workflow("parent.yaml", {"x": 21}, run_id="parent-run")

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"result": "child said 42"}
    call = log.one_completed("call_child")
    assert call.success is True
    assert call.input == {"x": 21}
    assert call.output == {"result": 42}
    # The child's blocks are reported in the same run, under a workflow frame.
    double = log.one_completed("double")
    assert double.run_id == "parent-run"
    assert double.path == (Frame("call_child", "workflow", 0),)
    assert [e.path for e in log.started("start")] == [(), (Frame("call_child", "workflow", 0),)]
    assert log.one_completed("call_child").started_at <= log.started("double")[0].started_at
    assert log.one_completed("double").ended_at <= call.ended_at


async def test_child_workflow_failure_fails_the_block() -> None:
    result, log = await run_workflow("parent_of_failing.yaml")

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "explode"  # the innermost failing block
    assert result.error_path == ("call_child", "explode")
    assert result.error == (
        "child workflow 'child_fail' failed at block 'explode': RuntimeError: child exploded"
    )
    explode = log.one_completed("explode")
    assert explode.success is False
    assert explode.path == (Frame("call_child", "workflow", 0),)
    assert log.one_completed("call_child").success is False
    assert log.started("after") == []


async def test_recursive_workflow_fails_at_the_call_depth_cap() -> None:
    result, log = await asyncio.wait_for(run_workflow("recursive.yaml"), 10)

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "again"
    assert "maximum workflow call depth (25) exceeded" in (result.error or "")
    # 26 nested calls of `again` (depths 0..25); the deepest one is the one refused.
    calls = log.started("again")
    assert len(calls) == 26
    assert max(len(e.path) for e in calls) == 25
    assert all(f == Frame("again", "workflow", 0) for e in calls for f in e.path)
    deepest = [e for e in log.completed("again") if len(e.path) == 25]
    assert len(deepest) == 1
    assert deepest[0].error == "maximum workflow call depth (25) exceeded"


async def test_references_to_parallel_and_loop_items() -> None:
    people = [{"name": "Ada"}, {"name": "Grace"}]
    result, _log = await run_workflow(
        "item_refs.yaml", {"people": people, "scores": {"x": 3, "y": 5}}
    )

    assert result.status is RunStatus.COMPLETED
    assert result.output == {
        "result": {
            "greetings": [{"result": "hello Ada (1/2)"}, {"result": "hello Grace (2/2)"}],
            "first_score": 6,
        }
    }
    # A for_each over a mapping gives {key, value} items, passed on natively.
    assert ("echo", {"name": "y", "doubled": 10, "item": {"key": "y", "value": 5}}) in (
        engine_blocks.CALLS
    )


async def test_runtime_reference_error_names_available_fields_and_takes_the_error_edge() -> None:
    result, log = await run_workflow("ref_missing.yaml")

    message = "'missing' does not exist; available: alpha, beta"
    assert result.status is RunStatus.COMPLETED
    use = log.one_completed("use")
    assert use.success is False and use.handled is True
    assert use.error == message
    assert result.output == {"result": f"handled: {message}"}
    # The failing block's function never ran: the reference failed before the call.
    assert [c for c in engine_blocks.CALLS if c[0] == "echo"] == [("echo", f"handled: {message}")]


async def test_runtime_reference_error_without_error_edge_fails_the_run() -> None:
    result, log = await run_workflow("ref_missing_unhandled.yaml")

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "use"
    assert result.error == "'missing' does not exist; available: alpha, beta"
    assert log.one_completed("use").tries == 1
    assert not any(c[0] == "echo" for c in engine_blocks.CALLS)


async def test_response_inside_a_loop_ends_the_run_with_its_output() -> None:
    result, log = await run_workflow("respond_in_loop.yaml")

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"first": "a", "index": 0}
    # Iterations 1 and 2 never started, nor did the block after the loop.
    assert [e.path for e in log.started("work")] == [(Frame("each", "loop", 0),)]
    assert engine_blocks.CALLS == [("echo", "a")]
    assert log.started("after") == []


async def test_response_inside_a_child_ends_the_child_not_the_parent() -> None:
    result, log = await run_workflow("parent_of_responder.yaml")

    assert result.status is RunStatus.COMPLETED
    assert log.one_completed("call_child").output == {"from_child": "child answer"}
    assert result.output == {"result": "parent after: child answer"}
    assert log.started("more") == []  # the child stopped at its response
    assert engine_blocks.CALLS == [("echo", "parent after: child answer")]
