"""``router``: one handle per route; routes unique."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Handle, Rules, Site
from flowtrail.model.definition import BlockBase, RouterBlock
from flowtrail.model.graph import ERROR_HANDLE


class Router(Rules):
    outputs = frozenset({"route"})

    def handles(self, spec: BlockBase) -> set[Handle]:
        assert isinstance(spec, RouterBlock)
        return super().handles(spec) | set(spec.routes)

    def expressions(self, spec: BlockBase) -> Iterator[str]:
        assert isinstance(spec, RouterBlock)
        yield spec.pick

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, RouterBlock)
        yield "{{ " + spec.pick + " }}", False

    def check(self, spec: BlockBase, site: Site) -> None:
        assert isinstance(spec, RouterBlock)
        if len(set(spec.routes)) != len(spec.routes):
            site.problem("router routes must be unique")
        if ERROR_HANDLE in spec.routes:
            site.problem("a route cannot be called 'error' (that is the error handle)")


RULES = Router()
