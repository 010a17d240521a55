"""The blocks a run is executing now, and how long its definition lets each run.

Read from the run's durable steps when it records them (every block in flight, with its
position), otherwise from its markers (the last block started, unless it completed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowtrail.liveness.lease import iso, seconds_between
from flowtrail.store.records import RunRecord, StepRecord


@dataclass(frozen=True, slots=True)
class RunningBlock:
    """A block the run is executing now: from its durable step, or from the markers."""

    block_id: str
    block_type: str
    started_at: datetime
    position: str | None = None
    name: str | None = None

    def label(self) -> str:
        at = f" at {self.position}" if self.position else ""
        return f"block '{self.block_id}' ({self.block_type}){at}"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.block_id, "type": self.block_type}
        if self.name and self.name != self.block_id:
            data["name"] = self.name
        if self.position:
            data["position"] = self.position
        data["started_at"] = iso(self.started_at)
        data["running_for_s"] = seconds_between(self.started_at, now)
        return data


def running_blocks(
    record: RunRecord, steps: Sequence[StepRecord] | None = None
) -> list[RunningBlock]:
    """The blocks executing now, oldest first: the running steps when the run records
    steps, otherwise the last started block unless the last completed one is it."""
    live = [s for s in steps or () if s.status == "running"]
    if live:
        names = {}
        if record.last_started_block is not None:
            names[record.last_started_block.block_id] = record.last_started_block.block_name
        return sorted(
            (
                RunningBlock(
                    s.block_id,
                    s.block_type,
                    s.started_at,
                    s.position or None,
                    names.get(s.block_id),
                )
                for s in live
            ),
            key=lambda b: b.started_at,
        )
    started, completed = record.last_started_block, record.last_completed_block
    if started is None:
        return []
    if (
        completed is not None
        and completed.block_id == started.block_id
        and completed.ended_at >= started.started_at
    ):
        return []  # between blocks: the last one started has completed
    return [
        RunningBlock(
            started.block_id, started.block_type, started.started_at, None, started.block_name
        )
    ]


def block_timeouts(document: Any) -> dict[str, float]:
    """From a stored workflow definition: per block id, the longest the block may run by
    its ``timeout`` (per try), times its tries, plus the waits between them. Blocks
    without a timeout are left out; container bodies are searched too."""
    found: dict[str, float] = {}

    def walk(blocks: Any) -> None:
        if not isinstance(blocks, dict):
            return
        for block_id, spec in blocks.items():
            if not isinstance(spec, dict):
                continue
            timeout = _number(spec.get("timeout"))
            if timeout is not None and timeout > 0:
                retry = spec.get("retry")
                tries, wait = 1, 0.0
                if isinstance(retry, dict):  # the defaults of ``Retry``
                    tries = int(_number(retry.get("tries")) or 3)
                    given = _number(retry.get("wait_seconds"))
                    wait = 1.0 if given is None else given
                found[str(block_id)] = timeout * tries + wait * max(0, tries - 1)
            walk(spec.get("blocks"))

    if isinstance(document, dict):
        walk(document.get("blocks"))
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
