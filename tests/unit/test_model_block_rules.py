"""model/blocks: every block type is one object behind ``BlockRules``, found in ``RULES``,
and the compiler reaches a type's checks only through that table."""

from __future__ import annotations

from typing import Any

import pytest

from flowtrail.errors import WorkflowValidationError
from flowtrail.model import blocks
from flowtrail.model.blocks import RULES, BlockRules, Site, block_templates, rules_of
from flowtrail.model.blocks.response import Response
from flowtrail.model.compile import compile_definition
from flowtrail.model.definition import (
    BLOCK_MODELS,
    BlockBase,
    ConditionBlock,
    LoopBlock,
    RouterBlock,
    WorkflowDefinition,
)


def test_every_block_type_has_exactly_one_rules_object() -> None:
    assert list(RULES) == list(BLOCK_MODELS)
    for rules in RULES.values():
        assert isinstance(rules, BlockRules)


def test_what_the_compiler_asks_of_each_type() -> None:
    assert {t for t, r in RULES.items() if r.retryable} == {"function", "http", "agent"}
    no_fields = {t for t, r in RULES.items() if r.outputs is None}
    assert no_fields == {"start", "response", "workflow"}  # start: its workflow's inputs
    assert RULES["loop"].outputs == RULES["parallel"].outputs == frozenset({"results"})


def test_handles_come_from_the_type() -> None:
    condition = ConditionBlock.model_validate(
        {"type": "condition", "branches": [{"id": "a", "if": "x"}, {"id": "b", "else": True}]}
    )
    router = RouterBlock.model_validate({"type": "router", "routes": ["r1", "r2"], "pick": "p"})
    assert rules_of(condition).handles(condition) == {None, "error", "a", "b"}
    assert rules_of(router).handles(router) == {None, "error", "r1", "r2"}
    start = BLOCK_MODELS["start"].model_validate({"type": "start"})
    assert rules_of(start).handles(start) == {None}  # a start block cannot fail


def test_a_loop_condition_is_an_expression_that_sees_the_body() -> None:
    loop = LoopBlock.model_validate({"type": "loop", "while": "n.result < 3", "blocks": {}})
    assert list(rules_of(loop).expressions(loop)) == ["n.result < 3"]
    assert list(block_templates(loop)) == [([None, None], False), ("{{ n.result < 3 }}", True)]


def test_the_compiler_checks_a_block_through_its_rules_in_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Picky(Response):
        def check(self, spec: BlockBase, site: Site) -> None:
            site.problem("responses are off today", ("output",), "picky")

    monkeypatch.setitem(blocks.RULES, "response", Picky())
    data: dict[str, Any] = {
        "name": "picky",
        "blocks": {"start": {"type": "start"}, "reply": {"type": "response", "output": 1}},
        "connections": ["start -> reply"],
    }
    with pytest.raises(WorkflowValidationError) as caught:
        compile_definition(WorkflowDefinition.model_validate(data))
    [problem] = caught.value.problems
    assert (problem.block_id, problem.code, problem.message) == (
        "reply",
        "picky",
        "responses are off today",
    )
