"""``condition``: one handle per branch; branch ids unique, ``else`` last."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Handle, Rules, Site
from flowtrail.model.definition import BlockBase, ConditionBlock
from flowtrail.model.graph import ERROR_HANDLE


class Condition(Rules):
    outputs = frozenset({"branch"})

    def handles(self, spec: BlockBase) -> set[Handle]:
        assert isinstance(spec, ConditionBlock)
        return super().handles(spec) | {b.id for b in spec.branches}

    def expressions(self, spec: BlockBase) -> Iterator[str]:
        assert isinstance(spec, ConditionBlock)
        for b in spec.branches:
            if b.if_ is not None:
                yield b.if_

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, ConditionBlock)
        yield ["{{ " + b.if_ + " }}" for b in spec.branches if b.if_ is not None], False

    def check(self, spec: BlockBase, site: Site) -> None:
        assert isinstance(spec, ConditionBlock)
        ids = [b.id for b in spec.branches]
        if len(set(ids)) != len(ids):
            site.problem("condition branch ids must be unique")
        if ERROR_HANDLE in ids:
            site.problem("a branch cannot be called 'error' (that is the error handle)")
        if any(b.else_ for b in spec.branches[:-1]):
            site.problem("`else` must be the last branch")


RULES = Condition()
