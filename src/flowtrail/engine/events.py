"""Small typed lifecycle events. The engine emits them; the recorder and observers listen.

``path`` places an event inside containers: one ``Frame`` per enclosing loop iteration,
parallel branch or child workflow, outermost first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Frame:
    container_id: str
    kind: str  # "loop" | "parallel" | "workflow"
    index: int


Path = tuple[Frame, ...]


def position_of(path: Path) -> str:
    """Where in a run a block executes, as text: ``"lp[3]/par[0]"`` (iteration 3 of loop
    ``lp``, branch 0 of parallel ``par`` inside it), ``""`` at the top level. The same
    workflow gives the same positions on every run, which is how a retry finds the
    steps of the run it retries."""
    if not path:
        return ""
    return "/".join(f"{frame.container_id}[{frame.index}]" for frame in path)


def containers_in(position: str) -> list[str]:
    """The container (and ``workflow`` block) ids a position passes through."""
    return [part.partition("[")[0] for part in position.split("/")] if position else []


@dataclass(frozen=True, slots=True)
class Tokens:
    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    workflow: str
    at: float
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class BlockStarted:
    run_id: str
    block_id: str
    block_name: str
    block_type: str
    path: Path
    started_at: float


@dataclass(frozen=True, slots=True)
class BlockCompleted:
    run_id: str
    block_id: str
    block_name: str
    block_type: str
    path: Path
    started_at: float
    ended_at: float
    success: bool
    input: Any = None
    output: Any = None
    error: str | None = None
    handled: bool = False
    tries: int = 1
    tokens: Tokens | None = None
    model: str | None = None
    cost: float | None = None
    paused: bool = False
    logs: str | None = None  # what a function block printed or logged, bounded
    logs_truncated: int = 0  # characters dropped from the middle of ``logs``
    handle: str | None = None  # the branch or route a condition or router took
    reused: bool = False  # a retry took its output from the run it retries; it did not run


@dataclass(frozen=True, slots=True)
class ContainerStarted:
    run_id: str
    block_id: str
    block_name: str
    block_type: str
    path: Path
    started_at: float
    total: int | None  # None for while/do_while loops


@dataclass(frozen=True, slots=True)
class IterationCompleted:
    run_id: str
    container_id: str
    container_type: str
    path: Path  # the container's own path
    index: int
    total: int | None
    started_at: float
    ended_at: float
    success: bool


@dataclass(frozen=True, slots=True)
class ContainerCompleted:
    run_id: str
    block_id: str
    block_name: str
    block_type: str
    path: Path
    started_at: float
    ended_at: float
    success: bool
    iterations: int
    error: str | None = None
    handled: bool = False
    paused: bool = False


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    status: str
    at: float
    output: Any = None
    error: str | None = None
    error_block_id: str | None = None


StartEvent = BlockStarted | ContainerStarted
Event = (
    RunStarted
    | BlockStarted
    | BlockCompleted
    | ContainerStarted
    | IterationCompleted
    | ContainerCompleted
    | RunFinished
)


class RunHooks(Protocol):
    """What the engine tells the durable recorder. The engine never imports the store."""

    async def block_started(self, event: StartEvent) -> None:
        """Awaited before the block's own code runs: where the start marker becomes durable."""
        ...

    def record(self, event: Event) -> None:
        """Everything else; must not block (completion markers ride on the next write)."""
        ...


class NullHooks:
    """Hooks for a run with the durable record off."""

    async def block_started(self, event: StartEvent) -> None:
        return None

    def record(self, event: Event) -> None:
        return None
