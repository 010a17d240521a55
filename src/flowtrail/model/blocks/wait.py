"""``wait``: its seconds and message are templates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Rules
from flowtrail.model.definition import BlockBase, WaitBlock


class Wait(Rules):
    outputs = frozenset({"waited_seconds", "input"})

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, WaitBlock)
        yield [spec.seconds, spec.message], False


RULES = Wait()
