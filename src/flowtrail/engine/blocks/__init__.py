"""Block types: one module per ``type:``, each an object satisfying :class:`BlockKind`,
found in ``KINDS``. The executor asks a block's kind, never its class."""

from __future__ import annotations

from flowtrail.engine.blocks import (
    agent,
    condition,
    function,
    http,
    loop,
    parallel,
    response,
    router,
    start,
    wait,
    workflow,
)
from flowtrail.engine.blocks.base import (
    BlockKind,
    BlockResult,
    BlockServices,
    Leaf,
    PauseRequested,
    Prices,
    Render,
    Reported,
    Values,
)
from flowtrail.engine.blocks.http import HttpClient
from flowtrail.model.graph import Node

KINDS: dict[str, BlockKind] = {
    "start": start.KIND,
    "function": function.KIND,
    "http": http.KIND,
    "agent": agent.KIND,
    "condition": condition.KIND,
    "router": router.KIND,
    "loop": loop.KIND,
    "parallel": parallel.KIND,
    "wait": wait.KIND,
    "response": response.KIND,
    "workflow": workflow.KIND,
}
"""The kind of each block type, by its ``type:`` (the same keys as ``BLOCK_MODELS``)."""


def kind_of(node: Node) -> BlockKind:
    return KINDS[node.type]


__all__ = [
    "KINDS",
    "BlockKind",
    "BlockResult",
    "BlockServices",
    "HttpClient",
    "Leaf",
    "PauseRequested",
    "Prices",
    "Render",
    "Reported",
    "Values",
    "kind_of",
]
