"""``flowtrail db upgrade`` puts Procrastinate's tables in a PostgreSQL database, once:
a second upgrade (or two at once) finds them and leaves them alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from flowtrail.queue.schema import apply_queue_schema
from tests.acceptance.clitools import Cli

POSTGRES_ONLY = pytest.mark.parametrize(
    "blank_store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name LIKE 'procrastinate_%'"
        ).fetchall()
    return {r[0] for r in rows}


@POSTGRES_ONLY
def test_db_upgrade_applies_the_queue_schema_once(blank_store_url: str, tmp_path: Path) -> None:
    cli = Cli(blank_store_url, tmp_path)
    first = cli.run("db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert "applied the Procrastinate queue schema" in first.stderr
    assert {"procrastinate_jobs", "procrastinate_workers"} <= _tables(blank_store_url)
    second = cli.run("db", "upgrade")
    assert second.returncode == 0, second.stderr
    assert "the Procrastinate queue schema is in place" in second.stderr


@POSTGRES_ONLY
async def test_two_upgrades_at_once_apply_it_once(blank_store_url: str) -> None:
    applied = await asyncio.gather(*(apply_queue_schema(blank_store_url) for _ in range(3)))
    assert sorted(applied) == [False, False, True]
