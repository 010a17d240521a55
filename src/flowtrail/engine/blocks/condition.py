"""``condition``: takes the first branch whose ``if`` holds (or the ``else``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, Values
from flowtrail.model.definition import ConditionBlock
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Condition(Leaf):
    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, ConditionBlock)
        for branch in spec.branches:
            if branch.else_ or values.evaluate(branch.if_):
                return {"branch": branch.id}
        return {"branch": None}

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        return BlockResult(inputs, handle=inputs["branch"])


KIND = Condition()
