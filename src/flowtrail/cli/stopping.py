"""Ctrl-C and SIGTERM during a command that starts, queues or follows a run."""

from __future__ import annotations

import asyncio
import shlex
import signal
from contextlib import suppress

from flowtrail.cli.common import Interrupted
from flowtrail.runner import RunHandle
from flowtrail.store.common import redact_url

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    """Ctrl-C and SIGTERM for the whole life of a run command.

    Installed before anything else, so a signal never kills the process: before the run
    starts it means "start nothing" (``Interrupted``); once a run exists it cancels it,
    which records the request, finalizes the run ``cancelled`` and ends with the summary.
    The handlers run on the event loop, so they act while a plain-Python block holds a
    thread and while an ``async`` block awaits.
    """

    def __init__(self) -> None:
        self.handle: RunHandle | None = None
        self.signal: str | None = None

    def __enter__(self) -> Stopper:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            with suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.signal = self.signal or sig.name
        if self.handle is not None:
            self.handle.cancel(f"cli:{self.signal}")

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal came before the run started."""
        if self.signal is not None:
            raise Interrupted(f"{self.signal} received before the run started; nothing was run")

    def attach(self, handle: RunHandle) -> RunHandle:
        self.handle = handle
        if self.signal is not None:  # it came while the run row was being written
            handle.cancel(f"cli:{self.signal}")
        return handle


def resume_command(run_id: str, db: str | None) -> str:
    """The command that resumes a paused run, ``--db`` repeated when one was given; the
    input is a placeholder to replace with the JSON the waiting block expects (and a
    password in the URL, shown as ``***``)."""
    parts = ["flowtrail", "resume", run_id]
    if db:
        parts += ["--db", shlex.quote(redact_url(db))]  # a password is not echoed
    return " ".join([*parts, "--input", "'<JSON>'"])
