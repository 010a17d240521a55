"""engine/blocks: every block type is one object behind ``BlockKind``, found in ``KINDS``,
and the executor reaches a block's behaviour only through that table."""

from __future__ import annotations

from typing import Any

import pytest

from flowtrail.engine import blocks
from flowtrail.engine.blocks import KINDS, BlockKind, BlockResult, Leaf, Values
from flowtrail.engine.blocks.container import Container
from flowtrail.engine.blocks.response import Response
from flowtrail.engine.executor import Execution
from flowtrail.errors import BlockError
from flowtrail.model.compile import compile_definition
from flowtrail.model.definition import BLOCK_MODELS, ConditionBlock, RouterBlock, WorkflowDefinition
from flowtrail.model.graph import Node
from flowtrail.status import RunStatus


def test_every_block_type_has_exactly_one_kind() -> None:
    assert list(KINDS) == list(BLOCK_MODELS)
    for kind in KINDS.values():
        assert isinstance(kind, BlockKind)
        assert isinstance(kind, Leaf | Container)


def test_what_the_executor_asks_of_each_kind() -> None:
    def having(flag: str) -> set[str]:
        return {t for t, k in KINDS.items() if getattr(k, flag, False)}

    # containers and child workflows hold no concurrency slot: the blocks inside them do
    assert {t for t, k in KINDS.items() if not k.holds_slot} == {"loop", "parallel", "workflow"}
    assert having("gives_response") == {"response"}
    assert having("captures_output") == {"function"}
    assert having("marks_start_lazily") == {"start"}
    leaves = {t for t, k in KINDS.items() if isinstance(k, Leaf)}
    assert leaves - having("retried") == {"workflow"}  # a child run is never repeated


def _values(answers: dict[str, Any]) -> Values:
    return Values(render=lambda value: value, evaluate=answers.__getitem__, run_inputs=None)


def _node(spec: Any) -> Node:
    return Node("pick", "pick", spec.type, spec, False)


def test_condition_takes_the_first_branch_that_holds_or_none() -> None:
    spec = ConditionBlock.model_validate(
        {"type": "condition", "branches": [{"id": "a", "if": "x"}, {"id": "b", "if": "y"}]}
    )
    kind = KINDS["condition"]
    assert isinstance(kind, Leaf)
    assert kind.prepare(_node(spec), _values({"x": False, "y": True})) == {"branch": "b"}
    assert kind.prepare(_node(spec), _values({"x": False, "y": False})) == {"branch": None}


def test_router_refuses_a_route_it_does_not_have_naming_the_block() -> None:
    spec = RouterBlock.model_validate({"type": "router", "routes": ["a", "b"], "pick": "p"})
    kind = KINDS["router"]
    assert isinstance(kind, Leaf)
    assert kind.prepare(_node(spec), _values({"p": "b"})) == {"route": "b"}
    with pytest.raises(BlockError) as caught:
        kind.prepare(_node(spec), _values({"p": "c"}))
    assert caught.value.block_id == "pick"
    assert "router picked 'c', which is not one of its routes: a, b" in str(caught.value)


async def test_the_executor_runs_a_block_through_its_kind_in_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Stamped(Response):
        async def execute(self, node: Node, inputs: Any, scope: Any) -> BlockResult:
            return BlockResult({"stamped": inputs})

    monkeypatch.setitem(blocks.KINDS, "response", Stamped())
    definition = WorkflowDefinition.model_validate(
        {
            "name": "stamp",
            "blocks": {
                "start": {"type": "start"},
                "reply": {"type": "response", "output": "{{ 20 + 22 }}"},
            },
            "connections": ["start -> reply"],
        }
    )
    result = await Execution(compile_definition(definition), run_id="r").run()
    assert result.status is RunStatus.COMPLETED
    assert result.output == {"stamped": 42}
