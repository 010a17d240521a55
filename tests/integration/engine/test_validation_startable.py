"""``validate`` says valid only if ``run`` can start the workflow: function arguments,
child workflow inputs, children that would pause, and a ``while`` that reads its body
before the first iteration are all refused up front."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowtrail.errors import WorkflowValidationError
from flowtrail.model.compile import compile_file
from flowtrail.model.graph import Workflow

CODE = """
def takes_value(value, scale=1):
    return value * scale

def anything(**kwargs):
    return kwargs

def positional(value, /):
    return value
"""

CHILD = """
name: child
inputs:
  amount: {type: integer}
  note: {type: string, default: "-"}
blocks:
  start: {type: start}
  done: {type: response, output: "{{ start.amount }}"}
connections: ["start -> done"]
"""

PAUSING_CHILD = """
name: pausing
blocks:
  start: {type: start}
  ask: {type: wait, for: input}
connections: ["start -> ask"]
"""


def _compile(tmp_path: Path, blocks: str, connections: str) -> Workflow:
    (tmp_path / "fns.py").write_text(CODE, encoding="utf-8")
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")
    (tmp_path / "pausing.yaml").write_text(PAUSING_CHILD, encoding="utf-8")
    (tmp_path / "main.yaml").write_text(
        "name: main\nblocks:\n  start: {type: start}\n"
        + textwrap.indent(textwrap.dedent(blocks), "  ")
        + f"connections: {connections}\n",
        encoding="utf-8",
    )
    return compile_file(tmp_path / "main.yaml")


CASES = [
    (
        "unknown_with_key",
        "f: {type: function, call: 'fns:takes_value', with: {valeu: 1}}\n",
        "`with: valeu` is not an argument of the function (it takes: value, scale); "
        "did you mean 'value'?",
    ),
    (
        "missing_argument",
        "f: {type: function, call: 'fns:takes_value', with: {scale: 2}}\n",
        "the function needs argument 'value', which `with:` does not give",
    ),
    (
        "positional_only",
        "f: {type: function, call: 'fns:positional', with: {value: 2}}\n",
        "positional-only argument 'value'",
    ),
    (
        "child_unknown_input",
        "f: {type: workflow, path: child.yaml, with: {amount: 1, nott: x}}\n",
        "`with: nott` is not an input of child workflow child.yaml (its inputs: amount, note)"
        "; did you mean 'note'?",
    ),
    (
        "child_missing_input",
        "f: {type: workflow, path: child.yaml, with: {note: x}}\n",
        "child workflow child.yaml needs input 'amount', which `with:` does not give",
    ),
    (
        "child_can_pause",
        "f: {type: workflow, path: pausing.yaml}\n",
        "child workflow pausing.yaml can pause for input (block 'ask')",
    ),
]


@pytest.mark.parametrize(("blocks", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_workflow_run_could_not_start_is_invalid(tmp_path: Path, blocks: str, text: str) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        _compile(tmp_path, blocks, "['start -> f']")
    problem = next(p for p in caught.value.problems if text in p.message)
    assert problem.code in ("bad_argument", "invalid_child_workflow")
    assert problem.block_id == "f"
    assert text in problem.message
    assert problem.line == 4


def test_arguments_that_fit_validate(tmp_path: Path) -> None:
    workflow = _compile(
        tmp_path,
        """\
        a: {type: function, call: 'fns:takes_value', with: {value: 1}}
        b: {type: function, call: 'fns:anything', with: {whatever: 1, at: all}}
        c: {type: workflow, path: child.yaml, with: {amount: "{{ a.result }}"}}
        """,
        "['start -> a', 'start -> b', 'a -> c']",
    )
    assert not workflow.can_pause


UNGUARDED = """\
poll:
  type: loop
  while: "not check.result"
  blocks:
    check: {type: function, call: 'fns:takes_value', with: {value: 1}}
"""


def test_a_while_reading_its_body_before_the_first_iteration_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        _compile(tmp_path, UNGUARDED, "['start -> poll']")
    (problem,) = caught.value.problems
    assert problem.code == "bad_reference"
    assert problem.block_id == "poll"
    assert "`while` is checked before the first iteration, when 'check' has not run" in (
        problem.message
    )


@pytest.mark.parametrize(
    ("key", "condition"),
    [
        ("while", "loop.index == 0 or not check.result"),
        ("while", "loop.first or not check.result"),
        ("while", "loop.index > 0 and check.result < 3"),
        ("while", "(check.result < 3) if loop.index != 0 else true"),
        ("do_while", "check.result < 3"),
    ],
)
def test_guarded_while_and_do_while_may_read_the_body(
    tmp_path: Path, key: str, condition: str
) -> None:
    blocks = UNGUARDED.replace('while: "not check.result"', f'{key}: "{condition}"')
    _compile(tmp_path, blocks, "['start -> poll']")


def test_can_pause_sees_waits_in_containers(tmp_path: Path) -> None:
    workflow = _compile(
        tmp_path,
        """\
        rep:
          type: loop
          count: 2
          blocks:
            ask: {type: wait, for: input}
        """,
        "['start -> rep']",
    )
    assert workflow.can_pause and workflow.pause_points == ("ask",)
