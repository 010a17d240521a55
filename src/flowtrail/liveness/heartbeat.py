"""The lease heartbeat: a thread, not a task, so that a block that hogs the event loop
does not make its run look dead.

Every ``lease/3`` seconds the thread renews a run's lease in one statement that also
returns the cancel flag, over a blocking connection of its own. One thread serves every
run of a process (a worker running 50 runs has one heartbeat thread and one extra
connection, not 50). It also watches the
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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

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


@dataclass(eq=False)
class Heartbeat:
    """One run's lease, kept alive by its process's ``LeaseKeeper`` until ``stop()``.

    ``on_cancel`` and ``on_lost`` are called on the event loop (thread-safe), once each.
    """

    url: str
    run_id: str
    epoch: int
    lease_seconds: float
    loop: asyncio.AbstractEventLoop
    on_cancel: Callable[[], None]
    on_lost: Callable[[], None]
    lost: bool = False
    beats: int = 0
    stopped: bool = False
    cancel_told: bool = False
    due: float = 0.0

    @property
    def interval(self) -> float:
        return self.lease_seconds / 3

    def start(self) -> None:
        self.due = time.monotonic() + self.interval
        LeaseKeeper.of(self.url, self.loop).add(self)

    def stop(self) -> None:
        """Stop renewing (the run is being finalized). Never blocks: a renewal in flight
        at this moment may still land, harmlessly (the terminal write follows it)."""
        self.stopped = True
        LeaseKeeper.of(self.url, self.loop).remove(self)


class LeaseKeeper:
    """The one heartbeat thread of a process (per database and event loop): it renews
    every lease the process holds, each every third of its length, over one blocking
    connection, and probes the event loop they all run on. It starts with the first
    lease and ends when the last one is given up."""

    _keepers: ClassVar[dict[tuple[str, int], LeaseKeeper]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        self.key = (url, id(loop))
        self._db = BlockingStore(url, timeout=5.0)
        self._loop = loop
        self._probe = LoopProbe(loop)
        self._leases: set[Heartbeat] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, url: str, loop: asyncio.AbstractEventLoop) -> LeaseKeeper:
        with cls._registry_lock:
            keeper = cls._keepers.get((url, id(loop)))
            if keeper is None:
                keeper = cls._keepers[(url, id(loop))] = cls(url, loop)
            return keeper

    def add(self, lease: Heartbeat) -> None:
        with self._registry_lock:
            self._leases.add(lease)
            if self._thread is None:
                self._probe.sample()  # the first probe, answered once the loop runs
                self._thread = threading.Thread(
                    target=self._run, name="flowtrail-heartbeat", daemon=True
                )
                self._thread.start()
            else:
                self._wake.set()  # a shorter lease may be due sooner than the next tick

    def remove(self, lease: Heartbeat) -> None:
        with self._registry_lock:
            self._leases.discard(lease)
            if not self._leases:
                self._wake.set()  # let the thread notice it has nothing left

    def _next(self) -> tuple[list[Heartbeat], float] | None:
        """The leases due now and how long until the next one; None: nothing to keep
        (the keeper is then retired, under the registry lock)."""
        with self._registry_lock:
            if not self._leases:
                self._keepers.pop(self.key, None)
                self._thread = None
                return None
            now = time.monotonic()
            due = [lease for lease in self._leases if lease.due <= now]
            wait = min(lease.due for lease in self._leases) - now
            return due, max(0.0, wait)

    def _run(self) -> None:
        try:
            while True:
                step = self._next()
                if step is None:
                    return
                due, wait = step
                if not due:
                    self._wake.wait(wait)
                    self._wake.clear()
                    continue
                lag_ms, blocked_since = self._probe.sample()
                for lease in due:
                    lease.due = time.monotonic() + lease.interval
                    self._renew(lease, lag_ms, blocked_since)
        finally:
            self._db.close()

    def _renew(self, lease: Heartbeat, lag_ms: int | None, blocked: datetime | None) -> None:
        try:
            renewal = self._db.renew_lease(
                lease.run_id, lease.epoch, lease.lease_seconds, lag_ms, blocked
            )
        except Exception as exc:  # the database is away: the next beat tries again
            log.warning("run %s: the lease could not be renewed: %s", lease.run_id, exc)
            return
        lease.beats += 1
        if not renewal.held:
            if lease.stopped:
                return  # the run was finalized meanwhile: that is why
            lease.lost = True
            log.warning(
                "run %s: its lease (epoch %d) was taken away; the engine stops",
                lease.run_id,
                lease.epoch,
            )
            self.remove(lease)
            self._call_on_loop(lease.on_lost)
        elif renewal.cancel_requested and not lease.cancel_told:
            lease.cancel_told = True
            self._call_on_loop(lease.on_cancel)

    def _call_on_loop(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: so is the run
            self._loop.call_soon_threadsafe(callback)
