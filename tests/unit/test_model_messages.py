"""Validation messages are worded for people, every problem of a file comes at once, and
near misses get a "did you mean" (block types, fields, block ids, handles)."""

from __future__ import annotations

from typing import Any

import pytest

from flowtrail.errors import WorkflowValidationError
from flowtrail.model.compile import compile_definition
from flowtrail.model.loading import definition_from_data


def problems_of(document: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    with pytest.raises(WorkflowValidationError) as caught:
        compile_definition(definition_from_data(document))
    found = [(p.block_id, p.code, p.message) for p in caught.value.problems]
    for _block, _code, message in found:  # pydantic's own wording never reaches users
        assert "Extra inputs are not permitted" not in message
        assert "Input should be" not in message
    return found


def test_every_problem_is_reported_even_with_an_unknown_block_type() -> None:
    found = problems_of(
        {
            "name": "many",
            "nam": "typo",
            "blocks": {
                "start": {"type": "start"},
                "g": {"type": "fucntion"},
                "f": {"type": "function", "call": "json:dumps", "retires": {}},
                "rep": {"type": "loop", "count": [1], "blocks": {"inner": {"type": "nope"}}},
                "c": {"type": "condition", "branches": [{"id": "a", "iff": "true"}]},
                "w": {"type": "wait", "for": "inpt"},
                "h": {"type": "http"},
            },
        }
    )
    assert found == [
        (
            "g",
            "unknown_block_type",
            "unknown block type 'fucntion'; did you mean 'function'? (known: start, function, "
            "http, agent, condition, router, loop, parallel, wait, response, workflow)",
        ),
        (
            "inner",
            "unknown_block_type",
            "unknown block type 'nope' (known: start, function, http, agent, condition, "
            "router, loop, parallel, wait, response, workflow)",
        ),
        ("f", "invalid_field", "blocks.f.retires: unknown field 'retires'; did you mean 'retry'?"),
        ("rep", "invalid_field", "blocks.rep.count: must be a whole number or text (got a list)"),
        ("c", "invalid_field", "blocks.c.branches.0.iff: unknown field 'iff'; did you mean 'if'?"),
        ("w", "invalid_field", "blocks.w.for: must be 'input' (got 'inpt')"),
        ("h", "invalid_field", "blocks.h.url: missing required field 'url'"),
        (None, "invalid_field", "nam: unknown field 'nam'; did you mean 'name'?"),
    ]


def test_an_unknown_field_with_no_near_match_lists_the_known_ones() -> None:
    found = problems_of(
        {"name": "x", "blocks": {"start": {"type": "start", "zzz": 1}}},
    )
    assert found == [
        (
            "start",
            "invalid_field",
            "blocks.start.zzz: unknown field 'zzz' (known fields: name, description, retry, "
            "timeout, type)",
        )
    ]


def test_ids_and_handles_get_a_did_you_mean() -> None:
    found = problems_of(
        {
            "name": "x",
            "blocks": {
                "start": {"type": "start"},
                "fetch": {"type": "response", "output": "{{ fecth }}"},
                "check": {"type": "condition", "branches": [{"id": "big", "if": "true"}]},
            },
            "connections": ["start -> fetch", "start -> chek", "check.bgi -> fetch"],
        }
    )
    messages = [message for _b, _c, message in found]
    assert (
        "connection 'start -> chek' names block 'chek', which does not exist at the top level; "
        "did you mean 'check'?"
    ) in messages
    assert any("has no handle 'bgi'" in m and "did you mean 'big'?" in m for m in messages)


def test_a_reference_to_a_near_miss_id_gets_a_did_you_mean() -> None:
    found = problems_of(
        {
            "name": "x",
            "blocks": {
                "start": {"type": "start"},
                "fetch": {"type": "response", "output": 1},
                "use": {"type": "response", "output": "{{ fecth }}"},
            },
            "connections": ["start -> fetch", "fetch -> use"],
        }
    )
    assert found == [
        (
            "use",
            "bad_reference",
            "reference to 'fecth', which is not a block in this workflow; did you mean 'fetch'?",
        )
    ]
