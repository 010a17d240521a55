"""Retries, per-block timeouts and the run deadline, on real workflows."""

from __future__ import annotations

import asyncio
import time

from flowtrail.engine.executor import RunOptions
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import engine_blocks, load, run_workflow


async def test_retry_succeeds_on_the_third_try() -> None:
    result, log = await run_workflow("retry.yaml", {"fails": 2}, run_id="retry-ok")

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"result": "succeeded on attempt 3"}
    flaky = log.one_completed("flaky")
    assert flaky.success is True
    assert flaky.tries == 3
    # Tries happen inside one block run: one start, one completion, three calls.
    assert len(log.started("flaky")) == 1
    assert engine_blocks.ATTEMPTS == {"retry-ok": 3}


async def test_retry_exhausted_fails_the_block_after_exactly_the_allowed_tries() -> None:
    result, log = await run_workflow("retry.yaml", {"fails": 5}, run_id="retry-exhausted")

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "flaky"
    assert result.error == "RuntimeError: flaky failure on attempt 3"
    flaky = log.one_completed("flaky")
    assert flaky.success is False
    assert flaky.tries == 3
    assert engine_blocks.ATTEMPTS == {"retry-exhausted": 3}  # never a fourth try


async def test_block_timeout_fails_the_run_with_a_timeout_message() -> None:
    began = time.monotonic()
    result, log = await run_workflow("timeout.yaml")
    elapsed = time.monotonic() - began

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "stuck"
    assert result.error == "timed out after 0.2s"
    stuck = log.one_completed("stuck")
    assert stuck.success is False
    assert stuck.ended_at - stuck.started_at < 1.0  # did not wait for the 5 s sleep
    assert elapsed < 2.0
    assert engine_blocks.CANCELLED == ["stuck"]
    assert engine_blocks.FINISHED == []
    assert log.started("after") == []


async def test_block_timeout_with_an_error_edge_lets_the_run_continue() -> None:
    result, log = await run_workflow("timeout_handled.yaml")

    assert result.status is RunStatus.COMPLETED
    assert result.output == {"result": "fallback after: timed out after 0.2s"}
    stuck = log.one_completed("stuck")
    assert stuck.success is False and stuck.handled is True
    assert stuck.output == {"error": "timed out after 0.2s"}
    assert log.started("normal") == []


async def test_run_deadline_fails_the_run_as_timed_out() -> None:
    began = time.monotonic()
    result, log = await run_workflow("deadline.yaml", options=RunOptions(deadline_seconds=0.3))
    elapsed = time.monotonic() - began

    assert result.status is RunStatus.FAILED
    assert result.error == "run exceeded its deadline of 0.3s"
    assert result.error_block_id is None  # the run's deadline, not one block's timeout
    assert elapsed < 2.0
    assert log.one_completed("quick").success is True
    # `long` started but the deadline ended the run before it could complete.
    assert len(log.started("long")) == 1
    assert log.completed("long") == []
    await asyncio.sleep(0.05)  # let the abandoned task see its cancellation
    assert engine_blocks.CANCELLED == ["long"]


async def test_run_deadline_from_the_workflow_file_through_the_runner() -> None:
    began = time.monotonic()
    report = await Runner(Settings(observer_grace_seconds=0.2), store=None).run(
        load("deadline_in_file.yaml")
    )

    assert report.status is RunStatus.FAILED
    assert report.error == "run exceeded its deadline of 0.3s"
    assert time.monotonic() - began < 2.0


async def test_workflow_block_timeout_is_enforced() -> None:
    began = time.monotonic()
    result, log = await asyncio.wait_for(run_workflow("child_timeout.yaml"), 10)

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "call_child"
    assert result.error == "timed out after 0.2s"
    assert time.monotonic() - began < 0.7  # the child sleeps 0.8 s
    assert log.one_completed("call_child").success is False
    assert log.completed("slow") == []  # the child's block was abandoned
    await asyncio.sleep(0.02)
    assert engine_blocks.CANCELLED == ["child_slow"]


async def test_loop_block_timeout_is_enforced() -> None:
    began = time.monotonic()
    result, log = await asyncio.wait_for(run_workflow("loop_timeout.yaml"), 10)

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "repeat"
    assert "timed out after 0.2s" in (result.error or "")
    assert time.monotonic() - began < 0.7  # the body sleeps 0.8 s
    (done,) = log.containers_completed("repeat")
    assert done.success is False
    await asyncio.sleep(0.02)
    assert engine_blocks.CANCELLED == ["loop_slow"]
