"""``function``: the callable must import, and ``with:`` must fit its signature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Rules, Site
from flowtrail.model.definition import BlockBase, FunctionBlock
from flowtrail.model.imports import resolve_call
from flowtrail.model.startable import argument_problems


class Function(Rules):
    retryable = True
    outputs = frozenset({"result"})

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, FunctionBlock)
        yield spec.with_, False

    def check(self, spec: BlockBase, site: Site) -> None:
        assert isinstance(spec, FunctionBlock)
        try:
            fn = resolve_call(spec.call, site.folder)
        except ValueError as exc:
            site.problem(str(exc), ("call",), "uncallable")
        else:
            for message in argument_problems(fn, spec.with_):
                site.problem(message, ("with",), "bad_argument")


RULES = Function()
