"""Fixtures for the acceptance tests: the CLI against each real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowtrail.api.auth import Tokens
from tests.acceptance.apitools import ApiServer, config_for, write_workflows
from tests.acceptance.clitools import BLOCKS, Cli


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    (tmp_path / "acc_blocks.py").write_text(BLOCKS)
    return Cli(store_url, tmp_path)


@pytest.fixture
def api(store_url: str, tmp_path: Path) -> Iterator[Callable[..., ApiServer]]:
    """Start real API servers on this test's database: ``api(workflows=True, tokens=...)``."""
    servers: list[ApiServer] = []

    def start(*, workflows: bool = True, tokens: Tokens | None = None, **kwargs: Any) -> ApiServer:
        folder = write_workflows(tmp_path / "workflows") if workflows else None
        server = ApiServer(config_for(store_url, folder, tokens=tokens, **kwargs)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
