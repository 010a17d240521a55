"""``workflow``: its child file is loaded and checked against ``with:``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowtrail.model.blocks.base import Rules, Site
from flowtrail.model.definition import BlockBase, WorkflowBlock


class ChildWorkflow(Rules):
    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        assert isinstance(spec, WorkflowBlock)
        yield spec.with_, False

    def check(self, spec: BlockBase, site: Site) -> None:
        assert isinstance(spec, WorkflowBlock)
        site.load_child(site.block_id, spec, site.path, site.folder)


RULES = ChildWorkflow()
