"""``start``: no templates, no ``error`` handle; its fields are the workflow's inputs."""

from __future__ import annotations

from flowtrail.model.blocks.base import Handle, Rules
from flowtrail.model.definition import BlockBase


class Start(Rules):
    def handles(self, spec: BlockBase) -> set[Handle]:
        return {None}  # it cannot fail


RULES = Start()
