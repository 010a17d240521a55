"""The lease heartbeat: a thread, not a task, so that a block that hogs the event loop
does not make its run look dead.

Every ``lease/3`` seconds the thread renews the run's lease in one statement that also
returns the cancel flag, over a blocking connection of its own. It also watches the
event loop: it posts a probe to the loop and notes when the probe ran, so a loop that
has not run a probe for a while is reported (``loop_lag_ms``, ``loop_blocked_since``) as
evidence for ``flowtrail why``. When the lease is lost (the sweeper ended the run, or
another worker claimed it), the engine is told to stop; its later writes are refused by
the epoch they carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from flowtrail.store.blocking import BlockingStore

log = logging.getLogger("flowtrail.liveness")

# Below this the loop is merely busy, not blocked: nothing is reported.
LAG_REPORT_SECONDS = 1.0


class LoopProbe:
    """How long the event loop has gone without running a posted callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._posted: float | None = None  # wall time of the probe not yet run
        self._lock = threading.Lock()

    def _ran(self) -> None:
        with self._lock:
            self._posted = None

    def sample(self) -> tuple[int | None, datetime | None]:
        """Post a probe if none is waiting; return the lag of the one waiting (ms) and
        since when, or ``(None, None)`` while the loop keeps up."""
        now = time.time()
        with self._lock:
            posted = self._posted
            if posted is None:
                self._posted = now
        if posted is None:
            try:
                self._loop.call_soon_threadsafe(self._ran)
            except RuntimeError:  # the loop is closed: nothing to watch
                return None, None
            return None, None
        lag = now - posted
        if lag < LAG_REPORT_SECONDS:
            return None, None
        return int(lag * 1000), datetime.fromtimestamp(posted, UTC)


class Heartbeat:
    """Renews one run's lease from a thread until ``stop()``.

    ``on_cancel`` and ``on_lost`` are called on the event loop (thread-safe), once each.
    """

    def __init__(
        self,
        url: str,
        run_id: str,
        epoch: int,
        lease_seconds: float,
        *,
        loop: asyncio.AbstractEventLoop,
        on_cancel: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.run_id = run_id
        self.epoch = epoch
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self.lost = False
        self.beats = 0
        self._db = BlockingStore(url, timeout=max(1.0, self.interval))
        self._loop = loop
        self._probe = LoopProbe(loop)
        self._on_cancel = on_cancel
        self._on_lost = on_lost
        self._cancel_told = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"flowtrail-heartbeat-{run_id[:12]}", daemon=True
        )

    def start(self) -> None:
        self._probe.sample()  # the first probe, answered as soon as the loop runs
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the run is being finalized); returns once the thread is done."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._db.close()

    def _call_on_loop(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: so is the run
            self._loop.call_soon_threadsafe(callback)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            lag_ms, blocked_since = self._probe.sample()
            try:
                renewal = self._db.renew_lease(
                    self.run_id, self.epoch, self.lease_seconds, lag_ms, blocked_since
                )
            except Exception as exc:  # the database is away: the next beat tries again
                log.warning("run %s: the lease could not be renewed: %s", self.run_id, exc)
                continue
            self.beats += 1
            if not renewal.held:
                if self._stop.is_set():
                    return  # the run was finalized meanwhile: that is why
                self.lost = True
                log.warning(
                    "run %s: its lease (epoch %d) was taken away; the engine stops",
                    self.run_id,
                    self.epoch,
                )
                self._call_on_loop(self._on_lost)
                return
            if renewal.cancel_requested and not self._cancel_told:
                self._cancel_told = True
                self._call_on_loop(self._on_cancel)
