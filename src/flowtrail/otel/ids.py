"""The trace and span ids a run's exported spans carry, derived from what the engine knows.

Deterministic: the trace id is the run id (a run id is 32 hex digits, 128 bits, as a W3C
trace id is; any other run id is hashed to one), and a span id is a hash of the run id
and where the span sits (its position and block id). So the ``http`` block can put its
own span's id in the ``traceparent`` header while it runs, long before the span is
exported, and a run's spans keep their ids across a pause and resume in other processes.

Pure: no OpenTelemetry import, nothing from the rest of flowtrail (the engine uses it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_HEX32 = re.compile(r"[0-9a-f]{32}")
RUN_KEY = "run"


def trace_id(run_id: str) -> int:
    """The run's trace id: the run id itself when it is 32 lowercase hex digits (every
    id flowtrail makes), else 128 bits of its hash. Never zero (invalid in W3C)."""
    if _HEX32.fullmatch(run_id) and int(run_id, 16):
        return int(run_id, 16)
    value = int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=16).digest(), "big")
    return value or 1


def span_id(run_id: str, key: str) -> int:
    """64 bits of the hash of the run id and a span's key; never zero."""
    digest = hashlib.blake2b(f"{run_id}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def position(frames: Iterable[tuple[str, int]]) -> str:
    """A position as ``flowtrail.engine.events.position_of`` writes it: ``lp[3]/par[0]``."""
    return "/".join(f"{container}[{index}]" for container, index in frames)


def block_key(position: str, block_id: str) -> str:
    return f"block\x00{position}\x00{block_id}"


def iteration_key(position: str) -> str:
    """``position`` includes the iteration's own frame (``lp[3]``)."""
    return f"iteration\x00{position}"


def paused_key(key: str, epoch: int) -> str:
    """The key of a span as a pause left it (the segment run under lease ``epoch``): the
    span it becomes once resumed and ended is another, with the plain key."""
    return f"{key}\x00paused\x00{epoch}"


def block_span_id(run_id: str, position: str, block_id: str) -> int:
    return span_id(run_id, block_key(position, block_id))


def traceparent(run_id: str, position: str, block_id: str) -> str:
    """The W3C ``traceparent`` naming a block's exported span (version 00, sampled)."""
    return f"00-{trace_id(run_id):032x}-{block_span_id(run_id, position, block_id):016x}-01"
