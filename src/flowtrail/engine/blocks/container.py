"""What loops and parallels share: each iteration or branch is a nested scope with its own
state; the container marks its start, each iteration and its end, within its ``timeout:``."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from flowtrail.engine.events import ContainerCompleted, ContainerStarted, IterationCompleted
from flowtrail.engine.outcome import Outcome, ScopeFailed, message_of
from flowtrail.errors import BlockError, BlockTimeoutError
from flowtrail.model import expressions
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Container(ABC):
    """A block with a body (``node.scope``) it runs again and again."""

    holds_slot = False  # the blocks inside take the run's slots
    gives_response = False

    async def run(self, scope: ScopeRun, node: Node) -> Outcome:
        """Run (or continue, after a pause) the container within its own ``timeout:``."""
        resumed = scope.state.containers.pop(node.id, None)
        cstate = resumed or self.fresh_state()
        life = Lifecycle(scope, node, cstate)
        return await bounded(life, self.body(scope, node, life, cstate, resumed is None))

    @abstractmethod
    def fresh_state(self) -> dict[str, Any]:
        """The container's state before it starts (what a pause persists)."""

    @abstractmethod
    async def body(
        self, owner: ScopeRun, node: Node, life: Lifecycle, cstate: dict[str, Any], fresh: bool
    ) -> Outcome:
        """Run the iterations or branches still to run."""


def items_of(value: Any, what: str, node: Node) -> list[Any]:
    if isinstance(value, str):  # JSON text (an agent's answer, say) holding a list or mapping
        try:
            value = expressions.from_json(value)
        except ValueError as exc:
            raise BlockError(
                f"{what} is text that is not a JSON list or mapping: {exc}", node.id
            ) from None
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"key": k, "value": v} for k, v in value.items()]
    if isinstance(value, list | tuple):
        return list(value)
    raise BlockError(f"{what} must be a list or a mapping, got {type(value).__name__}", node.id)


def count_of(value: Any, node: Node) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BlockError(f"count must be a whole number, got {value!r}", node.id)
    try:
        number = float(value)
    except ValueError:
        raise BlockError(f"count must be a whole number, got {value!r}", node.id) from None
    if not number.is_integer():
        raise BlockError(f"count must be a whole number, got {value!r}", node.id)
    count = int(number)
    if count < 0:
        raise BlockError(f"count must not be negative, got {count}", node.id)
    return count


class Lifecycle:
    """The start/iteration/completion events of one container run."""

    def __init__(self, owner: ScopeRun, node: Node, cstate: dict[str, Any]) -> None:
        self.owner = owner
        self.node = node
        self.cstate = cstate
        self.started_at: float = cstate.setdefault("started_at", time.time())
        self.began = False
        self.iterations = 0

    async def start(self, total: int | None) -> None:
        self.began = True
        ex, node = self.owner.ex, self.node
        await ex.started(
            ContainerStarted(
                ex.run_id, node.id, node.name, node.type, self.owner.path, self.started_at, total
            )
        )

    def iteration(self, index: int, total: int | None, started_at: float, ok: bool) -> None:
        self.iterations += 1
        ex, node = self.owner.ex, self.node
        ex.emit(
            IterationCompleted(
                ex.run_id,
                node.id,
                node.type,
                self.owner.path,
                index,
                total,
                started_at,
                time.time(),
                ok,
            )
        )

    def finish(self, iterations: int, error: str | None = None, paused: bool = False) -> None:
        ex, node = self.owner.ex, self.node
        ex.emit(
            ContainerCompleted(
                ex.run_id,
                node.id,
                node.name,
                node.type,
                self.owner.path,
                self.started_at,
                time.time(),
                success=error is None,
                iterations=iterations,
                error=error,
                handled=error is not None and node.has_error_edge,
                paused=paused,
            )
        )


def failed(life: Lifecycle, iterations: int, exc: Exception, where: str) -> Outcome:
    node = life.node
    path: tuple[str, ...] = (node.id,)
    if isinstance(exc, ScopeFailed):
        inner = exc.block_id
        path = exc.path or path
        message = f"{node.type} '{node.id}' {where}: {exc}"
        if inner:
            message = f"{node.type} '{node.id}' {where}, block '{inner}': {exc}"
    else:
        inner = node.id
        message = message_of(exc)
    life.finish(iterations, error=message)
    return Outcome(node, error=message, error_block_id=inner or node.id, error_path=path)


def cut_short(node: Node, results: Any) -> Outcome:
    """The run got its ``response`` while this container ran: the run ends at once, so the
    container (and any iteration in progress) is left open, recorded ``abandoned`` like
    every block the response cut short, with no completion marker after the response."""
    return Outcome(node, output={"results": results})


async def bounded(life: Lifecycle, body: Coroutine[Any, Any, Outcome]) -> Outcome:
    """A container's own ``timeout:`` covers all of its iterations or branches."""
    timeout = life.node.spec.timeout
    if timeout is None:
        return await body
    try:
        async with asyncio.timeout(timeout):
            return await body
    except TimeoutError:
        if not life.began:
            await life.start(None)
        expired = BlockTimeoutError(f"timed out after {timeout:g}s", life.node.id)
        return failed(life, life.iterations, expired, "timed out")
