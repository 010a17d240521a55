"""Fixtures for the acceptance tests: the CLI against each real database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.clitools import BLOCKS, Cli


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    (tmp_path / "acc_blocks.py").write_text(BLOCKS)
    return Cli(store_url, tmp_path)
