"""A resume without input, of a wait whose input a later block reads, is refused before
anything on the run changes (it used to fail the run later with "'None' has no attribute
'ok'"); a wait nobody reads can still be resumed without input."""

from __future__ import annotations

import pytest

from flowtrail.errors import InputError
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus

CODE = """
def noop():
    return None
"""


def gated(read: bool) -> dict:
    done = {"type": "response", "output": {"ok": "{{ ask.input.ok }}"} if read else "go"}
    return {
        "name": "gated",
        "blocks": {
            "start": {"type": "start"},
            "ask": {"type": "wait", "for": "input"},
            "done": done,
        },
        "connections": ["start -> ask", "ask -> done"],
    }


async def test_resume_without_input_is_refused_and_the_run_is_untouched(db, flow) -> None:
    fl = flow(gated(read=True), CODE)
    runner = Runner(Settings(), db)
    paused = await runner.run(fl.workflow)
    assert paused.status is RunStatus.PAUSED
    before = await db.get_run(paused.run_id)

    with pytest.raises(InputError, match="waiting for input at block 'ask', and block 'done'"):
        await runner.resume(fl.workflow, paused.run_id)

    after = await db.get_run(paused.run_id)
    assert after == before  # not claimed, not touched
    done = await (await runner.resume(fl.workflow, paused.run_id, {"ok": True})).result()
    assert done.status is RunStatus.COMPLETED
    assert done.output == {"ok": True}


async def test_a_wait_nobody_reads_resumes_without_input(db, flow) -> None:
    fl = flow(gated(read=False), CODE)
    runner = Runner(Settings(), db)
    paused = await runner.run(fl.workflow)
    done = await (await runner.resume(fl.workflow, paused.run_id)).result()
    assert done.status is RunStatus.COMPLETED
    assert done.output == "go"
