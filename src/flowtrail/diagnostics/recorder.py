"""Records a run's events durably: progress markers and steps by group commit, spans,
cost, and the cancellation watch. Nothing here can fail the run: every store error is
caught and counted.

Group commit: a block's start marker must be durable before its code runs, but concurrent
blocks share one write. While a write is in flight, new requests wait and the next write
covers all of them (only the newest marker matters: markers are monotonic). Completion
markers never wait; they ride on the next write, or the final one. Steps (see
``diagnostics.steps``) travel the same way, in the same round trip as the markers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowtrail.diagnostics.masking import Masker, Sealer
from flowtrail.diagnostics.spans import SpanTree
from flowtrail.diagnostics.steps import DEFAULT_MAX_STEP_OUTPUT_BYTES, StepLog
from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    ContainerCompleted,
    Event,
    StartEvent,
)
from flowtrail.engine.tasks import running_tasks
from flowtrail.store.base import Store
from flowtrail.store.newest import is_newer
from flowtrail.store.records import CompletedMarker, ProgressWrite, RunRecord, StartedMarker

log = logging.getLogger("flowtrail.diagnostics")
_BACKLOG_LIMIT = 4096  # events queued for span building before they are built anyway


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class Usage:
    """What a run has spent so far: cost, tokens and the models that used them."""

    cost_total: float = 0.0
    tokens_prompt: int = 0
    tokens_completion: int = 0
    models: set[str] = field(default_factory=set)

    @property
    def tokens_total(self) -> int:
        return self.tokens_prompt + self.tokens_completion

    def add(self, event: BlockCompleted) -> bool:
        """Count one block's usage; True when the cost changed (it must be written)."""
        if event.tokens is not None:
            self.tokens_prompt += event.tokens.prompt
            self.tokens_completion += event.tokens.completion
        if event.model:
            self.models.add(event.model)
        if event.cost:
            self.cost_total += event.cost
            return True
        return False


@dataclass
class Markers:
    """The newest start and completion markers: known (``started``/``completed``) and not yet
    handed to a write (``pending_*``)."""

    started: StartedMarker | None = None
    completed: CompletedMarker | None = None
    pending_started: StartedMarker | None = None
    pending_completed: CompletedMarker | None = None

    def note_started(self, marker: StartedMarker) -> None:
        # The store's rule (flowtrail.store.newest): equal timestamps replace, older never do.
        if is_newer(self.started.started_at if self.started else None, marker.started_at):
            self.started = marker
            self.pending_started = marker

    def note_completed(self, marker: CompletedMarker) -> None:
        if is_newer(self.completed.ended_at if self.completed else None, marker.ended_at):
            self.completed = marker
            self.pending_completed = marker

    def take(self) -> tuple[StartedMarker | None, CompletedMarker | None]:
        """The markers for the next write; none stay pending."""
        started, completed = self.pending_started, self.pending_completed
        self.pending_started = self.pending_completed = None
        return started, completed

    def put_back(self, started: StartedMarker | None, completed: CompletedMarker | None) -> None:
        """After a failed write: pending again, unless a newer marker replaced them."""
        self.pending_started = self.pending_started or started
        self.pending_completed = self.pending_completed or completed


