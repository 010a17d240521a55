"""What a block or a scope hands back when it ends: values, not control flow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowtrail.errors import BlockError, FlowtrailError
from flowtrail.model.graph import Node


@dataclass(frozen=True)
class Outcome:
    """What one block or container task hands back to its scope. Never an exception."""

    node: Node
    output: Any = None
    handle: str | None = None
    error: str | None = None
    error_block_id: str | None = None
    error_path: tuple[str, ...] = ()  # through child workflows, ending at error_block_id
    paused: dict[str, Any] | None = None  # a container's state, or {} for a wait block


class ScopeFailed(Exception):
    def __init__(
        self, message: str, block_id: str | None, path: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(message)
        self.block_id = block_id
        # the `workflow` blocks leading to the failing block, outermost first, then it
        self.path: tuple[str, ...] = path or ((block_id,) if block_id else ())


class ChildWorkflowFailed(BlockError):
    """A ``workflow`` block whose child run failed. ``inner_block_id`` is the innermost
    failing block; ``path`` leads to it through every child workflow in between."""

    def __init__(self, message: str, block_id: str, path: tuple[str, ...]) -> None:
        super().__init__(message, block_id)
        self.inner_block_id = path[-1]
        self.path = path


class ScopePaused(Exception):
    """A scope stopped early for a pause; its state (already updated) is resumable."""


class Halt:
    """A stop-launching flag that a scope shares with every scope nested inside it."""

    def __init__(self, parent: Halt | None = None) -> None:
        self.parent = parent
        self.flag = False

    @property
    def is_set(self) -> bool:
        return self.flag or (self.parent is not None and self.parent.is_set)


def message_of(exc: BaseException) -> str:
    """A block error as users read it: our own errors as they are, others with their type."""
    if isinstance(exc, FlowtrailError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
