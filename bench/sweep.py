"""One sweep pass over a large run table, against the floor of one database round trip.

For each backend (SQLite, PostgreSQL), in a fresh child process: a database holding
--runs terminal runs (default 100,000; inserted in bulk, then ANALYZE) plus a few live
ones (running with a live lease, queued, paused), and then:

  floor         one ``SELECT 1`` round trip on the store's own connection (median of 200)
  scan          ``Store.sweep_scan``: the one read of a pass (three partial-index scans)
  idle pass     ``Sweeper.sweep_once()`` with nothing to end: lock, scan, unlock
  reap          ``Sweeper.reap_here()``, what every CLI command does on opening the database
  acting pass   a pass that ends --ending runs whose lease expired (a compare-and-set and
                its note per run), median of --repeat passes, and the cost per run ended
  plan          the scan's query plan (EXPLAIN / EXPLAIN QUERY PLAN): index scans only

On PostgreSQL the database also holds Procrastinate's tables with one finished job per
finished run (as a queue that keeps its jobs would), so every pass also reconciles the
queue (its two reads are in the idle pass, and their plans are printed).

Target (printed as MET or MISSED, never asserted): an idle pass over 100,000 runs on
PostgreSQL under 50 ms.

    .venv/bin/python bench/sweep.py [--runs 100000] [--ending 20] [--repeat 5]
        [--backends sqlite,postgres] [--require-postgres] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import _harness as h

SCRIPT = Path(__file__).resolve()
IDLE_TARGET_MS = 50.0
TIMED = 50  # idle passes, scans and reaps timed per figure (the median is reported)

BULK = {
    "postgres": (
        "INSERT INTO workflow_execution_logs (id, workflow_name, snapshot_hash, status, "
        '"trigger", started_at, ended_at, duration_ms, updated_at, finalization_path, '
        "finalized_by, last_started_block_id, last_started_block_name, "
        "last_started_block_type, last_started_at, lease_epoch, lease_expires_at) "
        "SELECT 'done-' || g, 'bench', 'bench', "
        "(ARRAY['completed', 'failed', 'cancelled', 'crashed'])[1 + g %% 4], 'bench', "
        "now() - interval '1 day', now() - interval '1 day', 1000, now(), "
        "(ARRAY['completed', 'force_failed', 'cancelled', 'crashed'])[1 + g %% 4], 'engine', "
        "'b', 'b', 'function', now() - interval '1 day', 1, now() - interval '1 day' "
        "FROM generate_series(1, %(n)s::integer) AS g"
    ),
    "sqlite": (
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n) "
        "INSERT INTO workflow_execution_logs (id, workflow_name, snapshot_hash, status, "
        '"trigger", started_at, ended_at, duration_ms, updated_at, finalization_path, '
        "finalized_by, last_started_block_id, last_started_block_name, "
        "last_started_block_type, last_started_at, lease_epoch, lease_expires_at) "
        "SELECT 'done-' || n, 'bench', 'bench', "
        "CASE n % 4 WHEN 0 THEN 'completed' WHEN 1 THEN 'failed' WHEN 2 THEN 'cancelled' "
        "ELSE 'crashed' END, 'bench', :old, :old, 1000, :old, "
        "CASE n % 4 WHEN 0 THEN 'completed' WHEN 1 THEN 'force_failed' "
        "WHEN 2 THEN 'cancelled' ELSE 'crashed' END, 'engine', "
        "'b', 'b', 'function', :old, 1, :old FROM g"
    ),
}


# -- child scenario --------------------------------------------------------------------


async def _live_runs(store: Any, count: int, status: Any, lease: float | None) -> list[str]:
    from datetime import UTC, datetime, timedelta

    from flowtrail.store.records import NewRun, Worker

    ids = []
    now = datetime.now(UTC)
    for i in range(count):
        run_id = f"live-{status.value}-{time.time_ns()}-{i}"
        await store.create_run(
            NewRun(
                id=run_id,
                workflow_name="bench",
                snapshot_hash="bench",
                status=status,
                trigger="bench",
                started_at=now,
                input=None,
                worker=Worker("bench-host", 1, "bench-worker") if lease else None,
                lease_seconds=lease,
                expires_at=now + timedelta(hours=1) if status.value == "queued" else None,
            )
        )
        ids.append(run_id)
    return ids


async def _fill_queue(store: Any) -> None:
    """Procrastinate's schema (unless ``db upgrade`` applied it), and a finished job
    linked to every finished run the bench added."""
    present = "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
    if not (await store._fetch(present, {}))[0]["present"]:
        from procrastinate.schema import SchemaManager

        await store._fetch(SchemaManager.get_schema(), {})
    await store._fetch(
        "WITH jobs AS (INSERT INTO procrastinate_jobs (queue_name, task_name, status, args) "
        "SELECT 'flowtrail', 'flowtrail.run', 'succeeded', jsonb_build_object('run_id', id) "
        "FROM workflow_execution_logs WHERE id LIKE 'done-%%' AND job_id IS NULL "
        "RETURNING id, args->>'run_id' AS run_id) "
        "UPDATE workflow_execution_logs AS r SET job_id = jobs.id FROM jobs "
        "WHERE r.id = jobs.run_id",
        {"n": 0},
    )
    await store._fetch("ANALYZE", {})


async def _queue_plans(store: Any, now: Any) -> list[str]:
    from flowtrail.status import TERMINAL_STATUSES
    from flowtrail.store.postgres import JOB_ENDED
    from flowtrail.store.queries import load_queries

    params = {
        "now": now,
        "stalled_before": now,
        "ended_before": now,
        "limit": 500,
        "job_ended": list(JOB_ENDED),
        "terminal": [s.value for s in TERMINAL_STATUSES],
    }
    lines: list[str] = []
    for name in ("reconcile_runs", "reconcile_jobs"):
        lines.append(f"-- {name}")
        sql = "EXPLAIN " + load_queries("postgres")[name]
        lines += [str(r["QUERY PLAN"]) for r in await store._fetch(sql, params)]
    return lines


async def _timed(make: Any, times: int) -> list[float]:
    samples = []
    for _ in range(times):
        t0 = time.perf_counter_ns()
        await make()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


async def scenario(spec: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    from flowtrail.liveness.sweeper import Sweeper
    from flowtrail.settings import Settings
    from flowtrail.status import RunStatus
    from flowtrail.store import open_store
    from flowtrail.store.queries import load_queries

    backend, n = spec["backend"], int(spec["runs"])
    store = open_store(spec["url"])
    await store.open()
    try:
        await store.migrate()
        await store.put_snapshot("bench", "bench", {"name": "bench"})
        t0 = time.perf_counter()
        old = store._ts(datetime(2026, 1, 1, tzinfo=UTC))
        await store._fetch(BULK[backend], {"n": n, "old": old})
        await store._fetch("ANALYZE", {})
        if backend == "postgres":
            await _fill_queue(store)
        fill_s = time.perf_counter() - t0
        await _live_runs(store, 5, RunStatus.RUNNING, 3600.0)
        await _live_runs(store, 5, RunStatus.QUEUED, None)
        await _live_runs(store, 2, RunStatus.PAUSED, None)

        settings = Settings(database_url=spec["url"], lease_seconds=3600)
        sweeper = Sweeper(store, settings)
        now = datetime.now(UTC)
        plan_sql = ("EXPLAIN " if backend == "postgres" else "EXPLAIN QUERY PLAN ") + (
            load_queries(backend)["sweep_scan"]
        )
        params = {"now": store._ts(now), "cancel_before": store._ts(now), "limit": 500}
        plan = [
            str(r.get("QUERY PLAN") or r.get("detail"))
            for r in await store._fetch(plan_sql, params)
        ]
        if backend == "postgres":
            plan += await _queue_plans(store, now)
        floor = await _timed(lambda: store._fetch("SELECT 1", {}), 200)
        scan = await _timed(lambda: store.sweep_scan(now, now, 500), TIMED)
        idle = await _timed(sweeper.sweep_once, TIMED)
        reap = await _timed(sweeper.reap_here, TIMED)

        ending, acting = int(spec["ending"]), []
        for _ in range(int(spec["repeat"])):
            await _live_runs(store, ending, RunStatus.RUNNING, 0.001)
            await asyncio.sleep(0.01)
            t0 = time.perf_counter_ns()
            report = await sweeper.sweep_once()
            acting.append((time.perf_counter_ns() - t0) / 1e6)
            if len(report.actions) != ending:
                raise RuntimeError(f"the pass ended {len(report.actions)} of {ending} runs")
        total = (await store._fetch("SELECT count(*) AS n FROM workflow_execution_logs", {}))[0]
    finally:
        await store.close()
    acting_ms = h.median(acting)
    idle_ms = h.median(idle)
    return {
        "rows": int(total["n"]),
        "fill_s": fill_s,
        "floor_ms": h.median(floor),
        "scan_ms": h.median(scan),
        "idle_pass_ms": idle_ms,
        "idle_pass_p90_ms": sorted(idle)[(len(idle) * 9) // 10],
        "reap_ms": h.median(reap),
        "acting_pass_ms": acting_ms,
        "ending": ending,
        "per_run_ended_ms": (acting_ms - idle_ms) / ending if ending else None,
        "plan": plan,
        # The big tables are only read through indexes (Procrastinate's worker table, a
        # row per worker, may be read whole).
        "index_scans_only": not any(
            big in line
            for line in plan
            for big in (
                "Seq Scan on workflow_execution_logs",
                "Seq Scan on procrastinate_jobs",
                "SCAN workflow_execution_logs",
            )
        ),
        "peak_rss_mb": h.peak_rss_mb(),
    }


def one_pass_ms(url: str, runs: int) -> float:
    """An idle sweep pass (ms, median) after adding ``runs`` finished runs to the database
    at ``url``: the figure ``bench/queued.py`` reports."""
    backend = "postgres" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
    spec = {"backend": backend, "url": url, "runs": runs, "ending": 0, "repeat": 0}
    return float(asyncio.run(scenario(spec))["idle_pass_ms"])


# -- parent ----------------------------------------------------------------------------


def run_all(args: Any) -> dict[str, Any]:
    backends = h.backends_from(args)
    results: dict[str, dict[str, Any]] = {}
    with h.databases(backends, args.pg_url, args.require_postgres) as dbs:
        h.note(f"sweep bench: {args.runs} terminal runs, {backends}")
        for backend in backends:
            spec = {
                "backend": backend,
                "url": dbs.url(backend),
                "runs": args.runs,
                "ending": args.ending,
                "repeat": args.repeat,
            }
            results[backend] = h.run_child(SCRIPT, spec, f"sweep/{backend}")
        notes = list(dbs.notes)
    pg = results.get("postgres", {})
    return {
        "benchmark": "sweep",
        "machine": h.machine(),
        "config": {
            "runs": args.runs,
            "ending": args.ending,
            "repeat": args.repeat,
            "backends": backends,
            "unit": "milliseconds (median); RSS in MiB",
        },
        "notes": notes,
        "scenarios": results,
        "targets": [
            {
                "target": f"postgres: idle sweep pass over {args.runs:,} runs < "
                f"{IDLE_TARGET_MS:g} ms",
                "value": pg.get("idle_pass_ms"),
                "limit": IDLE_TARGET_MS if "postgres" in backends else None,
                "unit": "ms",
                "met": None
                if pg.get("idle_pass_ms") is None
                else pg["idle_pass_ms"] < IDLE_TARGET_MS,
            },
            *[
                {
                    "target": f"{b}: the pass reads by index scans only",
                    "value": results.get(b, {}).get("index_scans_only"),
                    "limit": True,
                    "unit": "plan",
                    "met": results.get(b, {}).get("index_scans_only"),
                }
                for b in backends
            ],
        ],
    }


def render(report: dict[str, Any]) -> str:
    cfg, res = report["config"], report["scenarios"]
    out = [
        f"flowtrail sweep benchmark: {cfg['runs']:,} terminal runs + 12 live ones, "
        f"{report['machine']['cpus']} cores (milliseconds, median)",
        *report["notes"],
        "",
    ]
    headers = ["backend", "rows", "floor", "scan", "idle pass", "p90", "reap", "acting pass",
               "per run ended", "RSS"]  # fmt: skip
    rows = [
        [
            b,
            h.fmt(r.get("rows")),
            h.fmt(r.get("floor_ms"), 3),
            h.fmt(r.get("scan_ms"), 3),
            h.fmt(r.get("idle_pass_ms"), 3),
            h.fmt(r.get("idle_pass_p90_ms"), 3),
            h.fmt(r.get("reap_ms"), 3),
            h.fmt(r.get("acting_pass_ms"), 2),
            h.fmt(r.get("per_run_ended_ms"), 3),
            h.fmt(r.get("peak_rss_mb")),
        ]
        for b, r in res.items()
    ]
    out.append(h.table(headers, rows))
    out.append(f"(acting pass: ending {cfg['ending']} runs whose lease expired)")
    for b, r in res.items():
        out += ["", f"{b} plan of the scan:", *[f"  {line}" for line in r.get("plan", [])]]
    out += ["", "Targets:"]
    for t in report["targets"]:
        out.append(f"  [{h.verdict(t['met']):>6}] {t['target']}: {h.fmt(t['value'], 3)}")
    out += h.failures(res)
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100_000, help="terminal runs in the table")
    p.add_argument("--ending", type=int, default=20, help="runs ended by each acting pass")
    p.add_argument("--repeat", type=int, default=5, help="acting passes; the median is reported")
    p.add_argument("--backends", default=",".join(h.ALL_BACKENDS), help="sqlite,postgres")
    p.add_argument("--require-postgres", action="store_true", help="fail without PostgreSQL")
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL, help="server for the scratch database")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    return h.run_main(p.parse_args(), scenario, run_all, render)


if __name__ == "__main__":
    sys.exit(main())
