"""``wait``: sleeps for some seconds, or pauses the run until it is resumed with input."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, PauseRequested, Values
from flowtrail.model.definition import WaitBlock
from flowtrail.model.graph import Node, Workflow, iter_nodes

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Wait(Leaf):
    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, WaitBlock)
        return {
            "seconds": values.render(spec.seconds),
            "message": values.render(spec.message),
            "for": spec.for_,
        }

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        if inputs["for"] == "input":
            raise PauseRequested(node.id)
        seconds = float(inputs["seconds"])
        await asyncio.sleep(seconds)
        return BlockResult({"waited_seconds": seconds})


KIND = Wait()


def input_readers(workflow: Workflow, waiting: Sequence[str]) -> dict[str, str]:
    """For each waiting ``wait for: input`` block whose output a block reads (so a resume
    without input would fail later, reading ``None``), one block that reads it."""
    nodes = iter_nodes(workflow.root)
    found: dict[str, str] = {}
    for wait in nodes:
        if wait.id in waiting and isinstance(wait.spec, WaitBlock) and wait.spec.for_:
            reader = next((n.id for n in nodes if wait.id in n.uses), None)
            if reader is not None:
                found[wait.id] = reader
    return found
