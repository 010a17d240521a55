"""What the executor asks of a block type (one protocol), and what block types share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from flowtrail.engine.events import Tokens
from flowtrail.engine.outcome import Outcome
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.blocks.http import HttpClient
    from flowtrail.engine.scope import ScopeRun

Render = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Reported:
    """Return this from a function block to report cost, tokens or a model with its value."""

    value: Any
    cost: float | None = None
    tokens: Tokens | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class BlockResult:
    output: Any
    handle: str | None = None  # the branch or route taken
    tokens: Tokens | None = None
    model: str | None = None
    cost: float | None = None


@dataclass(frozen=True)
class Prices:
    """USD per 1,000 tokens, by model name."""

    table: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def cost(self, model: str, tokens: Tokens) -> float | None:
        price = self.table.get(model)
        if price is None:
            return None
        return (tokens.prompt * price[0] + tokens.completion * price[1]) / 1000


class PauseRequested(Exception):
    """Raised by a ``wait for: input`` block: the run checkpoints and stops."""


@dataclass
class BlockServices:
    """Run-wide things block types use. Built once per run by the executor."""

    http: HttpClient
    prices: Prices
    agent_base_url: str | None
    agent_api_key: str | None
    search_path: Any
    threads: Executor | None = None  # sync function blocks; None = the loop's default
    resume_input: Any = None
    inline_sync_seconds: float = 0.0  # see Settings.inline_sync_seconds


@dataclass(frozen=True, slots=True)
class Values:
    """How a leaf block resolves its inputs: its templates against what it may read, and
    the run's own inputs (what a start block passes on)."""

    render: Render
    evaluate: Render
    run_inputs: Any


@runtime_checkable
class BlockKind(Protocol):
    """What the executor asks of a block type. One object per ``type:``, in ``KINDS``."""

    holds_slot: bool
    """Whether it takes one of the run's ``max_concurrency`` slots while it runs
    (containers and child workflows do not: the blocks inside them do)."""
    gives_response: bool
    """Whether its output, when it succeeds, is the run's response (the run ends)."""

    async def run(self, scope: ScopeRun, node: Node) -> Outcome:
        """Run the block in ``scope`` to its end: never raises for the block's own failure,
        which the outcome carries."""
        ...


class Leaf(ABC):
    """A block with no body. The executor gives it the lifecycle (markers, retries,
    timeout); the type says how its inputs resolve (never retried) and what it does."""

    holds_slot = True
    gives_response = False
    retried = True  # its `retry:` applies
    captures_output = False  # what its code prints goes to its span
    marks_start_lazily = False  # runs no user code: its start marker rides on the next write

    async def run(self, scope: ScopeRun, node: Node) -> Outcome:
        return await scope.run_leaf(node, self)

    def prepare(self, node: Node, values: Values) -> Any:
        """Resolve the block's inputs from its templates and expressions."""
        return None

    @abstractmethod
    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        """Do the block's work once (the executor retries and times it)."""
