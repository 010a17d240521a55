"""What a function block can learn about the step it runs in, to make itself idempotent.

A block that was running when its process died runs again when the run is retried (at
least once). A function that must not repeat its effect (a payment, an email) can key
that effect on ``current_step().idempotency_key``: the same for every attempt of the same
block at the same position, across retries.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurrentStep:
    """The block execution a function block's code is running in."""

    run_id: str
    """This run (a retry is a new run: its id differs from the run it retries)."""
    block_id: str
    position: str
    """The loop iterations, parallel branches and child workflows around the block, as
    text (``"lp[3]/par[0]"``), ``""`` at the top level."""
    attempt: int
    """1 for a first run, 2 for its first retry, and so on."""
    first_run_id: str
    """The run that started the retry chain (this run's id on its first attempt)."""

    @property
    def idempotency_key(self) -> str:
        """Stable across retries: ``first_run_id:position:block_id``."""
        return f"{self.first_run_id}:{self.position}:{self.block_id}"


CURRENT: ContextVar[CurrentStep | None] = ContextVar("flowtrail_current_step", default=None)


def current_step() -> CurrentStep | None:
    """The step the calling function block runs in; ``None`` outside one. Works in sync
    functions (they run in a worker thread with a copy of the block's context) and in
    async ones."""
    return CURRENT.get()
