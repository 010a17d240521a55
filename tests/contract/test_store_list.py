"""The run list (``Store.list_summaries``): keyset pages newest first, stable under
inserts, every filter, lean rows that summarize exactly as the whole row does, and a
clear error for a bad cursor. Both backends, real databases."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from tests.contract.conftest import Kit, at

from flowtrail.diagnostics.summary import run_summary
from flowtrail.errors import BadCursorError, InputError
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization, NewRun, RunQuery, SqlStore
from flowtrail.store.cursor import encode_cursor
from flowtrail.store.migrate import discover

NOW = at(10_000)


async def _new(
    store: SqlStore,
    run_id: str,
    started: float,
    *,
    workflow: str = "wf",
    trigger: str = "cli",
    status: RunStatus = RunStatus.RUNNING,
) -> str:
    await store.put_snapshot(f"hash-{workflow}", workflow, {"name": workflow})
    await store.create_run(
        NewRun(
            id=run_id,
            workflow_name=workflow,
            snapshot_hash=f"hash-{workflow}",
            status=status,
            trigger=trigger,
            started_at=at(started),
            input={"big": "i" * 5000},
        )
    )
    return run_id


async def _all_pages(store: SqlStore, query: RunQuery) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await store.list_summaries(
            RunQuery(**{**_fields(query), "cursor": cursor})  # type: ignore[arg-type]
        )
        ids += [r.id for r in page.rows]
        assert len(page.rows) <= query.limit
        if page.next_cursor is None:
            return ids
        assert page.rows, "a next cursor after an empty page"
        cursor = page.next_cursor
    raise AssertionError("paging never ended")


def _fields(query: RunQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in RunQuery.__dataclass_fields__}


async def test_pages_newest_first_and_stable_under_inserts(store: SqlStore) -> None:
    # 23 runs; ties on started_at (three runs share each second) are ordered by id
    expected = []
    for i in range(23):
        expected.append(await _new(store, f"r{i:03d}", i // 3))
    expected.sort(key=lambda rid: (int(rid[1:]) // 3, rid), reverse=True)

    seen: list[str] = []
    page = await store.list_summaries(RunQuery(limit=5))
    seen += [r.id for r in page.rows]
    newer = 0
    while page.next_cursor is not None:
        # runs started after the first page was read (newer than all) and one as old as
        # the oldest: they must not shift the pages still to come
        newer += 1
        await _new(store, f"new{newer:03d}", 500 + newer)
        await _new(store, f"tie{newer:03d}", 0)
        page = await store.list_summaries(RunQuery(limit=5, cursor=page.next_cursor))
        seen += [r.id for r in page.rows]
    # every run there at the start comes exactly once, in order (no gaps, no duplicates);
    # nothing newer than the first page slips in; an old run inserted meanwhile comes at
    # its place if the cursor had not passed it yet
    assert [rid for rid in seen if rid.startswith("r")] == expected
    assert len(seen) == len(set(seen))
    assert not [rid for rid in seen if rid.startswith("new")]
    assert any(rid.startswith("tie") for rid in seen)
    order = [(0 if rid.startswith("tie") else int(rid[1:]) // 3, rid) for rid in seen]
    assert order == sorted(order, reverse=True)
    assert newer >= 4
    # the first page, read again, starts with the newest insert
    first = await store.list_summaries(RunQuery(limit=2))
    assert [r.id for r in first.rows] == [f"new{newer:03d}", f"new{newer - 1:03d}"]


async def test_last_page_has_no_cursor_and_limit_zero_is_empty(store: SqlStore) -> None:
    for i in range(4):
        await _new(store, f"r{i}", i)
    page = await store.list_summaries(RunQuery(limit=4))
    assert [r.id for r in page.rows] == ["r3", "r2", "r1", "r0"] and page.next_cursor is None
    page = await store.list_summaries(RunQuery(limit=3))
    assert page.next_cursor is not None
    last = await store.list_summaries(RunQuery(limit=3, cursor=page.next_cursor))
    assert [r.id for r in last.rows] == ["r0"] and last.next_cursor is None
    assert (await store.list_summaries(RunQuery(limit=0))).rows == []


async def _finish(store: SqlStore, run_id: str, fin: Finalization) -> None:
    outcome = await store.finalize(run_id, fin)
    assert outcome.persisted, outcome


async def _fleet(store: SqlStore) -> dict[str, str]:
    """Runs across every filter's dimension; returns name -> id."""
    ids = {}
    ids["ok_cheap"] = await _new(store, "a01", 1, workflow="alpha", trigger="cli")
    await _finish(store, "a01", Kit.fin(RunStatus.COMPLETED, duration_ms=500, cost_total=0.01))
    ids["ok_slow_costly"] = await _new(store, "a02", 2, workflow="alpha", trigger="api")
    await _finish(store, "a02", Kit.fin(RunStatus.COMPLETED, duration_ms=90_000, cost_total=2.5))
    ids["failed"] = await _new(store, "b01", 3, workflow="beta", trigger="api")
    await _finish(
        store,
        "b01",
        Kit.fin(
            RunStatus.FAILED,
            duration_ms=4_000,
            error_message="boom",
            error_block_id="leaf",
            execution_data={
                "trace": {"name": "beta", "pad": "t" * 20_000},
                "error_path": ["child", "leaf"],
            },
        ),
    )
    ids["deadline"] = await _new(store, "b02", 4, workflow="beta", trigger="cli")
    await _finish(
        store, "b02", Kit.fin(RunStatus.FAILED, duration_ms=1_000, error_message="deadline")
    )
    ids["paused"] = await _new(store, "c01", 5, workflow="gamma", trigger="cli")
    await _finish(
        store,
        "c01",
        Kit.fin(
            RunStatus.PAUSED,
            duration_ms=700,
            pause_state={"waiting": ["ask"], "message": "ok?", "state": {"x": "s" * 9000}},
        ),
    )
    ids["queued"] = await _new(store, "c02", 6, workflow="gamma", status=RunStatus.QUEUED)
    ids["running"] = await _new(store, "c03", 7, workflow="alpha", trigger="python")
    ids["cancelled"] = await _new(store, "c04", 8, workflow="alpha")
    await _finish(
        store,
        "c04",
        Kit.fin(
            RunStatus.CANCELLED,
            path=FinalizationPath.CANCELLED,
            finalized_by=FinalizedBy.ENGINE,
            duration_ms=100,
        ),
    )
    return ids


