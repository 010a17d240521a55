"""``loop``: a constant count under its cap; its conditions see the body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Body, Rules, Site
from flowtrail.model.definition import BlockBase, LoopBlock
from flowtrail.model.graph import Node
from flowtrail.model.startable import cap_problems, while_problems


class Loop(Rules):
    outputs = frozenset({"results"})

    def expressions(self, spec: BlockBase) -> Iterator[str]:
        assert isinstance(spec, LoopBlock)
        for cond in (spec.while_, spec.do_while):
            if cond is not None:
                yield cond

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, LoopBlock)
        yield [spec.count, spec.for_each], False
        for cond in (spec.while_, spec.do_while):
            if cond is not None:
                yield "{{ " + cond + " }}", True

    def check(self, spec: BlockBase, site: Site) -> None:
        assert isinstance(spec, LoopBlock)
        for field, message in cap_problems(spec):
            site.problem(message, (field,), "over_cap")

    def body(self, spec: BlockBase) -> Body | None:
        assert isinstance(spec, LoopBlock)
        return spec.blocks, spec.connections

    def body_problems(self, node: Node) -> Iterator[tuple[str, str, str]]:
        assert isinstance(node.spec, LoopBlock)
        if node.scope is not None:
            for message in while_problems(node.spec, node.scope.nodes):
                yield "while", message, "bad_reference"


RULES = Loop()
