"""A set of running tasks whose completions are taken one at a time, in finishing order.

``asyncio.wait`` re-registers a callback on every running task at each call, which is
quadratic for a wide parallel; here each task reports itself once, when it finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

K = TypeVar("K")
R = TypeVar("R")


class Running(Generic[K, R]):
    def __init__(self) -> None:
        self._done: asyncio.Queue[asyncio.Task[R]] = asyncio.Queue()
        self._keys: dict[asyncio.Task[R], K] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def spawn(self, coro: Coroutine[Any, Any, R], key: K) -> None:
        task = asyncio.ensure_future(coro)
        self._keys[task] = key
        task.add_done_callback(self._done.put_nowait)

    async def next(self) -> tuple[asyncio.Task[R], K]:
        """The next task to finish, with its key. Only call while ``len(self) > 0``."""
        task = await self._done.get()
        return task, self._keys.pop(task)

    def cancel(self) -> None:
        for task in self._keys:
            task.cancel()