async def _ids(store: SqlStore, **query: Any) -> list[str]:
    """Every page of ``query`` (3 rows a page, so filters meet the cursor too)."""
    return await _all_pages(store, RunQuery(limit=3, **query))


async def test_every_filter(store: SqlStore) -> None:
    f = await _fleet(store)
    everything = ["c04", "c03", "c02", "c01", "b02", "b01", "a02", "a01"]
    assert await _ids(store) == everything
    assert await _ids(store, statuses=(RunStatus.COMPLETED,)) == ["a02", "a01"]
    several = (RunStatus.FAILED, RunStatus.QUEUED, RunStatus.COMPLETED, RunStatus.FAILED)
    assert await _ids(store, statuses=several) == ["c02", "b02", "b01", "a02", "a01"]
    assert await _ids(store, statuses=(RunStatus.CRASHED,)) == []
    assert await _ids(store, workflow_name="alpha") == ["c04", "c03", "a02", "a01"]
    assert await _ids(store, trigger="api") == ["b01", "a02"]
    assert await _ids(store, started_since=at(3)) == everything[:6]  # inclusive
    assert await _ids(store, started_until=at(3)) == ["a02", "a01"]  # exclusive
    assert await _ids(store, started_since=at(2), started_until=at(5)) == ["b02", "b01", "a02"]
    assert await _ids(store, min_duration_ms=1_000) == ["b02", "b01", "a02"]
    assert await _ids(store, min_cost=1.0) == ["a02"]
    assert await _ids(store, min_cost=0.01) == ["a02", "a01"]
    assert await _ids(store, has_error=True) == ["b02", "b01"]
    assert await _ids(store, has_error=False) == ["c04", "c03", "c02", "c01", "a02", "a01"]
    combined = await _ids(
        store,
        statuses=(RunStatus.COMPLETED, RunStatus.RUNNING, RunStatus.CANCELLED),
        workflow_name="alpha",
        trigger="cli",
        has_error=False,
    )
    assert combined == ["c04", "a01"]
    assert f["failed"] == "b01"


