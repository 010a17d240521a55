"""Is the process that holds a run still alive? Answered on this host only.

A pid alone is not an identity: the kernel reuses pids, so a crashed run's pid may
belong to an unrelated process by the time anyone looks. A process is identified by its
pid *and* its start time; a live pid that started at another time is not the same
process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from flowtrail.store.records import Worker

# Start times are read at clock-tick resolution and through the boot time, which the
# kernel reports rounded to the second: two readings of one process can differ by that.
START_TOLERANCE = timedelta(seconds=2)


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


_BOOT = _boot_time()
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return stat[stat.rfind(")") + 2 :].split()


def process_started_at(pid: int) -> datetime | None:
    """When process ``pid`` started, or ``None`` when it is not running or this system
    does not say (no ``/proc``)."""
    if _BOOT is None:
        return None
    fields = _stat_fields(pid)
    try:
        ticks = int(fields[19]) if fields else None  # field 22, starttime, in clock ticks
    except (IndexError, ValueError):
        return None
    return None if ticks is None else datetime.fromtimestamp(_BOOT + ticks / _TICKS, UTC)


def is_zombie(pid: int) -> bool:
    """A zombie has exited; it only waits for its parent to reap it."""
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] == ["Z"]


_THIS: dict[int, Worker] = {}  # by pid: a forked child is another process


def this_worker(worker_id: str | None = None) -> Worker:
    """This process as the worker of a run: host, pid, ``worker_id`` (``host:pid`` when
    none is given) and start time, read once per process (none of them changes)."""
    pid = os.getpid()
    found = _THIS.get(pid)
    if found is None:
        host = socket.gethostname()
        found = _THIS[pid] = Worker(host, pid, f"{host}:{pid}", process_started_at(pid))
    return found if worker_id is None else replace(found, id=worker_id)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


def process_gone(host: str | None, pid: int | None, started_at: datetime | None) -> bool:
    """True only when it is *known* that the process is gone: it ran on this host and its
    pid is free (or a zombie), or now belongs to a process that started at another time.
    Any doubt (another host, no pid recorded) is ``False``: then only the lease can tell."""
    if host is None or pid is None or host != socket.gethostname():
        return False
    if not pid_alive(pid) or is_zombie(pid):
        return True
    if started_at is None:
        return False
    now_started = process_started_at(pid)
    return now_started is not None and abs(now_started - started_at) > START_TOLERANCE
