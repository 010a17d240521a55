"""A run is never recorded or reported as something it was not (issue 6, section 1).

Every fault here is real: SQLite's own ``max_page_count`` and ``query_only`` on the very
connection the engine writes through ("database or disk is full", "attempt to write a
readonly database"), a TCP proxy between flowtrail and PostgreSQL that is cut for a few
seconds, outputs that UTF-8 or jsonb cannot hold.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, RunStatus
from flowtrail.store import SqlStore
from tests.integration.diagnostics.support import backend_of, open_store
from tests.integration.diagnostics.tcpproxy import TcpProxy

CODE = """
import asyncio

STORE = None      # the engine's own store, set by the test
PROXY = None      # the TCP proxy in front of PostgreSQL, set by the test
FAULT = None      # the PRAGMA that causes the fault
OUTAGE = 0.0

async def fill(size):
    pages = (await STORE._fetch("PRAGMA page_count", {}))[0]["page_count"]
    # The file may not grow any more: the next page SQLite needs is "database or disk
    # is full", exactly as on a full disk.
    await STORE._fetch(f"PRAGMA max_page_count={pages}", {})
    return {"data": "y" * size}

async def readonly():
    await STORE._fetch(FAULT, {})
    return {"data": "ok"}

async def cut():
    PROXY.cut(OUTAGE)
    return {"first": 1, "second": 2, "data": "kept"}

def surrogate():
    return {"text": "ok\\ud800ok", "pair": "\\ud83d\\ude00"}

def big(size):
    return "x" * size
