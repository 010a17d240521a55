"""The stored definition snapshot is self-contained: child workflows are embedded, so the
run a snapshot rebuilds is the one submitted, whatever happens to the files afterwards."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

from flowtrail.model.compile import compile_file
from flowtrail.model.graph import Workflow
from flowtrail.model.snapshot import snapshot_hash, snapshot_of, workflow_from_snapshot
from flowtrail.runner import Runner, stored_workflow
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore

PARENT = """
name: parent
blocks:
  start: {type: start}
  call: {type: workflow, path: kids/child.yaml, with: {n: 2}}
  done: {type: response, output: "{{ call.answer }}"}
connections: [start -> call, call -> done]
"""

CHILD = """
name: child
inputs: {n: {type: number}}
blocks:
  start: {type: start}
  out: {type: response, output: {answer: "{{ start.n * %s }}"}}
connections: [start -> out]
"""


def _write(folder: Path, factor: int) -> Path:
    (folder / "kids").mkdir(exist_ok=True)
    (folder / "kids" / "child.yaml").write_text(textwrap.dedent(CHILD % factor))
    parent = folder / "parent.yaml"
    parent.write_text(textwrap.dedent(PARENT))
    return parent


async def test_a_stored_run_keeps_its_child_after_the_file_changes(
    store: SqlStore, tmp_path: Path
) -> None:
    workflow = compile_file(_write(tmp_path, 10))
    report = await Runner(Settings(), store).run(workflow)
    assert report.output == 20
    (tmp_path / "kids" / "child.yaml").unlink()
    record = await store.get_run(report.run_id)
    rebuilt = await stored_workflow(store, record)
    again = await Runner(Settings(), store).run(rebuilt)
    assert again.status is RunStatus.COMPLETED
    assert again.output == 20  # the submitted child, not a file that is gone


def test_a_changed_child_makes_a_new_snapshot(tmp_path: Path) -> None:
    before = snapshot_hash(snapshot_of(compile_file(_write(tmp_path, 10))))
    after = snapshot_hash(snapshot_of(compile_file(_write(tmp_path, 11))))
    assert before != after


def test_a_self_calling_workflow_stays_small(tmp_path: Path) -> None:
    # Two calls of itself per level, loaded down to the depth limit: stored once per
    # level, not once per path through the tree (2**25 of them).
    (tmp_path / "me.yaml").write_text(
        textwrap.dedent(
            """
            name: me
            blocks:
              start: {type: start}
              a: {type: workflow, path: me.yaml}
              b: {type: workflow, path: me.yaml}
            connections: [start -> a, start -> b]
            """
        )
    )
    workflow = compile_file(tmp_path / "me.yaml")
    snapshot = snapshot_of(workflow)
    assert len(json.dumps(snapshot)) < 100_000
    rebuilt = workflow_from_snapshot(json.loads(json.dumps(snapshot)))
    depth, level = 0, rebuilt
    while level.children:
        assert level.children["me.yaml"] is not None
        level = level.children["me.yaml"]
        depth += 1
    assert depth == sum(1 for _ in _chain(workflow))


def _chain(workflow: Workflow) -> Iterator[Workflow]:
    while workflow.children:
        workflow = workflow.children["me.yaml"]
        yield workflow
