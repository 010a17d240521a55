"""``start``: hands the run's inputs to the blocks after it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, Values
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Start(Leaf):
    marks_start_lazily = True

    def prepare(self, node: Node, values: Values) -> Any:
        return values.run_inputs

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        return BlockResult(inputs)


KIND = Start()
