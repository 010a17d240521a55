"""Deliver events to user observers without ever letting them touch the run.

Each observer gets its own queue and its own consumer: a sync observer runs in a daemon
thread, an async one in its own task. An observer that raises is logged and keeps
receiving; one that hangs only stalls itself. Closing waits a bounded time, then abandons.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from flowtrail.engine.events import Event

log = logging.getLogger("flowtrail.observers")

# An observer: a plain function (sync or async) called with each masked event copy, after
# its marker; whatever it raises or however long it takes never changes the run.
Observer = Callable[[Event], Any]
_STOP = object()


class _ThreadConsumer:
    def __init__(self, fn: Callable[[Event], Any]) -> None:
        self.fn = fn
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="flowtrail-observer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            while (event := self.queue.get()) is not _STOP:
                try:
                    self.fn(event)
                except Exception:
                    log.exception("observer %r raised; ignored", self.fn)
        finally:
            self.done.set()

    def put(self, event: Event) -> None:
        self.queue.put(event)

    async def close(self, grace: float) -> None:
        self.queue.put(_STOP)
        await asyncio.to_thread(self.done.wait, grace)


class _TaskConsumer:
    def __init__(self, fn: Callable[[Event], Awaitable[Any]]) -> None:
        self.fn = fn
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while (event := await self.queue.get()) is not _STOP:
            try:
                await self.fn(event)
            except Exception:
                log.exception("observer %r raised; ignored", self.fn)

    def put(self, event: Event) -> None:
        self.queue.put_nowait(event)

    async def close(self, grace: float) -> None:
        self.queue.put_nowait(_STOP)
        _done, pending = await asyncio.wait({self.task}, timeout=grace)
        for task in pending:
            task.cancel()


_REDACTED_FIELDS = ("input", "output", "error", "logs")


def _redacted(event: Event, redact: Callable[[Any], Any]) -> Event:
    changes = {f: redact(getattr(event, f)) for f in _REDACTED_FIELDS if hasattr(event, f)}
    return dataclasses.replace(event, **changes) if changes else event


class ObserverHub:
    """Fan events out to observers. ``publish`` never blocks and never raises."""

    def __init__(
        self,
        observers: list[Observer] | None = None,
        redact: Callable[[Any], Any] | None = None,
    ) -> None:
        self._pending = list(observers or [])
        self._redact = redact
        self._consumers: list[_ThreadConsumer | _TaskConsumer] = []

    def start(self) -> None:
        for fn in self._pending:
            is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
                getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
            )
            self._consumers.append(_TaskConsumer(fn) if is_async else _ThreadConsumer(fn))
        self._pending = []

    def publish(self, event: Event) -> None:
        if not self._consumers:
            return
        try:
            # Observers get their own copy: one that mutates an output must not change
            # what the run stores or returns.
            event = copy.deepcopy(event)
            if self._redact is not None:
                event = _redacted(event, self._redact)
        except Exception:
            log.warning("an event could not be copied for observers; skipped")
            return
        for consumer in self._consumers:
            try:
                consumer.put(event)
            except Exception:
                log.exception("could not queue an event for an observer")

    async def close(self, grace: float = 2.0) -> None:
        """Let observers catch up for at most ``grace`` seconds in total, then move on."""
        consumers, self._consumers = self._consumers, []
        if consumers:
            await asyncio.gather(*(c.close(grace) for c in consumers), return_exceptions=True)
