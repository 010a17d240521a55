"""A ``response`` inside a loop or a parallel ends the run at once, and both containers are
recorded alike: the container and its iteration in progress are left ``abandoned``, and
no completion marker lands after the response's."""

from __future__ import annotations

import pytest

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import one_span, spans_of, trace_of

CODE = """
import asyncio

async def work(i):
    await asyncio.sleep(0.02 * i)
    return i
"""


def answering(kind: str) -> dict:
    index = f"{{{{ {kind}.index }}}}"
    container: dict = {
        "type": kind,
        "count": 4,
        "blocks": {
            "w": {"type": "function", "call": "FNS:work", "with": {"i": index}},
            "r": {"type": "response", "output": f"answer {index}"},
        },
        "connections": ["w -> r"],
    }
    if kind == "parallel":
        container["max_concurrency"] = 2
    return {
        "name": "answering",
        "blocks": {"start": {"type": "start"}, "c": container},
        "connections": ["start -> c"],
    }


@pytest.mark.parametrize("kind", ["loop", "parallel"])
async def test_a_response_in_a_container_is_the_last_thing_completed(db, flow, kind) -> None:
    fl = flow(answering(kind), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    assert report.output == "answer 0"
    rec = await db.get_run(report.run_id)
    assert rec.last_completed_block is not None
    assert rec.last_completed_block.block_id == "r"  # not the container, after it
    trace = trace_of(rec)
    container = one_span(trace, block_id="c")
    assert container["status"] == "abandoned"
    assert "iterations" not in container  # no completion was recorded for it
    first = spans_of(trace, type="iteration", index=0)
    assert [s["status"] for s in first] == ["abandoned"]
    assert [s["status"] for s in spans_of(trace, block_id="r")] == ["success"]
