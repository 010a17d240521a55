"""``http``: its request fields are templates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Rules
from flowtrail.model.definition import BlockBase, HttpBlock


class Http(Rules):
    retryable = True
    outputs = frozenset({"status", "headers", "body"})

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, HttpBlock)
        yield [spec.url, spec.headers, spec.params, spec.json_, spec.body], False


RULES = Http()
