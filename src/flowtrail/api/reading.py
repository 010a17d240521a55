"""How a route reads: through a reader of the pool when the server has one, else through
the writer store; and the run detail, the same JSON as ``flowtrail show --json``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Request

from flowtrail.diagnostics.summary import record_detail
from flowtrail.errors import StoreUnavailableError
from flowtrail.liveness.verdicts import Verdict
from flowtrail.settings import Settings
from flowtrail.store import RunRecord, Store
from flowtrail.store.common import utcnow
from flowtrail.store.records import StepRecord


@asynccontextmanager
async def reading(request: Request) -> AsyncIterator[Store]:
    readers = getattr(request.app.state, "readers", None)
    if readers is None:
        yield request.app.state.store
        return
    async with readers.reader() as store:
        yield store


T = TypeVar("T")


async def read(request: Request, fn: Callable[[Store], Awaitable[T]]) -> T:
    """``fn`` with a reader. A connection that a database restart broke is found broken
    only by the next call on it, which fails; the reader then connects again, so ``fn``
    is tried once more on it (a read is safe to repeat). A database still down fails
    that try too: 503."""
    async with reading(request) as store:
        try:
            return await fn(store)
        except StoreUnavailableError:
            return await fn(store)


def run_detail(
    record: RunRecord, steps: list[StepRecord], found: Verdict | None, settings: Settings
) -> dict[str, Any]:
    """What ``flowtrail show --json`` prints for this run (``record_detail``)."""
    return record_detail(record, steps, found, now=utcnow(), lease_seconds=settings.lease_seconds)
