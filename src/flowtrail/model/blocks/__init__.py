"""Block types as the compiler sees them: one module per ``type:``, each an object
satisfying :class:`BlockRules`, found in ``RULES``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks import (
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
from flowtrail.model.blocks.base import BlockRules, Handle, Rules, Site
from flowtrail.model.definition import BlockBase

RULES: dict[str, BlockRules] = {
    "start": start.RULES,
    "function": function.RULES,
    "http": http.RULES,
    "agent": agent.RULES,
    "condition": condition.RULES,
    "router": router.RULES,
    "loop": loop.RULES,
    "parallel": parallel.RULES,
    "wait": wait.RULES,
    "response": response.RULES,
    "workflow": workflow.RULES,
}
"""The rules of each block type, by its ``type:`` (the same keys as ``BLOCK_MODELS``)."""


def rules_of(spec: BlockBase) -> BlockRules:
    return RULES[getattr(spec, "type")]  # noqa: B009 - every block model has it


def block_templates(spec: BlockBase) -> Iterator[tuple[Any, bool]]:
    """Every templated value of a block, and whether it may see the block's own body."""
    return rules_of(spec).templates(spec)


__all__ = ["RULES", "BlockRules", "Handle", "Rules", "Site", "block_templates", "rules_of"]
