"""A failure inside child workflows, on the record of both backends: ``error.block_id`` is
the innermost failing block, ``error.path`` leads to it through every child, and the
message says where once, however deep the failure was."""

from __future__ import annotations

from pathlib import Path

from flowtrail.diagnostics.view import record_json
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import make_yaml_flow

CODE = """
def explode(why):
    raise ValueError(f"kaput: {why}")
"""

FILES = {
    "parent.yaml": """
        name: parent
        blocks:
          start: {type: start}
          lp:
            type: loop
            count: 2
            blocks:
              call_child: {type: workflow, path: child.yaml}
        connections: [start -> lp]
    """,
    "child.yaml": """
        name: child
        blocks:
          start: {type: start}
          inner_call: {type: workflow, path: grandchild.yaml}
        connections: [start -> inner_call]
    """,
    "grandchild.yaml": """
        name: grandchild
        blocks:
          start: {type: start}
          boom: {type: function, call: "FNS:explode", with: {why: deep}}
        connections: [start -> boom]
    """,
    "recursive.yaml": """
        name: recursive
        blocks:
          start: {type: start}
          again: {type: workflow, path: recursive.yaml}
        connections: [start -> again]
    """,
}


async def test_the_record_names_the_innermost_block_and_the_path_to_it(
    db, tmp_path: Path
) -> None:
    fl = make_yaml_flow(tmp_path / "wf", FILES, CODE, "parent.yaml")
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.FAILED
    assert report.error_block_id == "boom"
    assert report.error_path == ("call_child", "inner_call", "boom")
    assert report.error == (
        "loop 'lp' iteration 0, block 'boom': "
        "child workflow 'grandchild' failed at block 'boom': ValueError: kaput: deep"
    )
    rec = await db.get_run(report.run_id)
    assert rec.error_block_id == "boom"
    assert record_json(rec)["error"] == {
        "message": report.error,
        "block_id": "boom",
        "path": ["call_child", "inner_call", "boom"],
    }


async def test_a_deep_recursion_says_where_once(db, tmp_path: Path) -> None:
    fl = make_yaml_flow(tmp_path / "wf", FILES, CODE, "recursive.yaml")
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.FAILED
    message = report.error or ""
    # once, not once per level (25 levels made a 1,341-character message)
    assert message == (
        "child workflow 'recursive' failed at block 'again': "
        "maximum workflow call depth (25) exceeded"
    )
    assert report.error_path == ("again",) * 26
    view = record_json(await db.get_run(report.run_id))
    assert view["error"]["block_id"] == "again"
    assert view["error"]["path"] == ["again"] * 26


async def test_a_failure_outside_children_has_no_path(db, tmp_path: Path) -> None:
    files = {"one.yaml": FILES["grandchild.yaml"]}
    fl = make_yaml_flow(tmp_path / "wf", files, CODE, "one.yaml")
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.error_block_id == "boom" and report.error_path == ()
    assert record_json(await db.get_run(report.run_id))["error"] == {
        "message": "ValueError: kaput: deep",
        "block_id": "boom",
    }
