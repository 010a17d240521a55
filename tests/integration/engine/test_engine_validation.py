"""Bad input is refused before anything runs: each case raises the flowtrail error whose
problem names the block (and the file line where the YAML has one)."""

from __future__ import annotations

from typing import Any

import pytest

import flowtrail
from flowtrail.engine.executor import Execution
from flowtrail.errors import InputError, WorkflowParseError, WorkflowValidationError
from flowtrail.model.compile import compile_definition, compile_file
from flowtrail.model.inputs import validate_inputs
from flowtrail.model.loading import definition_from_data
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from tests.integration.engine.engine_support import FIXTURES, engine_blocks, load

# (file, error type, code, block id, line, text the message must contain)
CASES: list[tuple[str, type[Exception], str, str | None, int, str]] = [
    ("bad_malformed.yaml", WorkflowParseError, "malformed_workflow", None, 8, "malformed YAML"),
    (
        "bad_unknown_type.yaml",
        WorkflowValidationError,
        "unknown_block_type",
        "teleport",
        5,
        "unknown block type 'teleporter'",
    ),
    (
        "bad_duplicate_key.yaml",
        WorkflowValidationError,
        "duplicate_id",
        "twice",
        8,
        "duplicate key 'twice'",
    ),
    (
        "bad_duplicate_in_container.yaml",
        WorkflowValidationError,
        "duplicate_id",
        "work",
        12,
        "duplicate block id",
    ),
    (
        "bad_missing_target.yaml",
        WorkflowValidationError,
        "missing_block",
        "ghost",
        10,
        "connection 'first -> ghost' names block 'ghost', which does not exist",
    ),
    (
        "bad_unknown_handle.yaml",
        WorkflowValidationError,
        "unknown_handle",
        "check",
        15,
        "block 'check' has no handle 'maybe' (handles: error, no_branch, yes_branch)",
    ),
    (
        "bad_cycle.yaml",
        WorkflowValidationError,
        "cycle",
        "pong",
        12,
        "cycle outside a loop: pong -> ping -> pong",
    ),
    ("bad_empty_loop.yaml", WorkflowValidationError, "empty_container", "repeat", 4, "empty loop"),
    (
        "bad_empty_parallel.yaml",
        WorkflowValidationError,
        "empty_container",
        "fan",
        4,
        "empty parallel",
    ),
    (
        "bad_ref_unknown.yaml",
        WorkflowValidationError,
        "bad_reference",
        "first",
        4,
        "reference to 'ghost', which is not a block in this workflow",
    ),
    (
        "bad_ref_not_upstream.yaml",
        WorkflowValidationError,
        "bad_reference",
        "first",
        4,
        "reference to 'second', which does not run before this block",
    ),
    (
        "bad_call_module.yaml",
        WorkflowValidationError,
        "uncallable",
        "first",
        6,
        "cannot import module 'no_such_module_for_flowtrail_tests'",
    ),
    (
        "bad_call_attribute.yaml",
        WorkflowValidationError,
        "uncallable",
        "first",
        6,
        "module 'engine_blocks' has no attribute 'no_such_function'",
    ),
    (
        "bad_call_not_callable.yaml",
        WorkflowValidationError,
        "uncallable",
        "first",
        6,
        "'engine_blocks:NOT_CALLABLE' is not callable",
    ),
]


@pytest.mark.parametrize(
    ("name", "error", "code", "block_id", "line", "text"), CASES, ids=[c[0] for c in CASES]
)
def test_invalid_workflow_is_refused_with_block_and_line(
    name: str, error: type[Exception], code: str, block_id: str | None, line: int, text: str
) -> None:
    path = FIXTURES / name
    with pytest.raises(error) as caught:
        compile_file(path)

    exc = caught.value
    assert type(exc) is error
    matching = [p for p in exc.problems if text in p.message]
    assert matching, f"no problem mentions {text!r}: {exc.problems}"
    problem = matching[0]
    assert problem.code == code
    assert problem.block_id == block_id
    assert problem.line == line
    assert problem.file == str(path)
    # The rendered error names the file, the line and the block.
    rendered = str(exc)
    assert f"{path}:{line}" in rendered
    if block_id is not None:
        assert f"block '{block_id}'" in rendered
    assert engine_blocks.CALLS == []  # nothing ran


