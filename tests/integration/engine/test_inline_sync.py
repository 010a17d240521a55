"""A sync function block that has proven quick runs on the event loop's thread; everything
the worker thread gave stays: a slow call sends the function back to threads for good, a
block's timeout still fires mid-call, a cancel still ends the run at once, and a long
blocking function holds up neither other branches nor observers."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from flowtrail.engine.executor import Execution, RunOptions
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import make_flow
from tests.integration.engine.engine_support import EventLog, eventually

CODE = """
import threading
import time

threads = []  # (function, call argument, thread ident), in call order
slow_at = {"i": None, "seconds": 0.0}

def quick(x):
    threads.append(("quick", x, threading.get_ident()))
    print(f"quick {x}")
    return x + 1

def sometimes(x):
    threads.append(("sometimes", x, threading.get_ident()))
    if x == slow_at["i"]:
        time.sleep(slow_at["seconds"])
    return x + 1

def sleepy(seconds):
    threads.append(("sleepy", seconds, threading.get_ident()))
    time.sleep(seconds)
    return seconds
"""


def chain(fn: str, n: int, **block: Any) -> dict[str, Any]:
    blocks: dict[str, Any] = {"start": {"type": "start"}}
    for i in range(n):
        x: Any = 0 if i == 0 else "{{ b" + str(i - 1) + ".result }}"
        blocks[f"b{i}"] = {"type": "function", "call": f"FNS:{fn}", "with": {"x": x}, **block}
    edges = ["start -> b0"] + [f"b{i - 1} -> b{i}" for i in range(1, n)]
    return {"name": "inline", "blocks": blocks, "connections": edges}


async def run(flow: Any, *, inline: float = 0.002, **kwargs: Any) -> tuple[Any, EventLog]:
    log = EventLog()
    options = RunOptions(inline_sync_seconds=inline)
    ex = Execution(flow.workflow, None, run_id="inline", hooks=log, options=options, **kwargs)
    return await ex.run(), log


def where(module: Any, fn: str) -> list[str]:
    loop_thread = threading.get_ident()
    return [
        "loop" if ident == loop_thread else "worker"
        for name, _, ident in module.threads
        if name == fn
    ]


async def test_a_quick_function_runs_on_the_loops_thread_once_proven(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, chain("quick", 8), CODE)
    result, log = await run(flow)
    assert result.status is RunStatus.COMPLETED
    assert where(flow.module, "quick") == ["worker"] * 3 + ["loop"] * 5
    # what it printed still goes to each block's span, inline or not
    assert [log.one_completed(f"b{i}").logs for i in range(8)] == [f"quick {i}\n" for i in range(8)]
    assert log.one_completed("b7").output == {"result": 8}


async def test_inline_off_keeps_every_call_in_a_worker_thread(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, chain("quick", 6), CODE)
    result, _ = await run(flow, inline=0)
    assert result.status is RunStatus.COMPLETED
    assert where(flow.module, "quick") == ["worker"] * 6


async def test_one_slow_call_sends_the_function_back_to_threads(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, chain("sometimes", 10), CODE)
    flow.module.slow_at.update(i=5, seconds=0.05)
    result, _ = await run(flow)
    assert result.status is RunStatus.COMPLETED
    # 0-2 prove it, 3-5 inline (5 is slow), then threads for good
    assert where(flow.module, "sometimes") == ["worker"] * 3 + ["loop"] * 3 + ["worker"] * 4


async def test_a_slow_call_while_proving_starts_the_count_again(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, chain("sometimes", 9), CODE)
    flow.module.slow_at.update(i=1, seconds=0.05)
    await run(flow)
    assert where(flow.module, "sometimes") == ["worker"] * 5 + ["loop"] * 4


async def test_a_timeout_fires_mid_call_even_for_a_proven_function(tmp_path: Path) -> None:
    definition = chain("sometimes", 6, timeout=0.3)
    flow = make_flow(tmp_path, definition, CODE)
    flow.module.slow_at.update(i=4, seconds=3.0)
    began = time.monotonic()
    result, _ = await run(flow)
    took = time.monotonic() - began
    assert result.status is RunStatus.FAILED and result.error_block_id == "b4"
    assert "timed out after 0.3s" in (result.error or "")
    assert took < 2.5, "the timer fired while the call was still sleeping"
    assert set(where(flow.module, "sometimes")) == {"worker"}  # timeout blocks take a thread


def parallel_with_sleeper(seconds: float, quick_count: int) -> dict[str, Any]:
    return {
        "name": "inline-parallel",
        "blocks": {
            "start": {"type": "start"},
            "slow": {"type": "function", "call": "FNS:sleepy", "with": {"seconds": seconds}},
            **chain("quick", quick_count)["blocks"],
        },
        "connections": ["start -> slow"] + chain("quick", quick_count)["connections"],
    }


async def test_a_long_blocking_function_holds_up_no_other_branch(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, parallel_with_sleeper(1.5, 20), CODE)
    result, log = await run(flow)
    assert result.status is RunStatus.COMPLETED
    slow_end = log.one_completed("slow").ended_at
    assert log.one_completed("b19").ended_at < slow_end - 1.0
    assert where(flow.module, "sleepy") == ["worker"]
    assert where(flow.module, "quick").count("loop") == 17


async def test_a_cancel_ends_the_run_while_a_sync_call_blocks(tmp_path: Path) -> None:
    flow = make_flow(tmp_path, parallel_with_sleeper(5.0, 10), CODE)
    log = EventLog()
    ex = Execution(
        flow.workflow,
        None,
        run_id="inline",
        hooks=log,
        options=RunOptions(inline_sync_seconds=0.002),
    )
    running = asyncio.ensure_future(ex.run())
    await eventually(lambda: log.completed("b9"))
    await asyncio.sleep(0.1)
    began = time.monotonic()
    ex.cancel()
    result = await running
    assert result.status is RunStatus.CANCELLED
    assert time.monotonic() - began < 1.0
