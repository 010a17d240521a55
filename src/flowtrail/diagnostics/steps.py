"""Steps: each block execution (and each loop or parallel) at its position, recorded on
the same write as the progress markers.

The recorder notes engine events here as they come; a write takes what is pending as
``StepWrite``s. Only the newest state of a step is sent (a block that started and ended
between two writes is written once, ended). Outputs are made storable when they are
taken, off the block's own path: secrets sealed as in a pause snapshot (a retry puts
their values back), JSON-safe, and capped (``max_output_bytes``; a truncated output is
marked, and a retry runs that block again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flowtrail.diagnostics.capping import fit_encoded
from flowtrail.diagnostics.masking import Masker, Sealer
from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    ContainerCompleted,
    ContainerStarted,
    Event,
    IterationCompleted,
    position_of,
)
from flowtrail.store.records import StepWrite

DEFAULT_MAX_STEP_OUTPUT_BYTES = 1024 * 1024

Key = tuple[str, str]  # (position, block_id)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class _Progress:
    """A container's step while it runs: its total (if known) and iterations ended."""

    block_type: str
    started_at: float
    total: int | None
    done: int = 0


Pending = BlockStarted | BlockCompleted | ContainerCompleted | _Progress | StepWrite


class StepLog:
    """The steps noted since the last write, newest state per (position, block id)."""

    def __init__(self, sealer: Sealer, masker: Masker, max_output_bytes: int) -> None:
        self.sealer = sealer
        self.masker = masker
        self.max_output_bytes = max_output_bytes
        self._pending: dict[Key, Pending] = {}
        self._containers: dict[Key, _Progress] = {}

    def note(self, event: Event) -> None:
        if isinstance(event, BlockStarted):
            self._pending[(position_of(event.path), event.block_id)] = event
        elif isinstance(event, BlockCompleted):
            if not event.paused:  # a block waiting for input stays running until resumed
                self._pending[(position_of(event.path), event.block_id)] = event
        elif isinstance(event, ContainerStarted):
            key = (position_of(event.path), event.block_id)
            progress = _Progress(event.block_type, event.started_at, event.total)
            self._containers[key] = self._pending[key] = progress
        elif isinstance(event, IterationCompleted):
            key = (position_of(event.path), event.container_id)
            found = self._containers.get(key)
            if found is not None:
                found.done += 1
                self._pending[key] = found
        elif isinstance(event, ContainerCompleted) and not event.paused:
            key = (position_of(event.path), event.block_id)
            self._pending[key] = event

    def take(self) -> tuple[StepWrite, ...]:
        """The pending steps as writes; none stay pending."""
        pending, self._pending = self._pending, {}
        return tuple(self._write(key, item) for key, item in pending.items())

    def put_back(self, steps: tuple[StepWrite, ...]) -> None:
        """After a failed write: pending again, unless a newer state was noted since."""
        for step in steps:
            self._pending.setdefault((step.position, step.block_id), step)

    def _write(self, key: Key, item: Pending) -> StepWrite:
        position, block_id = key
        if isinstance(item, StepWrite):
            return item
        if isinstance(item, BlockStarted):
            return StepWrite(position, block_id, item.block_type, "running", _dt(item.started_at))
        if isinstance(item, _Progress):
            return StepWrite(
                position,
                block_id,
                item.block_type,
                "running",
                _dt(item.started_at),
                iterations_total=item.total,
                iterations_done=item.done,
            )
        if isinstance(item, ContainerCompleted):
            progress = self._containers.pop(key, None)
            return StepWrite(
                position,
                block_id,
                item.block_type,
                "completed" if item.success else "failed",
                _dt(item.started_at),
                _dt(item.ended_at),
                error=self.masker(item.error) if item.error else None,
                iterations_total=progress.total if progress else None,
                iterations_done=item.iterations,
            )
        output, truncation, encoded = (None, None, None)
        if item.success:
            output, truncation, encoded = fit_encoded(
                self.sealer.seal(item.output), self.max_output_bytes
            )
        return StepWrite(
            position,
            block_id,
            item.block_type,
            "completed" if item.success else "failed",
            _dt(item.started_at),
            _dt(item.ended_at),
            tries=item.tries,
            cost=item.cost,
            handle=item.handle,
            output=output,
            output_truncated=truncation is not None,
            error=self.masker(item.error) if item.error else None,
            output_json=encoded,
        )
