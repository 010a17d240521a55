"""Live progress on stderr: an ordinary observer, so it can never slow or break a run.

Every line names where a block runs: ``fetch [2]`` is iteration (or branch) 2 of the
enclosing loop or parallel; ``invoice`` then ``CHILD`` then ``total`` is block ``total`` of
child workflow block ``invoice`` (indices are 0-based, as in ``flowtrail show``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    ContainerCompleted,
    ContainerStarted,
    Event,
    IterationCompleted,
    Path,
    RunFinished,
)

MAX_ROWS = 12
CHILD = " \u203a "  # a right-pointing angle quote between a workflow block and its blocks


def place(block_id: str, path: Path) -> str:
    """``block_id`` with the iteration indices and child workflows that enclose it."""
    segments: list[str] = []
    indices = ""
    for frame in path:
        if frame.kind == "workflow":
            segments.append(_indexed(frame.container_id, indices))
            indices = ""
        else:
            indices += f"[{frame.index}]"
    segments.append(_indexed(block_id, indices))
    return CHILD.join(segments)


def _indexed(name: str, indices: str) -> str:
    return f"{name} {indices}" if indices else name


@dataclass
class _Running:
    label: str
    kind: str
    since: float
    spinner: Spinner


@dataclass
class _Container:
    label: str
    kind: str
    done: int
    total: int | None
    since: float


class Progress:
    """Shows the blocks running now and each loop/parallel's progress. On a terminal it
    redraws in place several times a second (elapsed times and spinners move between
    events); otherwise it prints one line per block."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live_mode = console.is_terminal
        self.running: dict[tuple[Path, str], _Running] = {}
        self.containers: dict[tuple[Path, str], _Container] = {}
        self.done = 0
        self.failed = 0
        # Reentrant: Live's refresh thread calls ``_render`` while ``__call__`` may hold it.
        self.lock = threading.RLock()
        self.live: Live | None = None
        if self.live_mode:
            self.live = Live(
                console=console,
                get_renderable=self._render,
                refresh_per_second=8,
                auto_refresh=True,
                transient=True,
            )
            self.live.start()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._apply(event)
        if isinstance(event, RunFinished):
            self.stop()

    def _say(self, text: str) -> None:
        if not self.live_mode:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _apply(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, BlockStarted):
            label = place(event.block_id, event.path)
            self.running[(event.path, event.block_id)] = _Running(
                label, event.block_type, now, Spinner("dots", style="cyan")
            )
            self._say(f"▶ {label} ({event.block_type})")
        elif isinstance(event, BlockCompleted):
            self.running.pop((event.path, event.block_id), None)
            self.done += 1
            if not event.success:
                self.failed += 1
            mark = "⏸" if event.paused else ("✓" if event.success else "✗")
            ms = (event.ended_at - event.started_at) * 1000
            tail = f" — {event.error}" if event.error else ""
            self._say(f"{mark} {place(event.block_id, event.path)} {ms:.0f} ms{tail}")
        elif isinstance(event, ContainerStarted):
            self.containers[(event.path, event.block_id)] = _Container(
                place(event.block_id, event.path), event.block_type, 0, event.total, now
            )
        elif isinstance(event, IterationCompleted):
            key = (event.path, event.container_id)
            entry = self.containers.get(key)
            if entry is None:  # a resumed run: its container started before the pause
                entry = self.containers[key] = _Container(
                    place(event.container_id, event.path),
                    event.container_type,
                    0,
                    event.total,
                    now,
                )
            entry.done += 1
        elif isinstance(event, ContainerCompleted):
            self.containers.pop((event.path, event.block_id), None)
            mark = "✓" if event.success else "✗"
            self._say(
                f"{mark} {place(event.block_id, event.path)} "
                f"({event.block_type}, {event.iterations} iterations)"
            )

    def _render(self) -> RenderableType:
        """Built afresh at every refresh, so elapsed times and spinners keep moving."""
        with self.lock:
            now = time.monotonic()
            table = Table.grid(padding=(0, 1))
            running = list(self.running.values())
            for entry in running[:MAX_ROWS]:
                table.add_row(
                    entry.spinner,
                    Text(f"{entry.label} ({entry.kind})"),
                    Text(f"{now - entry.since:.1f}s", style="dim"),
                )
            if len(running) > MAX_ROWS:
                table.add_row(
                    Text(""), Text(f"… {len(running) - MAX_ROWS} more running", style="dim")
                )
            for c in self.containers.values():
                of = f"/{c.total}" if c.total is not None else ""
                table.add_row(
                    Text("↻", style="magenta"),
                    Text(f"{c.label} ({c.kind}) {c.done}{of}"),
                    Text(f"{now - c.since:.1f}s", style="dim"),
                )
            summary = Text(f"{self.done} blocks done, {self.failed} failed", style="dim")
            return Group(table, summary)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
