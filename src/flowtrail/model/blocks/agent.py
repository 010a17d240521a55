"""``agent``: its prompt, model and endpoint are templates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Rules
from flowtrail.model.definition import AgentBlock, BlockBase


class Agent(Rules):
    retryable = True
    outputs = frozenset({"content", "model", "tokens"})

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, AgentBlock)
        yield [spec.prompt, spec.system, spec.model, spec.base_url, spec.api_key], False


RULES = Agent()