def test_every_problem_is_reported_at_once() -> None:
    definition = definition_from_data(
        {
            "name": "many_problems",
            "blocks": {
                "start": {"type": "start"},
                "a": {
                    "type": "function",
                    "call": "engine_blocks:echo",
                    "with": {"value": "{{ ghost.result }}"},
                },
                "b": {"type": "function", "call": "engine_blocks:no_such_function"},
                "empty": {"type": "loop", "count": 2, "blocks": {}},
            },
            "connections": ["start -> a", "a -> b", "b -> empty", "empty -> nowhere"],
        }
    )
    with pytest.raises(WorkflowValidationError) as caught:
        compile_definition(definition)

    by_code = {(p.code, p.block_id) for p in caught.value.problems}
    assert ("uncallable", "b") in by_code
    assert ("empty_container", "empty") in by_code
    assert ("missing_block", "nowhere") in by_code


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"x": "one"}, "'x' must be integer, got str"),
        ({"x": True}, "'x' must be integer, got bool"),
        ({"x": 1, "y": 2}, "unknown input(s): y (declared: x)"),
        ("not an object", "run input must be a JSON object, got str"),
    ],
)
def test_invalid_run_input_is_refused(inputs: Any, message: str) -> None:
    workflow = load("sequence.yaml")
    with pytest.raises(InputError) as caught:
        validate_inputs(workflow.definition, inputs)
    assert message in str(caught.value)


def test_missing_required_input_is_refused_and_defaults_fill_in() -> None:
    workflow = load("condition.yaml")  # `amount: {type: integer}`: required, no default
    with pytest.raises(InputError) as caught:
        validate_inputs(workflow.definition, {})
    assert "'amount' is required (integer)" in str(caught.value)
    assert validate_inputs(load("sequence.yaml").definition, None) == {"x": 1}


async def test_invalid_run_input_runs_nothing_through_execution_or_runner() -> None:
    workflow = load("sequence.yaml")
    with pytest.raises(InputError):
        Execution(workflow, {"x": "one"}, run_id="bad-input")
    with pytest.raises(InputError, match="unknown input"):
        await Runner(Settings(observer_grace_seconds=0.2), store=None).start(
            workflow, {"x": 1, "surprise": True}
        )
    assert engine_blocks.CALLS == []


def test_unknown_filter_is_refused_before_the_run() -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        compile_file(FIXTURES / "bad_unknown_filter.yaml")

    (problem,) = caught.value.problems
    assert problem.block_id == "shout"
    assert "no_such_filter" in problem.message


async def test_an_optional_input_without_default_can_be_left_out(tmp_path: Any) -> None:
    # The input is checked by the runner and again by the execution: the filled-in null
    # must pass the second check too, and reach the blocks as null.
    workflow = compile_definition(
        definition_from_data(
            {
                "name": "optional-input",
                "inputs": {"note": {"type": "string", "required": False}},
                "blocks": {
                    "start": {"type": "start"},
                    "done": {"type": "response", "output": {"note": "{{ start.note }}"}},
                },
                "connections": ["start -> done"],
            }
        )
    )
    assert validate_inputs(workflow.definition, {}) == {"note": None}
    with pytest.raises(InputError, match="'note' must be string, got int"):
        validate_inputs(workflow.definition, {"note": 3})
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'flowtrail.db'}")
    report = await flowtrail.run_async(workflow, {}, settings=settings)
    assert report.status.value == "completed", report.error
    assert report.output == {"note": None}
