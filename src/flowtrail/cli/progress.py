"""Live progress on stderr: an ordinary observer, so it can never slow or break a run."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    ContainerCompleted,
    ContainerStarted,
    Event,
    IterationCompleted,
    RunFinished,
)


class Progress:
    """Shows the blocks running now and each loop/parallel's progress. On a terminal it
    redraws in place; otherwise it prints one line per block."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live_mode = console.is_terminal
        self.running: dict[tuple[Any, str], tuple[str, float]] = {}
        self.containers: dict[str, list[Any]] = {}  # id -> [done, total, type]
        self.done = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.live: Live | None = None
        if self.live_mode:
            self.live = Live(self._render(), console=console, refresh_per_second=8, transient=True)
            self.live.start()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._apply(event)
            if self.live is not None:
                self.live.update(self._render())
        if isinstance(event, RunFinished):
            self.stop()

    def _apply(self, event: Event) -> None:
        if isinstance(event, BlockStarted):
            self.running[(event.path, event.block_id)] = (event.block_type, time.monotonic())
            if not self.live_mode:
                self.console.print(f"▶ {event.block_id} ({event.block_type})", highlight=False)
        elif isinstance(event, BlockCompleted):
            self.running.pop((event.path, event.block_id), None)
            self.done += 1
            if not event.success:
                self.failed += 1
            if not self.live_mode:
                mark = "⏸" if event.paused else ("✓" if event.success else "✗")
                ms = (event.ended_at - event.started_at) * 1000
                tail = f" — {event.error}" if event.error else ""
                self.console.print(
                    f"{mark} {event.block_id} {ms:.0f} ms{tail}", highlight=False, markup=False
                )
        elif isinstance(event, ContainerStarted):
            self.containers[event.block_id] = [0, event.total, event.block_type]
        elif isinstance(event, IterationCompleted):
            entry = self.containers.setdefault(
                event.container_id, [0, event.total, event.container_type]
            )
            entry[0] += 1
        elif isinstance(event, ContainerCompleted):
            self.containers.pop(event.block_id, None)
            if not self.live_mode:
                mark = "✓" if event.success else "✗"
                self.console.print(
                    f"{mark} {event.block_id} ({event.block_type}, {event.iterations} iterations)",
                    highlight=False,
                )

    def _render(self) -> Table:
        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for (_path, block_id), (kind, since) in list(self.running.items())[:12]:
            table.add_row(
                Text("⠿", style="cyan"),
                Text(f"{block_id} ({kind})"),
                Text(f"{now - since:.1f}s", style="dim"),
            )
        for block_id, (done, total, kind) in self.containers.items():
            of = f"/{total}" if total is not None else ""
            table.add_row(
                Text("↻", style="magenta"), Text(f"{block_id} ({kind})"), Text(f"{done}{of}")
            )
        table.add_row(
            Text(""), Text(f"{self.done} blocks done, {self.failed} failed", style="dim"), Text("")
        )
        return table

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
