"""A set of running tasks whose completions are taken one at a time, in finishing order.

``asyncio.wait`` re-registers a callback on every running task at each call, which is
quadratic for a wide parallel; here each task reports itself once, when it finishes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

K = TypeVar("K")
R = TypeVar("R")


_live = threading.local()  # an event loop keeps to its thread


def running_tasks() -> int:
    """Branches (of parallels and of scopes that fan out) running on this thread's event
    loop, in every run: none means blocks here run one at a time, so a block's start
    marker has nobody to share its write with."""
    return getattr(_live, "count", 0)


def _ended(_task: asyncio.Task[Any]) -> None:
    _live.count = running_tasks() - 1


class Running(Generic[K, R]):
    def __init__(self) -> None:
        self._done: asyncio.Queue[asyncio.Task[R]] = asyncio.Queue()
        self._keys: dict[asyncio.Task[R], K] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def spawn(self, coro: Coroutine[Any, Any, R], key: K) -> None:
        task = asyncio.ensure_future(coro)
        self._keys[task] = key
        _live.count = running_tasks() + 1
        task.add_done_callback(_ended)
        task.add_done_callback(self._done.put_nowait)

    async def next(self) -> tuple[asyncio.Task[R], K]:
        """The next task to finish, with its key. Only call while ``len(self) > 0``."""
        task = await self._done.get()
        return task, self._keys.pop(task)

    def cancel(self) -> None:
        for task in self._keys:
            task.cancel()
