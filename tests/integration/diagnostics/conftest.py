"""Fixtures for the durable-record tests. Every store here is a real database, on both
backends (``store_url`` from ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from flowtrail.store import SqlStore
from tests.integration.diagnostics.support import Flow, make_flow, open_store


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[SqlStore]:
    """The store the engine writes through."""
    store = await open_store(store_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def db2(store_url: str) -> AsyncIterator[SqlStore]:
    """A second, independent connection to the same database: 'somebody else'."""
    store = await open_store(store_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def flow(tmp_path: Path) -> Callable[[dict[str, Any], str], Flow]:
    """``flow(definition, code)``: compile a workflow whose functions live in ``code``."""

    def build(definition: dict[str, Any], code: str) -> Flow:
        return make_flow(tmp_path / "wf", definition, code)

    return build
