"""What a retry takes over from the run it retries: the completed steps, by position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Reused:
    """A block that completed in the retried run: its output, and the branch or route it
    took (a condition's or router's handle), so the retry follows the same edges."""

    output: Any
    handle: str | None = None
