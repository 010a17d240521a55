"""What the compiler asks of a block type (one protocol), per ``type:``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from flowtrail.model.definition import BlockBase, WorkflowBlock
from flowtrail.model.graph import ERROR_HANDLE, Node

Handle = str | None
Body = tuple[Mapping[str, BlockBase], list[str]]  # a container's blocks and connections


@dataclass(frozen=True)
class Site:
    """One block being checked: where it is, and how to report a problem on it."""

    block_id: str
    path: tuple[str, ...]  # in the file: ("blocks", id, ...), for the line number
    folder: Path  # where its code and child workflows are found
    report: Callable[[str, str | None, tuple[str, ...], str], None]
    load_child: Callable[[str, WorkflowBlock, tuple[str, ...], Path], None]
    """A ``workflow`` block's file is loaded by the compiler (it owns recursion and the
    cache); problems in it are reported on this block."""

    def problem(
        self, message: str, where: tuple[str, ...] = (), code: str = "invalid_workflow"
    ) -> None:
        self.report(message, self.block_id, (*self.path, *where), code)


@runtime_checkable
class BlockRules(Protocol):
    """What the compiler asks of a block type. One object per ``type:``, in ``RULES``."""

    retryable: bool
    """Whether ``retry:`` is allowed (on what can fail transiently)."""

    @property
    def outputs(self) -> frozenset[str] | None:
        """The fields its output is known to have (``None``: any)."""
        ...

    def handles(self, spec: BlockBase) -> set[Handle]:
        """The handles its outgoing connections may use (``None``: the plain one)."""
        ...

    def expressions(self, spec: BlockBase) -> Iterator[str]:
        """Its bare expressions (conditions, picks), compiled at validation."""
        ...

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        """Every templated value, and whether it may see the block's own body."""
        ...

    def check(self, spec: BlockBase, site: Site) -> None:
        """What only this type can get wrong, reported through ``site``."""
        ...

    def body(self, spec: BlockBase) -> Body | None:
        """A container's blocks and connections (``None``: the type has no body)."""
        ...

    def body_problems(self, node: Node) -> Iterator[tuple[str, str, str]]:
        """(field, message, code) for what needs the compiled body to check."""
        ...


class Rules:
    """Defaults: no ``retry:``, any output, the plain and ``error`` handles, no templates."""

    retryable = False
    outputs: frozenset[str] | None = None

    def handles(self, spec: BlockBase) -> set[Handle]:
        return {None, ERROR_HANDLE}

    def expressions(self, spec: BlockBase) -> Iterator[str]:
        return iter(())

    def templates(self, spec: BlockBase) -> Iterator[tuple[Any, bool]]:
        return iter(())

    def check(self, spec: BlockBase, site: Site) -> None:
        return None

    def body(self, spec: BlockBase) -> Body | None:
        return None

    def body_problems(self, node: Node) -> Iterator[tuple[str, str, str]]:
        return iter(())
