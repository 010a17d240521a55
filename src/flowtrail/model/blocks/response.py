"""``response``: its output is a template, of any shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Rules
from flowtrail.model.definition import BlockBase, ResponseBlock


class Response(Rules):
    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, ResponseBlock)
        yield spec.output, False


RULES = Response()
