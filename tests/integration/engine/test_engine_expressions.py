"""Template semantics the engine feeds: a block that did not run on this path, JSON text
as a collection, fractional counts, and templates over their limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowtrail.engine.executor import RunOptions
from flowtrail.errors import WorkflowValidationError
from flowtrail.model.budget import Limits
from flowtrail.model.compile import compile_file
from flowtrail.model.graph import Workflow
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import run_workflow


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (500, {"gift": "present", "note": "none", "text": "gift=present", "plain": "not read"}),
        (5, {"gift": "none", "note": "thanks", "text": "gift=none", "plain": "not read"}),
    ],
)
async def test_join_after_a_branch_reads_either_side_with_default(
    amount: int, expected: dict[str, str]
) -> None:
    result, log = await run_workflow("join_reads_either_branch.yaml", {"amount": amount})
    assert result.status is RunStatus.COMPLETED, result.error
    assert log.one_completed("after").input == {"value": expected}


async def test_a_plain_reference_to_a_pruned_block_still_fails_clearly() -> None:
    result, _log = await run_workflow(
        "join_reads_either_branch.yaml", {"amount": 5, "strict": True}
    )
    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "after"
    assert result.error == "block 'gift' did not run on this path, so it has no output"


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ('["a", "b"]', ["a", "b"]),
        ('{"x": 1}', [{"key": "x", "value": 1}]),
        ("null", []),
    ],
)
@pytest.mark.parametrize("kind", ["loop", "parallel"])
async def test_json_text_is_a_collection(
    tmp_path: Path, kind: str, text: str, items: list[Any]
) -> None:
    field = "for_each" if kind == "loop" else "collection"
    wf = _workflow(tmp_path, kind, {field: "{{ start.text }}"}, "{{ " + kind + ".item }}")
    result, _log = await run_workflow(wf, {"text": text})
    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == {"results": [{"result": item} for item in items]}


@pytest.mark.parametrize("kind", ["loop", "parallel"])
async def test_text_that_is_not_a_json_collection_fails_clearly(tmp_path: Path, kind: str) -> None:
    field = "for_each" if kind == "loop" else "collection"
    wf = _workflow(tmp_path, kind, {field: "{{ start.text }}"}, "x")
    result, _log = await run_workflow(wf, {"text": "three apples"})
    assert result.status is RunStatus.FAILED
    assert f"{field} is text that is not a JSON list or mapping: not valid JSON" in (
        result.error or ""
    )
    result, _log = await run_workflow(wf, {"text": "3"})
    assert f"{field} must be a list or a mapping, got int" in (result.error or "")


async def test_from_json_filter_parses_text_and_names_bad_json(tmp_path: Path) -> None:
    wf = _write(
        tmp_path,
        {
            "name": "from_json",
            "inputs": {"text": {"type": "string"}},
            "blocks": {
                "start": {"type": "start"},
                "use": {
                    "type": "function",
                    "call": "engine_blocks:echo",
                    "with": {"value": "{{ (start.text | from_json).items | length }}"},
                },
            },
            "connections": ["start -> use"],
        },
    )
    result, _log = await run_workflow(wf, {"text": '{"items": [1, 2, 3]}'})
    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == {"result": 3}
    result, _log = await run_workflow(wf, {"text": '{"items": [1, 2'})
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("from_json: not valid JSON (Expecting")


@pytest.mark.parametrize("kind", ["loop", "parallel"])
@pytest.mark.parametrize(("count", "ok"), [("3", True), ("3.0", True), (3.0, True), (2.5, False)])
async def test_fractional_counts_are_refused_not_truncated(
    tmp_path: Path, kind: str, count: Any, ok: bool
) -> None:
    wf = _workflow(tmp_path, kind, {"count": "{{ start.n }}"}, "x")
    result, _log = await run_workflow(wf, {"n": count})
    if ok:
        assert result.status is RunStatus.COMPLETED, result.error
        assert len(result.output["results"]) == 3
    else:
        assert result.status is RunStatus.FAILED
        assert "count must be a whole number, got 2.5" in (result.error or "")


def _write(tmp_path: Path, doc: dict[str, Any]) -> Workflow:
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return compile_file(path)


def _workflow(tmp_path: Path, kind: str, fields: dict[str, Any], value: str) -> Workflow:
    body = {"each": {"type": "function", "call": "engine_blocks:echo", "with": {"value": value}}}
    return _write(
        tmp_path,
        {
            "name": f"{kind}_collection",
            "blocks": {
                "start": {"type": "start"},
                "many": {"type": kind, **fields, "blocks": body},
            },
            "connections": ["start -> many"],
        },
    )


def _one_block(tmp_path: Path, name: str, value: str, **extra: Any) -> Workflow:
    return _write(
        tmp_path,
        {
            "name": name,
            "inputs": {"n": {"type": "integer", "default": 100_000}},
            "blocks": {
                "start": {"type": "start"},
                "work": {
                    "type": "function",
                    "call": "engine_blocks:echo",
                    "with": {"value": value},
                    **extra,
                },
            },
            "connections": ["start -> work"],
        },
    )


@pytest.mark.parametrize(
    ("value", "max_chars", "says"),
    [
        (
            "{{ 'a' * start.n * start.n }}",
            1_000_000,
            "the result of '*' would be 10,000,000,000 characters, over the limit of 1,000,000 "
            "(FLOWTRAIL_EXPRESSION_MAX_CHARS)",
        ),
        (
            "{% for i in range(start.n) %}{% for j in range(start.n) %}{% endfor %}{% endfor %}",
            10**12,
            "template evaluation took longer than 0.3s (FLOWTRAIL_EXPRESSION_TIMEOUT_SECONDS)",
        ),
    ],
)
async def test_a_template_over_its_limits_fails_its_block_clearly(
    tmp_path: Path, value: str, max_chars: int, says: str
) -> None:
    wf = _one_block(tmp_path, "heavy", value)
    options = RunOptions(limits=Limits(timeout_seconds=0.3, max_chars=max_chars))
    result, log = await run_workflow(wf, options=options)
    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "work"
    assert says in (result.error or "")
    assert log.one_completed("work").error == result.error


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{{ 'a' * 10**9 }}", "the result of '*' would be 1,000,000,000 characters"),
        ("{{ 9 ** (9 ** 9) }}", "the result of '**' would have about"),
        ("{{ [1] | json(indent=10**9) }}", "a JSON indent would be"),
        ("{{ " + "(" * 80 + "1" + ")" * 80 + " }}", "brackets nested more than 32 levels deep"),
    ],
)
def test_a_constant_template_over_its_limits_is_a_validation_error(
    tmp_path: Path, value: str, says: str
) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        _one_block(tmp_path, "constant_heavy", value)
    (problem,) = caught.value.problems
    assert (problem.block_id, problem.code) == ("work", "invalid_expression")
    assert says in problem.message
