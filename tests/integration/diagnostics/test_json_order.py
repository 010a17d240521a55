"""Documents come back in the order they were written, on both backends (PostgreSQL's
jsonb sorted object keys; the documents are json since migration 0003)."""

from __future__ import annotations

import json

from flowtrail.runner import Runner, stored_workflow
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import open_store
from flowtrail.store.migrate import apply_pending, discover

CODE = """
def shaped():
    return {"zeta": 1, "alpha": {"yy": 2, "b": 3}, "middle": [{"z": 0, "a": 1}]}
"""

UNSORTED = '{"zeta":1,"alpha":{"yy":2,"b":3},"middle":[{"z":0,"a":1}]}'


def workflow(pause: bool) -> dict:
    blocks: dict = {
        "start": {"type": "start"},
        "shape": {"type": "function", "call": "FNS:shaped"},
    }
    connections = ["start -> shape"]
    if pause:
        blocks["ask"] = {"type": "wait", "for": "input"}
        blocks["done"] = {
            "type": "response",
            "output": {"zz": "{{ shape.result }}", "aa": "{{ ask.input }}"},
        }
        connections += ["shape -> ask", "ask -> done"]
    return {
        "name": "ordered",
        "inputs": {"zulu": {"type": "number", "default": 1}, "alpha": {"type": "string"}},
        "blocks": blocks,
        "connections": connections,
    }


def text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


async def test_output_input_and_trace_keep_their_key_order(db, flow) -> None:
    fl = flow(workflow(pause=False), CODE)
    report = await Runner(Settings(), db).run(fl.workflow, {"zulu": 2, "alpha": "x"})
    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    assert text(rec.output) == '{"result":' + UNSORTED + "}"
    assert list(rec.input) == ["zulu", "alpha"]
    shape = next(s for s in rec.execution_data["trace"]["children"] if s["name"] == "shape")
    assert text(shape["output"]["result"]) == UNSORTED
    snapshot = await db.get_snapshot(rec.snapshot_hash)
    assert list(snapshot["inputs"]) == ["zulu", "alpha"]


async def test_order_survives_a_pause_and_resume(db, flow) -> None:
    fl = flow(workflow(pause=True), CODE)
    runner = Runner(Settings(), db)
    paused = await runner.run(fl.workflow, {"alpha": "x"})
    assert paused.status is RunStatus.PAUSED
    resumed_wf = await stored_workflow(db, await db.get_run(paused.run_id))
    handle = await runner.resume(resumed_wf, paused.run_id, {"y": 1, "b": 2})
    done = await handle.result()
    assert done.status is RunStatus.COMPLETED
    rec = await db.get_run(paused.run_id)
    assert text(rec.output) == '{"zz":' + UNSORTED + ',"aa":{"y":1,"b":2}}'


async def test_0003_keeps_rows_written_before_it(blank_store_url: str) -> None:
    async with open_store(blank_store_url) as store:
        before = discover(store.backend)[:2]
        await apply_pending(store._migration_target(), before)
        await store.put_snapshot("h", "old", {"b": 1, "a": 2})
        assert (await store.migrate())[0] == "0003_ordered_json"
        assert await store.get_snapshot("h") == {"b": 1, "a": 2}  # equal, order aside