class Recorder:
    """The engine's ``RunHooks`` for one run, backed by a store.

    Read by the finalizer: ``spans``, ``usage``, ``markers``, ``write_failures`` and
    ``cancel_seen``. A resumed run continues with ``resume_from``; ``start_watch`` wires
    the cancel callback. Everything else is private."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        workflow: str,
        started_at: float,
        *,
        masker: Masker | None = None,
        cancel_poll_seconds: float = 0.5,
        on_cancel_requested: Callable[[], None] | None = None,
        max_spans: int = 50_000,
        epoch: int | None = None,
        sealer: Sealer | None = None,
        max_step_output_bytes: int = DEFAULT_MAX_STEP_OUTPUT_BYTES,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.epoch = epoch
        """The lease epoch this engine holds: every write it makes names it, so once the
        lease is taken away (swept, claimed again) its writes are refused."""
        self.spans = SpanTree(workflow, started_at, masker or Masker(()), max_spans)
        self.usage = Usage()
        self.markers = Markers()
        self.steps = StepLog(sealer or Sealer({}), masker or Masker(()), max_step_output_bytes)
        self.write_failures = 0
        self.cancel_seen = False
        self._cancel_poll_seconds = cancel_poll_seconds
        self._on_cancel_requested = on_cancel_requested
        self._cost_dirty = False
        self._waiters: list[asyncio.Future[None]] = []
        self._backlog: list[Event] = []
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()  # set when no write is in flight or asked for
        self._in_flight = False
        self._idle_seconds = 1.0
        self._writer: asyncio.Task[None] | None = None
        self._last_write = time.monotonic()
        self._watch: asyncio.Task[None] | None = None

    def resume_from(self, row: RunRecord) -> None:
        """Continue the record of a paused run: its trace, span count and usage so far."""
        stored = row.execution_data if isinstance(row.execution_data, dict) else {}
        trace: Any = stored.get("trace")
        self.spans.seed(
            trace if isinstance(trace, dict) else None,
            row.trace_span_count,
            int(stored.get("paused_spans") or 0),
        )
        self.usage = Usage(
            row.cost_total, row.tokens_prompt, row.tokens_completion, set(row.models)
        )

    # -- RunHooks ----------------------------------------------------------------------
    async def block_started(self, event: StartEvent) -> None:
        self._backlog.append(event)
        self.steps.note(event)
        marker = StartedMarker(
            event.block_id, event.block_name, event.block_type, _dt(event.started_at)
        )
        self.markers.note_started(marker)
        await self.flush()

    def record(self, event: Event) -> None:
        self._backlog.append(event)
        self.steps.note(event)
        if len(self._backlog) >= _BACKLOG_LIMIT:
            self.digest()
        if isinstance(event, BlockStarted):  # not awaited (the start block): rides along
            self.markers.note_started(
                StartedMarker(
                    event.block_id, event.block_name, event.block_type, _dt(event.started_at)
                )
            )
        elif isinstance(event, BlockCompleted | ContainerCompleted) and not event.paused:
            self.markers.note_completed(
                CompletedMarker(
                    event.block_id,
                    event.block_name,
                    event.block_type,
                    _dt(event.ended_at),
                    event.success,
                )
            )
            if isinstance(event, BlockCompleted) and self.usage.add(event):
                self._cost_dirty = True

    def digest(self) -> None:
        """Turn queued events into spans. Done while a marker write is in flight (the
        database is working, the event loop is not), and before the final write."""
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            try:
                self.spans.add(event)
            except Exception:  # a trace that cannot be built never touches the run
                log.exception("run %s: a span could not be built; it is left out", self.run_id)

    # -- markers -----------------------------------------------------------------------
    async def flush(self) -> None:
        """Return once everything noted so far is durable (or its write has failed).

        One long-lived writer serves every caller: whoever asks while a write is in
        flight is answered by the next one, which covers them all. When this block runs
        alone (a chain: nobody to share a write with), no write is in flight and the
        store can write at once (SQLite, database free), the write is done right here,
        without a task or a wait."""
        alone = not running_tasks() and not self._waiters and not self._in_flight
        if alone and self._write_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_loop())
        else:
            self._wake.set()
        try:
            if self._backlog:
                await asyncio.sleep(0)  # let the writer hand its statement to the driver,
                self.digest()  # then build spans while the database works on it
        finally:
            # Whatever happened above, the block goes on only once its marker is written.
            # A block cancelled while waiting drops only its own future, never the write.
            await waiter

    async def _write_loop(self) -> None:
        while self._waiters:
            self._wake.clear()
            self._quiet.clear()
            waiters, self._waiters = self._waiters, []
            await self._write_once()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if not self._waiters:
                self._quiet.set()
                # Stay briefly for the next request instead of starting a new task.
                try:
                    async with asyncio.timeout(self._idle_seconds):
                        await self._wake.wait()
                except TimeoutError:
                    if self._waiters:  # asked for in the very turn the timer fired
                        continue
                    return

    def _take(self) -> ProgressWrite | None:
        """What the next write carries (taken: a failed write puts it back)."""
        started, completed = self.markers.take()
        cost = self.usage.cost_total if self._cost_dirty else None
        self._cost_dirty = False
        steps = self.steps.take()
        if not (started or completed or cost is not None or steps):
            return None
        failures = self.write_failures if self.write_failures else None
        return ProgressWrite(started, completed, cost, failures, self.epoch, steps)

    def _put_back(self, write: ProgressWrite) -> None:
        self.markers.put_back(write.started, write.completed)
        self.steps.put_back(write.steps)
        self._cost_dirty = self._cost_dirty or write.cost_total is not None

    def _write_failed(self, write: ProgressWrite, exc: Exception) -> None:
        # Superseded by the next write: put back what no newer marker replaced.
        self.write_failures += 1
        log.warning("progress write for run %s failed (%s); it will be retried", self.run_id, exc)
        self._put_back(write)

    def _write_now(self) -> bool:
        """Write what is pending before returning, if the store can (True); False: it
        cannot right now, so the writer task must."""
        now = getattr(self.store, "write_progress_now", None)
        if now is None:
            return False
        write = self._take()
        if write is None:
            return True
        try:
            cancel = now(self.run_id, write)
        except Exception as exc:
            self._write_failed(write, exc)
            return True
        if cancel is None:
            self._put_back(write)
            return False
        self._last_write = time.monotonic()
        if cancel:
            self.cancel_requested()
        return True

    async def _write_once(self) -> None:
        write = self._take()
        if write is None:
            return
        self._in_flight = True
        try:
            if await self.store.write_progress(self.run_id, write):
                self.cancel_requested()
        except Exception as exc:
            self._write_failed(write, exc)
        finally:
            self._in_flight = False
            self._last_write = time.monotonic()

    async def drain(self) -> None:
        """Wait until no write is in flight or asked for, looping (writes can arrive while
        draining). Markers and steps not yet written need no write of their own: the
        terminal or pause write folds them in."""
        while self._waiters or self._in_flight:
            if self._waiters and (self._writer is None or self._writer.done()):
                self._writer = asyncio.ensure_future(self._write_loop())
            self._quiet.clear()
            await self._quiet.wait()
        await self._stop_writer()

    async def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    # -- cancellation ------------------------------------------------------------------
    def cancel_requested(self) -> None:
        if not self.cancel_seen:
            self.cancel_seen = True
            log.info("run %s: cancellation requested", self.run_id)
            if self._on_cancel_requested is not None:
                self._on_cancel_requested()

    def start_watch(self, on_cancel_requested: Callable[[], None] | None = None) -> None:
        """Call ``on_cancel_requested`` (when given, it replaces the constructor's) once a
        durable cancel request is seen. Polls for one whenever no marker write has answered
        lately (each marker write already returns the flag). Bound: ``cancel_poll_seconds``."""
        if on_cancel_requested is not None:
            self._on_cancel_requested = on_cancel_requested
        if self._watch is None and self._cancel_poll_seconds > 0:
            self._watch = asyncio.ensure_future(self._watch_loop())

    async def _watch_loop(self) -> None:
        while not self.cancel_seen:
            await asyncio.sleep(self._cancel_poll_seconds / 2)
            if time.monotonic() - self._last_write < self._cancel_poll_seconds / 2:
                continue
            try:
                if await self.store.cancel_requested(self.run_id):
                    self.cancel_requested()
                self._last_write = time.monotonic()
            except Exception as exc:
                log.warning("checking for cancellation of run %s failed: %s", self.run_id, exc)

    async def stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
