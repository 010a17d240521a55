"""``parallel``: a constant count or collection under its cap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Body, Rules, Site
from flowtrail.model.definition import BlockBase, ParallelBlock
from flowtrail.model.startable import cap_problems


class Parallel(Rules):
    outputs = frozenset({"results"})

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, ParallelBlock)
        yield [spec.count, spec.collection], False

    def body(self, spec: BlockBase) -> Body | None:
        assert isinstance(spec, ParallelBlock)
        return spec.blocks, spec.connections

    def check(self, spec: BlockBase, site: Site) -> None:
        assert isinstance(spec, ParallelBlock)
        for field, message in cap_problems(spec):
            site.problem(message, (field,), "over_cap")


RULES = Parallel()
