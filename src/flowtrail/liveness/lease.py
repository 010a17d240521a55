"""How a running run's lease stands, as ``runs``, ``show`` and ``why`` show it.

Pure: a run's row and the time it was read in, a fact out. A lease is renewed every
third of its length by the heartbeat thread of the process executing the run, so a
heartbeat older than two renewals is late, and a lease past its expiry means nobody is
renewing it any more (the sweeper ends such a run ``crashed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowtrail.status import RunStatus
from flowtrail.store.records import RunRecord

# Renewals a heartbeat may miss before it is called late (the lease survives two).
LATE_AFTER_RENEWALS = 2


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A running run's lease at one instant. ``state``: ``held`` (renewed in time),
    ``late`` (held, but the heartbeat missed renewals), ``expired`` (nobody renewed it)
    or ``none`` (the row has no lease: written before leases, or by an in-memory run)."""

    state: str
    worker: str | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    expires_at: datetime | None
    expires_in_s: float | None
    """Negative once expired: how long ago."""
    epoch: int

    def text(self) -> str:
        """One line: ``lease ok, heartbeat 3s ago, worker host:pid``."""
        by = f", worker {self.worker}" if self.worker else ""
        beat = (
            f"heartbeat {ago(self.heartbeat_age_s)} ago"
            if self.heartbeat_age_s is not None
            else "no heartbeat"
        )
        if self.state == "expired":
            assert self.expires_in_s is not None
            return f"lease expired {ago(-self.expires_in_s)} ago, {beat}{by}"
        if self.state == "late":
            return f"lease held, {beat} (late){by}"
        if self.state == "none":
            return f"no lease recorded{by}"
        return f"lease ok, {beat}{by}"

    def short(self) -> str:
        """A few words for a table cell: ``hb 3s ago``, ``lease expired 12s ago``."""
        if self.state == "expired":
            assert self.expires_in_s is not None
            return f"lease expired {ago(-self.expires_in_s)} ago"
        if self.heartbeat_age_s is None:
            return "no lease"
        late = ", late" if self.state == "late" else ""
        return f"hb {ago(self.heartbeat_age_s)} ago{late}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "worker": self.worker,
            "heartbeat_at": iso(self.heartbeat_at),
            "heartbeat_age_s": self.heartbeat_age_s,
            "expires_at": iso(self.expires_at),
            "expires_in_s": self.expires_in_s,
            "epoch": self.epoch,
            "text": self.text(),
            "short": self.short(),
        }


def lease_state(record: RunRecord, now: datetime, lease_seconds: float) -> LeaseState | None:
    """The lease of a ``running`` run at ``now``; ``None`` for any other status (only a
    running run holds one)."""
    if record.status is not RunStatus.RUNNING:
        return None
    beat_age = seconds_between(record.heartbeat_at, now)
    expires_in = (
        None
        if record.lease_expires_at is None
        else round((record.lease_expires_at - now).total_seconds(), 1)
    )
    if record.lease_expires_at is None:
        state = "none"
    elif record.lease_expires_at <= now:
        state = "expired"
    elif beat_age is not None and beat_age > LATE_AFTER_RENEWALS * lease_seconds / 3:
        state = "late"
    else:
        state = "held"
    return LeaseState(
        state,
        worker_label(record),
        record.heartbeat_at,
        beat_age,
        record.lease_expires_at,
        expires_in,
        record.lease_epoch,
    )


def worker_label(record: RunRecord) -> str | None:
    """The worker holding (or last holding) the run: ``host:pid``, or the queue worker's
    name with its host and pid when it has one."""
    where = (
        f"{record.worker_host}:{record.worker_pid}"
        if record.worker_host is not None and record.worker_pid is not None
        else None
    )
    if record.worker_id and record.worker_id != where:
        return f"{record.worker_id} ({where})" if where else record.worker_id
    return where


def seconds_between(earlier: datetime | None, later: datetime) -> float | None:
    """``later - earlier`` in seconds, to 0.1 s (never negative: clocks of two machines
    may disagree a little); ``None`` when ``earlier`` is."""
    if earlier is None:
        return None
    return round(max(0.0, (later - earlier).total_seconds()), 1)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def ago(seconds: float | None) -> str:
    """``11ms``, ``2.4s``, ``12s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if seconds is None:
        return "?"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
