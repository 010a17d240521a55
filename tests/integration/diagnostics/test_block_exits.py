"""``sys.exit()``, ``SystemExit`` and ``KeyboardInterrupt`` raised by a function block's own
code fail that block like any other exception: recorded on the row and the span, with the
block named, and an ``error`` edge handles them."""

from __future__ import annotations

import pytest

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import one_span, trace_of

CODE = """
import sys

def sync_exit():
    sys.exit(3)

async def async_exit():
    raise SystemExit("bye")

def sync_interrupt():
    raise KeyboardInterrupt

async def async_interrupt():
    raise KeyboardInterrupt("stop")

def fallback():
    return "handled"
"""


def one_block(fn: str, *, handled: bool = False) -> dict:
    blocks: dict = {"start": {"type": "start"}, "b": {"type": "function", "call": f"FNS:{fn}"}}
    connections = ["start -> b"]
    if handled:
        blocks["fb"] = {"type": "function", "call": "FNS:fallback"}
        connections.append("b.error -> fb")
    return {"name": "exits", "blocks": blocks, "connections": connections}


@pytest.mark.parametrize(
    ("fn", "raised"),
    [
        ("sync_exit", "SystemExit(3)"),
        ("async_exit", "SystemExit('bye')"),
        ("sync_interrupt", "KeyboardInterrupt()"),
        ("async_interrupt", "KeyboardInterrupt('stop')"),
    ],
)
async def test_an_exit_raised_by_a_block_fails_that_block_and_the_run(
    db, flow, fn: str, raised: str
) -> None:
    fl = flow(one_block(fn), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.FAILED
    assert report.error_block_id == "b"
    assert report.error == f"the function raised {raised}; a block cannot end the process"
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.FAILED
    assert rec.error_block_id == "b"
    assert rec.last_completed_block is not None
    assert rec.last_completed_block.block_id == "b" and not rec.last_completed_block.success
    span = one_span(trace_of(rec), block_id="b")
    assert span["status"] == "error" and raised in span["error"]


@pytest.mark.parametrize("fn", ["sync_exit", "async_interrupt"])
async def test_an_error_edge_handles_an_exit_like_any_failure(db, flow, fn: str) -> None:
    fl = flow(one_block(fn, handled=True), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED, report.error
    assert report.output == {"result": "handled"}
