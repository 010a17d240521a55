"""The run list reads its pages from indexes: the plans, on both backends, over enough
rows that a planner with statistics would rather not (20,000 runs, ANALYZEd).

SQLite: ``EXPLAIN QUERY PLAN`` names the index each page scans, and never a temporary
B-tree for the ORDER BY (which would mean reading every matching row to sort them).
PostgreSQL: ``EXPLAIN`` shows an index scan on the list's indexes and no sequential scan
of the run table. ``docs/explanation/run-list.md`` shows these plans."""

from __future__ import annotations

from datetime import datetime

import pytest

from flowtrail.status import RunStatus
from flowtrail.store import RunQuery, SqlStore
from flowtrail.store.cursor import encode_cursor

ROWS = 20_000

_FILL = {
    "sqlite": """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :rows - 1)
INSERT INTO workflow_execution_logs (
    id, workflow_name, snapshot_hash, status, "trigger", started_at, duration_ms,
    cost_total, error_message, finalization_path)
SELECT printf('run%06d', i), 'wf' || (i % 20), 'plan-hash',
       CASE WHEN i % 100 = 0 THEN 'failed' WHEN i % 50 = 1 THEN 'running'
            ELSE 'completed' END,
       CASE WHEN i % 3 = 0 THEN 'api' ELSE 'cli' END,
       strftime('%Y-%m-%dT%H:%M:%f', '2026-01-01', '+' || i || ' seconds') || '000+00:00',
       i % 5000, (i % 1000) / 100.0,
       CASE WHEN i % 100 = 0 THEN 'boom' END,
       CASE WHEN i % 100 = 0 THEN 'force_failed' WHEN i % 50 = 1 THEN NULL
            ELSE 'completed' END
FROM n
""",
    "postgres": """
INSERT INTO workflow_execution_logs (
    id, workflow_name, snapshot_hash, status, "trigger", started_at, duration_ms,
    cost_total, error_message, finalization_path)
SELECT 'run' || lpad(i::text, 6, '0'), 'wf' || (i %% 20), 'plan-hash',
       CASE WHEN i %% 100 = 0 THEN 'failed' WHEN i %% 50 = 1 THEN 'running'
            ELSE 'completed' END,
       CASE WHEN i %% 3 = 0 THEN 'api' ELSE 'cli' END,
       timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i),
       i %% 5000, (i %% 1000) / 100.0,
       CASE WHEN i %% 100 = 0 THEN 'boom' END,
       CASE WHEN i %% 100 = 0 THEN 'force_failed' WHEN i %% 50 = 1 THEN NULL
            ELSE 'completed' END
FROM generate_series(0, %(rows)s::integer - 1) AS i
""",
}


async def fill(store: SqlStore, rows: int = ROWS) -> None:
    await store.put_snapshot("plan-hash", "wf", {"name": "wf"})
    await store._fetch(_FILL[store.backend], {"rows": rows})
    await store._fetch("ANALYZE", {})


async def plan_of(store: SqlStore, query: RunQuery) -> str:
    """The plan of the statement ``list_summaries`` runs for ``query``, as text."""
    sql, params = store.summary_sql(query)
    if store.backend == "sqlite":
        rows = await store._fetch("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row["detail"]) for row in rows)
    rows = await store._fetch("EXPLAIN (COSTS OFF) " + sql, params)
    return "\n".join(str(row["QUERY PLAN"]) for row in rows)


MIDDLE = "2026-01-01T02:46:40+00:00"  # started_at of the 10,000th run


def _deep() -> str:
    return encode_cursor(datetime.fromisoformat(MIDDLE), "run010000")


# query name -> (query, the index its plan must use)
QUERIES: dict[str, tuple[RunQuery, str]] = {
    "first page": (RunQuery(), "workflow_execution_logs_list_idx"),
    "deep page (cursor)": (RunQuery(cursor=_deep()), "workflow_execution_logs_list_idx"),
    "one status": (
        RunQuery(statuses=(RunStatus.FAILED,)),
        "workflow_execution_logs_status_list_idx",
    ),
    "several statuses, deep": (
        RunQuery(statuses=(RunStatus.FAILED, RunStatus.RUNNING), cursor=_deep()),
        "workflow_execution_logs_status_list_idx",
    ),
    "workflow": (RunQuery(workflow_name="wf7"), "workflow_execution_logs_workflow_list_idx"),
    "has error": (RunQuery(has_error=True), "workflow_execution_logs_error_list_idx"),
    "started since/until": (
        RunQuery(
            started_since=datetime.fromisoformat("2026-01-01T01:00:00+00:00"),
            started_until=datetime.fromisoformat(MIDDLE),
        ),
        "workflow_execution_logs_list_idx",
    ),
    "trigger, min duration, min cost": (
        RunQuery(trigger="api", min_duration_ms=100, min_cost=1.0),
        "workflow_execution_logs_list_idx",
    ),
}


@pytest.fixture
async def filled(store: SqlStore) -> SqlStore:
    await fill(store)
    return store


async def test_every_list_query_reads_an_index_in_order(filled: SqlStore) -> None:
    for name, (query, index) in QUERIES.items():
        plan = await plan_of(filled, query)
        lines = plan.splitlines()
        assert index in plan, f"{name}: {plan}"
        branches = max(1, len(query.statuses))
        assert plan.count(index) == branches, f"{name}: {plan}"
        if filled.backend == "sqlite":
            # never a scan of the table itself, never a sort of what it read: the only
            # sort allowed is a status branch's (at most a page of rows) before the merge
            assert not [ln for ln in lines if "workflow_execution_logs" in ln and "INDEX" not in ln]
            sorts = [i for i, ln in enumerate(lines) if "TEMP B-TREE" in ln]
            assert all(lines[i - 1].startswith("SCAN s") for i in sorts), f"{name}: {plan}"
            assert len(sorts) in (0, branches if branches > 1 else 0), f"{name}: {plan}"
        else:
            assert "Seq Scan" not in plan, f"{name}: {plan}"
            assert "Sort" not in plan.replace("Sort Key", ""), f"{name}: {plan}"
            assert lines[0].startswith("Limit"), f"{name}: {plan}"


async def test_the_detail_reads_by_primary_key(filled: SqlStore) -> None:
    if filled.backend == "sqlite":
        rows = await filled._fetch(
            "EXPLAIN QUERY PLAN " + filled._queries["get_run"], {"id": "run000001"}
        )
        plan = "\n".join(str(row["detail"]) for row in rows)
        assert "USING INDEX sqlite_autoindex_workflow_execution_logs_1 (id=?)" in plan, plan
    else:
        rows = await filled._fetch(
            "EXPLAIN (COSTS OFF) " + filled._queries["get_run"], {"id": "run000001"}
        )
        plan = "\n".join(str(row["QUERY PLAN"]) for row in rows)
        assert "Index Scan using workflow_execution_logs_pkey" in plan, plan