async def test_lean_rows_summarize_as_the_whole_row(store: SqlStore) -> None:
    await _fleet(store)
    page = await store.list_summaries(RunQuery(limit=100))
    assert len(page.rows) == 8
    for lean in page.rows:
        full = await store.get_run(lean.id)
        # the heavy columns are not read
        assert lean.input is None and lean.output is None and lean.notes == []
        assert lean.execution_data in (None, {"error_path": ["child", "leaf"]})
        assert lean.pause_state in (None, {"waiting": ["ask"], "message": "ok?"})
        # and the summary cannot tell
        for when in (NOW, at(7.5)):
            assert run_summary(lean, now=when, lease_seconds=60) == run_summary(
                full, now=when, lease_seconds=60
            ), lean.id
    failed = next(r for r in page.rows if r.id == "b01")
    assert run_summary(failed, now=NOW, lease_seconds=60)["error"] == {
        "message": "boom",
        "block_id": "leaf",
        "path": ["child", "leaf"],
    }


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "",
        "%%%",
        base64.urlsafe_b64encode(b"hello").decode(),
        base64.urlsafe_b64encode(json.dumps([1, "yesterday", "r1"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([2, at(0).isoformat(), "r1"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, "2026-01-01T00:00:00", "r1"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"a": 1}).encode()).decode(),
        encode_cursor(at(0), "r1")[:-3],
        "é",
    ],
)
async def test_bad_cursor(store: SqlStore, cursor: str) -> None:
    await _new(store, "r1", 0)
    with pytest.raises(BadCursorError) as info:
        await store.list_summaries(RunQuery(cursor=cursor))
    assert info.value.code == "bad_cursor"
    assert isinstance(info.value, InputError)
    assert "bad cursor" in str(info.value)


async def test_cursor_is_url_safe_and_round_trips(store: SqlStore) -> None:
    for i in range(3):
        await _new(store, f"r{i}", i + 0.123456)
    page = await store.list_summaries(RunQuery(limit=1))
    assert page.next_cursor is not None
    assert all(c.isalnum() or c in "-_" for c in page.next_cursor)
    second = await store.list_summaries(RunQuery(limit=1, cursor=page.next_cursor))
    assert [r.id for r in second.rows] == ["r1"]
    assert timedelta(0) < page.rows[0].started_at - second.rows[0].started_at


async def test_the_list_never_reads_the_trace(store: SqlStore) -> None:
    """A failed run's error path comes from its own column (0009), not from the trace: on
    SQLite, a trace that is not even JSON any more does not disturb the list."""
    await _fleet(store)
    if store.backend == "sqlite":
        await store._fetch(
            "UPDATE workflow_execution_logs SET execution_data = '{not json' WHERE id = 'b01'", {}
        )
    page = await store.list_summaries(RunQuery(has_error=True))
    failed = next(r for r in page.rows if r.id == "b01")
    assert failed.execution_data == {"error_path": ["child", "leaf"]}
    sql, _ = store.summary_sql(RunQuery(has_error=True))
    heavy = re.findall(r"\b(execution_data|input|output|notes)\b", sql)
    aliases = re.findall(r"\bAS (execution_data|input|output|notes)\b", sql)
    assert sorted(heavy) == sorted(aliases)  # named only as the lean row's placeholders


async def test_migration_0009_fills_the_error_path_of_old_rows(store: SqlStore) -> None:
    await _fleet(store)
    await store._fetch("UPDATE workflow_execution_logs SET error_path = NULL", {})
    (fill,) = [
        statement
        for migration in discover(store.backend)
        if migration.version == "0009_error_path"
        for statement in _statements(migration.sql)
        if statement.lstrip().upper().startswith("UPDATE")
    ]
    await store._fetch(fill, {})
    rows = await store._fetch(
        "SELECT id, error_path FROM workflow_execution_logs WHERE error_path IS NOT NULL", {}
    )
    assert [(r["id"], _json(r["error_path"])) for r in rows] == [("b01", ["child", "leaf"])]


def _statements(script: str) -> list[str]:
    body = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("--"))
    return [part.strip() for part in body.split(";") if part.strip()]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
