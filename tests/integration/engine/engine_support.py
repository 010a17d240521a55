"""Helpers for the engine behaviour tests: load fixture workflows, run them, and keep every
engine event in the order the engine emitted it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    ContainerCompleted,
    ContainerStarted,
    Event,
    IterationCompleted,
)
from flowtrail.engine.executor import Execution, RunOptions, RunResult
from flowtrail.model.compile import compile_file
from flowtrail.model.graph import Workflow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "workflows" / "engine"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

import engine_blocks  # noqa: E402  (lives beside the fixture workflows)

E = TypeVar("E")

__all__ = [
    "FIXTURES",
    "EventLog",
    "engine_blocks",
    "eventually",
    "load",
    "max_overlap",
    "run_workflow",
]


def load(name: str) -> Workflow:
    return compile_file(FIXTURES / name)


@dataclass
class EventLog:
    """A ``RunHooks`` implementation that keeps every event, in emission order."""

    events: list[Any] = field(default_factory=list)

    async def block_started(self, event: Any) -> None:
        self.events.append(event)

    def record(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[E], block_id: str | None = None) -> list[E]:
        found = [e for e in self.events if isinstance(e, kind)]
        if block_id is not None:
            found = [e for e in found if getattr(e, "block_id", None) == block_id]
        return found

    def started(self, block_id: str | None = None) -> list[BlockStarted]:
        return self.of(BlockStarted, block_id)

    def completed(self, block_id: str | None = None) -> list[BlockCompleted]:
        return self.of(BlockCompleted, block_id)

    def started_ids(self) -> list[str]:
        return [e.block_id for e in self.started()]

    def completed_ids(self) -> list[str]:
        return [e.block_id for e in self.completed()]

    def one_completed(self, block_id: str) -> BlockCompleted:
        found = self.completed(block_id)
        assert len(found) == 1, f"expected one BlockCompleted for {block_id}, got {found}"
        return found[0]

    def containers_started(self, block_id: str) -> list[ContainerStarted]:
        return self.of(ContainerStarted, block_id)

    def containers_completed(self, block_id: str) -> list[ContainerCompleted]:
        return self.of(ContainerCompleted, block_id)

    def iterations(self, container_id: str) -> list[IterationCompleted]:
        return [e for e in self.of(IterationCompleted) if e.container_id == container_id]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.events)


async def run_workflow(
    name: str | Workflow,
    inputs: Any = None,
    *,
    options: RunOptions | None = None,
    run_id: str = "run-under-test",
) -> tuple[RunResult, EventLog]:
    workflow = load(name) if isinstance(name, str) else name
    log = EventLog()
    result = await Execution(workflow, inputs, run_id=run_id, hooks=log, options=options).run()
    return result, log


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The highest number of intervals open at the same instant (an end at t closes
    before a start at t opens)."""
    points = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1])
    )
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


async def eventually(predicate: Callable[[], bool], seconds: float = 2.0) -> None:
    """Poll ``predicate`` on the event loop until it holds; fail after ``seconds``."""
    for _ in range(int(seconds / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")
