"""``router``: takes the route its ``pick`` expression names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, Values
from flowtrail.errors import BlockError
from flowtrail.model.definition import RouterBlock
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Router(Leaf):
    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, RouterBlock)
        picked = values.evaluate(spec.pick)
        if picked not in spec.routes:
            raise BlockError(
                f"router picked {picked!r}, which is not one of its routes: "
                f"{', '.join(spec.routes)}",
                node.id,
            )
        return {"route": picked}

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        return BlockResult(inputs, handle=inputs["route"])


KIND = Router()
