"""Migrations: they build the declared schema, once, even when raced."""

from __future__ import annotations

import asyncio

import pytest

from flowtrail.errors import StoreError
from flowtrail.status import RunStatus
from flowtrail.store import open_store
from flowtrail.store.migrate import discover
from flowtrail.store.queries import load_queries, parse_queries
from flowtrail.store.schema import expected_schema


def test_both_backends_ship_the_same_migration_versions() -> None:
    sqlite = [m.version for m in discover("sqlite")]
    assert sqlite == [m.version for m in discover("postgres")]
    assert sqlite[0] == "0001_initial"
    assert sqlite == sorted(sqlite)


def test_both_backends_define_the_same_queries() -> None:
    # Only PostgreSQL has advisory locks (migrations, the sweeper) and the job queue.
    only_postgres = {"migration_lock", "sweeper_lock", "sweeper_unlock"}
    only_postgres |= {"queue_present", "reconcile_runs", "reconcile_jobs", "cancel_job"}
    assert load_queries("sqlite").keys() == load_queries("postgres").keys() - only_postgres


def test_query_loader_expands_includes_and_drops_comments() -> None:
    text = "-- name: frag\n-- why\n    a = 1,\n-- name: q\nUPDATE t SET\n-- include: frag\n b = 2"
    assert parse_queries(text)["q"] == "UPDATE t SET\na = 1,\n b = 2"
    with pytest.raises(ValueError, match="unknown section"):
        parse_queries("-- name: q\n-- include: nope\n")


async def test_migrations_build_the_declared_schema_and_are_idempotent(
    blank_store_url: str,
) -> None:
    versions = [m.version for m in discover("sqlite")]
    async with open_store(blank_store_url) as store:
        assert await store.schema_version() is None
        assert await store.migrate() == versions
        assert await store.describe_schema() == expected_schema(store.backend)
        assert await store.schema_version() == versions[-1]
        assert await store.migrate() == []
    async with open_store(blank_store_url) as again:
        assert await again.migrate() == []
        assert await again.schema_version() == versions[-1]


async def test_concurrent_migrators_apply_each_version_once(blank_store_url: str) -> None:
    versions = [m.version for m in discover("sqlite")]
    stores = [open_store(blank_store_url) for _ in range(3)]
    try:
        for store in stores:
            await store.open()
        results = await asyncio.gather(*(store.migrate() for store in stores))
        assert sorted(v for result in results for v in result) == versions
        assert await stores[0].describe_schema() == expected_schema(stores[0].backend)
    finally:
        for store in stores:
            await store.close()


async def test_status_column_accepts_exactly_the_vocabulary(store, kit) -> None:
    for status in RunStatus:
        run_id = await kit.run(status)
        assert (await store.get_run(run_id)).status is status
    with pytest.raises(StoreError):
        await kit.run("runnning")  # type: ignore[arg-type]


def test_the_newest_marker_rule_is_generated_once_for_both_backends() -> None:
    from flowtrail.store.newest import MARKER_FIELDS, fold_marker, is_newer

    for backend in ("sqlite", "postgres"):
        fold = load_queries(backend)["fold_progress"]
        for marker, fields in MARKER_FIELDS.items():
            assert fold_marker(backend, marker).strip() in fold
            assert fold.count(f"last_{marker}_at <=") == len(fields)  # one rule per column
    text = "-- name: q\nUPDATE t SET\n-- newest: started\n    x = 1\n"
    assert "%(started_at)s::timestamptz IS NOT NULL" in parse_queries(text, "postgres")["q"]
    assert ":started_at IS NOT NULL" in parse_queries(text, "sqlite")["q"]
    with pytest.raises(ValueError, match="unknown marker"):
        parse_queries("-- name: q\n-- newest: nope\n")
    from datetime import UTC, datetime

    one, two = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    assert is_newer(None, one) and is_newer(one, one) and is_newer(one, two)
    assert not is_newer(two, one)
