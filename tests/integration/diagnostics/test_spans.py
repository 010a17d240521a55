"""The stored span tree: child workflows nest under their block, loops and parallels nest
as container → iteration → block to any depth, all under one root."""

from __future__ import annotations

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import (
    count_spans,
    make_yaml_flow,
    one_span,
    spans_of,
    trace_of,
)

CODE = """
def echo(x):
    return x
"""

PARENT = """
name: parent
blocks:
  start: {type: start}
  before:
    type: function
    call: FNS:echo
    with: {x: 1}
  sub:
    type: workflow
    path: child.yaml
    with: {n: "{{ before.result }}"}
  after:
    type: function
    call: FNS:echo
    with: {x: "{{ sub.results }}"}
connections:
  - start -> before
  - before -> sub
  - sub -> after
"""

CHILD = """
name: child
inputs:
  n: {type: integer}
blocks:
  start: {type: start}
  inner:
    type: function
    call: FNS:echo
    with: {x: "{{ start.n + 1 }}"}
  lp:
    type: loop
    count: 2
    blocks:
      deep:
        type: function
        call: FNS:echo
        with: {x: "{{ loop.index }}"}
connections:
  - start -> inner
  - inner -> lp
"""


async def test_child_workflow_spans_nest_under_their_block(db, tmp_path) -> None:
    fl = make_yaml_flow(
        tmp_path / "wf", {"parent.yaml": PARENT, "child.yaml": CHILD}, CODE, "parent.yaml"
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED, report.error
    rec = await db.get_run(report.run_id)
    trace = trace_of(rec)

    assert trace["type"] == "workflow" and trace["name"] == "parent"
    assert [c["block_id"] for c in trace["children"]] == ["start", "before", "sub", "after"]
    sub = one_span(trace, block_id="sub")
    assert sub["type"] == "workflow" and sub["status"] == "success"
    assert [c["block_id"] for c in sub["children"]] == ["start", "inner", "lp"]
    assert sub["children"][1]["output"] == {"result": 2}
    loop = sub["children"][2]
    assert [c["type"] for c in loop["children"]] == ["iteration", "iteration"]
    assert [c["children"][0]["block_id"] for c in loop["children"]] == ["deep", "deep"]
    # nothing of the child leaked to the top level
    assert not [c for c in trace["children"] if c.get("block_id") in ("inner", "lp", "deep")]
    assert rec.trace_span_count == count_spans(trace) == 12
    for span in spans_of(trace):
        assert span["started_at"] and span["ended_at"], span["name"]
        assert span["status"] == "success", span["name"]


async def test_loop_inside_a_parallel_nests_container_iteration_block(db, flow) -> None:
    fl = flow(
        {
            "name": "nested",
            "blocks": {
                "start": {"type": "start"},
                "par": {
                    "type": "parallel",
                    "collection": "{{ ['a', 'b'] }}",
                    "blocks": {
                        "lp": {
                            "type": "loop",
                            "count": 3,
                            "blocks": {
                                "leaf": {
                                    "type": "function",
                                    "call": "FNS:echo",
                                    "with": {"x": "{{ [parallel.item, loop.index] }}"},
                                }
                            },
                        }
                    },
                },
            },
            "connections": ["start -> par"],
        },
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    trace = trace_of(rec)

    par = one_span(trace, block_id="par")
    assert par["type"] == "parallel" and par["iterations"] == 2
    assert [(c["type"], c["index"]) for c in par["children"]] == [
        ("iteration", 0),
        ("iteration", 1),
    ]
    for branch, item in zip(par["children"], ["a", "b"], strict=True):
        (loop,) = branch["children"]
        assert (loop["block_id"], loop["type"], loop["iterations"]) == ("lp", "loop", 3)
        assert [c["index"] for c in loop["children"]] == [0, 1, 2]
        for it in loop["children"]:
            (leaf,) = it["children"]
            assert leaf["block_id"] == "leaf"
            assert leaf["output"] == {"result": [item, it["index"]]}
    assert rec.trace_span_count == count_spans(trace) == 1 + 1 + 1 + 2 + 2 + 6 + 6
