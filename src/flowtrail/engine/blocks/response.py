"""``response``: its output is the run's output, and the run ends there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, Values
from flowtrail.model.definition import ResponseBlock
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Response(Leaf):
    gives_response = True

    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, ResponseBlock)
        return values.render(spec.output)

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        return BlockResult(inputs)


KIND = Response()
