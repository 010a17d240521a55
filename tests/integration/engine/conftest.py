"""Engine behaviour tests: every test starts with clean state in the fixture functions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.engine.engine_support import engine_blocks


@pytest.fixture(autouse=True)
def _fresh_engine_blocks() -> Iterator[None]:
    engine_blocks.reset()
    yield
    engine_blocks.reset()
