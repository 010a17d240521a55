"""What an iteration or branch contributes to ``results``: the output of each block that
ran and whose outgoing edges were all pruned (the last block that ran on each path), on
the stored record of both backends."""

from __future__ import annotations

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus

CODE = """
def fetch(i):
    if i == 1:
        raise ValueError(f"item {i} is unavailable")
    return f"fetched {i}"

def fallback(i):
    return f"fallback {i}"

def log(i):
    return f"logged {i}"
"""


def body(index: str) -> dict:
    return {
        "blocks": {
            "fetch": {"type": "function", "call": "FNS:fetch", "with": {"i": index}},
            "fallback": {"type": "function", "call": "FNS:fallback", "with": {"i": index}},
        },
        "connections": ["fetch.error -> fallback"],
    }


def workflow(container: dict) -> dict:
    return {
        "name": "results",
        "blocks": {"start": {"type": "start"}, "c": container},
        "connections": ["start -> c"],
    }


EXPECTED = [{"result": "fetched 0"}, {"result": "fallback 1"}, {"result": "fetched 2"}]


async def test_parallel_branches_keep_the_output_of_a_block_whose_error_edge_was_pruned(
    db, flow
) -> None:
    fl = flow(workflow({"type": "parallel", "count": 3, **body("{{ parallel.index }}")}), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED, report.error
    assert report.output == {"results": EXPECTED}
    assert (await db.get_run(report.run_id)).output == {"results": EXPECTED}


async def test_loop_iterations_follow_the_same_rule(db, flow) -> None:
    fl = flow(workflow({"type": "loop", "count": 3, **body("{{ loop.index }}")}), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED, report.error
    assert (await db.get_run(report.run_id)).output == {"results": EXPECTED}


async def test_every_path_that_ended_contributes_a_mapping_entry(db, flow) -> None:
    looped = body("{{ loop.index }}")
    looped["blocks"]["log"] = {
        "type": "function",
        "call": "FNS:log",
        "with": {"i": "{{ loop.index }}"},
    }
    fl = flow(workflow({"type": "loop", "count": 2, **looped}), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED, report.error
    assert (await db.get_run(report.run_id)).output == {
        "results": [
            {"fetch": {"result": "fetched 0"}, "log": {"result": "logged 0"}},
            {"fallback": {"result": "fallback 1"}, "log": {"result": "logged 1"}},
        ]
    }


async def test_the_run_output_follows_the_same_rule(db, flow) -> None:
    definition = {"name": "top", **body("7")}
    definition["blocks"]["start"] = {"type": "start"}
    definition["connections"] = ["start -> fetch", "fetch.error -> fallback"]
    fl = flow(definition, CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED, report.error
    assert (await db.get_run(report.run_id)).output == {"result": "fetched 7"}