"""


def one_block(call: str, **with_: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "function", "call": f"FNS:{call}"}
    if with_:
        block["with"] = with_
    return {
        "name": "truth",
        "blocks": {
            "start": {"type": "start"},
            "work": block,
        },
        "connections": ["start -> work"],
    }


def sqlite_only(store_url: str) -> None:
    if backend_of(store_url) != "sqlite":
        pytest.skip("a SQLite fault")


async def lift_later(store: SqlStore, pragma: str, after: float) -> None:
    await asyncio.sleep(after)
    await store._fetch(pragma, {})


async def test_disk_full_at_finalization_is_retried_until_it_clears(db, flow, store_url) -> None:
    """Before: "database or disk is full" was not retried, both records failed and the
    completed run was force-failed (or left running). Now it is ridden out like an outage
    and the full record is written once space is back."""
    sqlite_only(store_url)
    fl = flow(one_block("fill", size=300_000), CODE)
    fl.module.STORE = db
    runner = Runner(Settings(finalize_retry_seconds=20), db)
    handle = await runner.start(fl.workflow)
    lifter = asyncio.ensure_future(_lift_when_set(db, "max_page_count"))
    report = await handle.result()
    await lifter

    assert report.status is RunStatus.COMPLETED and report.record_final
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED
    assert rec.output == {"result": {"data": "y" * 300_000}}


async def _lift_when_set(store: SqlStore, pragma: str) -> None:
    """Wait until the block has capped the file, then give the space back 1 s later
    (while the terminal write is retrying)."""
    for _ in range(1000):
        value = (await store._fetch(f"PRAGMA {pragma}", {}))[0][pragma]
        pages = (await store._fetch("PRAGMA page_count", {}))[0]["page_count"]
        if value == pages:
            break
        await asyncio.sleep(0.01)
    await lift_later(store, "PRAGMA max_page_count=1073741823", 1.0)


async def test_disk_full_for_good_is_reported_not_final(db, flow, store_url) -> None:
    """The space never comes back: the run reached completed, the row still says
    running, and the report says the record is not final (it never claims completed was
    stored, and the run is never recorded as failed)."""
    sqlite_only(store_url)
    fl = flow(one_block("fill", size=300_000), CODE)
    fl.module.STORE = db
    report = await Runner(Settings(finalize_retry_seconds=0.5), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    assert not report.record_final
    assert "database or disk is full" in (report.completion_failure or "")
    await db._fetch("PRAGMA max_page_count=1073741823", {})
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.RUNNING
    assert rec.finalization_path is None


# (make the connection read-only, tell that it is, make it writable again) per backend:
# SQLite's query_only gives "attempt to write a readonly database", the error of a
# read-only file; PostgreSQL's gives SQLSTATE 25006, as a standby or a failover does.
READ_ONLY = {
    "sqlite": ("PRAGMA query_only=ON", "PRAGMA query_only", "PRAGMA query_only=OFF"),
    "postgres": (
        "SET default_transaction_read_only = on",
        "SHOW default_transaction_read_only",
        "SET default_transaction_read_only = off",
    ),
}


async def _lift_read_only(store: SqlStore, backend: str) -> None:
    _, probe, lift = READ_ONLY[backend]
    for _ in range(1000):
        (row,) = await store._fetch(probe, {})
        if next(iter(row.values())) in (1, "on"):
            break
        await asyncio.sleep(0.01)
    await lift_later(store, lift, 1.0)


async def test_read_only_database_at_finalization_is_retried(db, flow, store_url) -> None:
    """Before: SQLite's read-only error was retried only ~3 s and PostgreSQL's (25006) not
    at all; the completed run was then force-failed or left running."""
    backend = backend_of(store_url)
    fl = flow(one_block("readonly"), CODE)
    fl.module.STORE, fl.module.FAULT = db, READ_ONLY[backend][0]
    runner = Runner(Settings(finalize_retry_seconds=20), db)
    handle = await runner.start(fl.workflow)
    lifter = asyncio.ensure_future(_lift_read_only(db, backend))
    report = await handle.result()
    await lifter

    assert report.status is RunStatus.COMPLETED and report.record_final
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED


async def test_lone_surrogate_in_output_stays_a_success(db, flow) -> None:
    """Before: UTF-8 cannot encode "\\ud800", both records were refused and the run
    ended failed. Now the lone surrogate becomes U+FFFD and a pair becomes its character."""
    fl = flow(one_block("surrogate"), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED and report.record_final
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED
    assert rec.output == {"result": {"text": "ok\ufffdok", "pair": "\U0001f600"}}


async def test_output_over_the_cap_is_stored_truncated(db, flow) -> None:
    fl = flow(one_block("big", size=10_000), CODE)
    report = await Runner(Settings(max_output_bytes=2048), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED and report.record_final
    assert report.output == {"result": "x" * 10_000}  # the caller still gets all of it
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED
    assert rec.output == {
        "truncated": True,
        "original_bytes": 10_013,
        "max_output_bytes": 2048,
        "preview": '{"result":"' + "x" * 245,
    }
    assert rec.execution_data["output_truncation"]["original_bytes"] == 10_013


def _via_proxy(url: str, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", parts.path, parts.query, ""))


async def _behind_proxy(store_url: str) -> tuple[TcpProxy, SqlStore]:
    if backend_of(store_url) != "postgres":
        pytest.skip("a PostgreSQL outage")
    from urllib.parse import urlsplit

    target = urlsplit(store_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    return proxy, await open_store(_via_proxy(store_url, proxy.port))


async def test_postgres_outage_at_finalization_is_ridden_out(flow, store_url) -> None:
    """Before: about 3 s of outage was ridden out, then the minimal record, then the
    completed run was force-failed with output null. A 4 s outage now ends completed
    with its full record (the budget is ``finalize_retry_seconds``)."""
    proxy, store = await _behind_proxy(store_url)
    try:
        fl = flow(one_block("cut"), CODE)
        fl.module.PROXY, fl.module.OUTAGE = proxy, 4.0
        report = await Runner(Settings(finalize_retry_seconds=30), store).run(fl.workflow)
        assert proxy.cuts == 1
        assert report.status is RunStatus.COMPLETED and report.record_final
        rec = await store.get_run(report.run_id)
        assert rec.status is RunStatus.COMPLETED
        assert rec.finalization_path is FinalizationPath.COMPLETED
        assert rec.has_trace_spans and rec.completion_failure is None
        assert rec.output == {"result": {"first": 1, "second": 2, "data": "kept"}}
    finally:
        await store.close()
        await proxy.stop()


async def test_postgres_outage_past_the_budget_is_not_final_never_failed(flow, store_url) -> None:
    proxy, store = await _behind_proxy(store_url)
    try:
        fl = flow(one_block("cut"), CODE)
        fl.module.PROXY, fl.module.OUTAGE = proxy, 3.0
        report = await Runner(Settings(finalize_retry_seconds=0.5), store).run(fl.workflow)
        assert report.status is RunStatus.COMPLETED
        assert not report.record_final
        await proxy.wait_restored()
        rec = await store.get_run(report.run_id)
        assert rec.status is RunStatus.RUNNING  # not failed: the run did not fail
        assert rec.error_message is None
    finally:
        await store.close()
        await proxy.stop()


@pytest.mark.slow
async def test_a_300_mb_output_completes_on_every_backend(db, flow) -> None:
    """Before: on PostgreSQL both records carried the whole output, over jsonb's limit,
    and the run ended failed. Now the stored output is capped at the default 64 MiB."""
    fl = flow(one_block("big", size=300_000_000), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED and report.record_final
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.output["truncated"] is True
    assert rec.output["original_bytes"] == 300_000_013
    assert rec.output["max_output_bytes"] == 64 * 1024 * 1024
    assert rec.output["preview"].startswith('{"result":"xxx')
