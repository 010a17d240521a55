"""``flowtrail worker``: a Procrastinate worker that executes queued runs.

Stopping is in two steps. ``stop()`` (the first SIGTERM or Ctrl-C) is graceful: the
worker claims nothing more and gives the runs in flight ``grace_seconds`` to end; what
is still running then is handed back (``crashed``, cause ``worker_shutdown``). A second
``stop()`` hands back what is left at once. Either way no run stays ``running``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from flowtrail.errors import StoreError
from flowtrail.liveness.process import this_worker
from flowtrail.queue.app import CONTEXT_KEY, make_app
from flowtrail.queue.defaults import DEFAULT_GRACE_SECONDS, DEFAULT_QUEUE, require_postgres
from flowtrail.queue.execute import RunExecutor
from flowtrail.queue.schema import queue_schema_present
from flowtrail.settings import Settings
from flowtrail.store import Store

log = logging.getLogger("flowtrail.worker")

# Connections beyond one per concurrent job: the job fetcher, the LISTEN connection and
# the worker heartbeat share them.
_EXTRA_CONNECTIONS = 3


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 1
    """Runs executed at once by this worker."""
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    """The queues it takes jobs from."""
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    """After a stop request, how long runs in flight may take to end before they are
    handed back."""


Companion = Callable[[], Coroutine[Any, Any, None]]


class QueueWorker:
    """Runs until ``stop()``; ``run()`` returns once every run in flight has ended or
    been handed back.

    ``companions`` are loops that live as long as the worker and are cancelled when it
    stops: the hook through which the liveness sweeper runs in every worker."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        options: WorkerOptions,
        companions: Sequence[Companion] = (),
    ) -> None:
        require_postgres(store.url)
        if options.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.settings = settings
        self.options = options
        self.identity = this_worker()
        self.executor = RunExecutor(store, settings, self.identity)
        self.companions = tuple(companions)
        self._worker_task: asyncio.Task[None] | None = None
        self._stops = 0
        self._stop_early = False

    def stop(self) -> None:
        """First call: graceful. Second call: hand back the runs in flight now."""
        if self._worker_task is None:  # not started yet: stop as soon as it is
            self._stop_early = True
            return
        self._stops += 1
        if self._stops == 1:
            log.warning(
                "stopping: no new runs; %d in flight get %.0f s to end",
                len(self.executor.in_flight),
                self.options.grace_seconds,
            )
            self._worker_task.cancel()  # Procrastinate's own graceful shutdown
        else:
            log.warning("stopping now: handing back %s", self.executor.in_flight or "nothing")
            self.executor.stop_now()

    async def run(self) -> None:
        if not await queue_schema_present(self.store.url):
            raise StoreError(
                "the job queue's tables are missing from this database; run "
                "`flowtrail db upgrade` against it first"
            )
        opts = self.options
        app = make_app(self.store.url, connections=opts.concurrency + _EXTRA_CONNECTIONS)
        async with app.open_async():
            self._worker_task = asyncio.ensure_future(
                app.run_worker_async(
                    queues=list(opts.queues),
                    concurrency=opts.concurrency,
                    name=f"flowtrail@{self.identity.host}:{self.identity.pid}",
                    wait=True,
                    install_signal_handlers=False,
                    shutdown_graceful_timeout=opts.grace_seconds,
                    additional_context={CONTEXT_KEY: self.executor},
                )
            )
            log.info(
                "worker %s:%s takes runs from %s (concurrency %d)",
                self.identity.host,
                self.identity.pid,
                ", ".join(opts.queues),
                opts.concurrency,
            )
            loops = [asyncio.ensure_future(make()) for make in self.companions]
            if self._stop_early:
                self.stop()
            try:
                with suppress(asyncio.CancelledError):
                    await self._worker_task
            finally:
                for loop in loops:
                    loop.cancel()
                for ended in await asyncio.gather(*loops, return_exceptions=True):
                    if isinstance(ended, Exception):
                        log.error("a loop beside the worker failed: %r", ended)
        log.info("worker stopped")
