"""The durable record's cost: time and database round trips per block, against the floor.

For each backend (SQLite, PostgreSQL) and each workload (the N-block chain and the
N-branch parallel of ``bench/engine.py``, with the ASYNC trivial function so that the
worker-thread hop of sync functions does not dominate), in a fresh child process each:

  record off / on   microseconds per block; off and on runs are interleaved in the same
                    process so that their difference is not process-to-process noise
  round trips       ``store.round_trips`` delta over one run; split into the fixed
                    per-run queries (put_snapshot, create_run, finalize) and the rest
                    (progress markers, cancel polls) per block
  floor             the same per-block SQL issued raw: the progress writes of the warm-up
                    run (statements, parameters and step rows, captured from the store)
                    replayed back to back on a fresh run row, with plain ``sqlite3`` on
                    this thread and the store's PRAGMAs, or psycopg's blocking connection
                    (autocommit, prepared); divided by the blocks. For reference, one raw
                    single-row UPDATE round trip (aiosqlite; psycopg async) and SELECT 1
  overhead          (record on - record off) / blocks, printed next to 1.5 x floor

Targets (printed as MET or MISSED, never asserted): chain <= 1 round trip per block;
parallel <= 0.1 round trips per block; overhead per block <= 1.5 x floor; the engine's own
cost (record off) <= 50 us per block in the chain.

    .venv/bin/python bench/markers.py [--blocks 1000] [--repeat 3]
        [--backends sqlite,postgres] [--require-postgres] [--json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import _harness as h

SCRIPT = Path(__file__).resolve()
WORKLOADS = ("chain", "parallel")
FN = "async"
RT_TARGET = {"chain": 1.0, "parallel": 0.1}
FLOOR_FACTOR = 1.5
CHAIN_TARGET_US = 50.0  # issue 9 (was 100)
FLOOR_SQL = "UPDATE workflow_execution_logs SET updated_at = {p} WHERE id = {p}"


# -- child scenarios -------------------------------------------------------------------


async def _floor(spec: dict[str, Any]) -> dict[str, Any]:
    """Time single raw UPDATE round trips on a row of this database."""
    from datetime import UTC, datetime

    backend, url, trips = spec["backend"], spec["url"], int(spec["floor_trips"])
    store = await h.open_bench_store(url)
    try:
        run_id = await _fresh_run(store)
    finally:
        await store.close()
    now = datetime.now(UTC)
    warmup = min(200, trips)
    samples: list[float] = []
    reads: list[float] = []  # SELECT 1: the driver's round trip without a commit
    if backend == "sqlite":
        import sqlite3

        import aiosqlite

        from flowtrail.store import sqlite as sqlite_store

        # The store's own connection settings, so the floor is what the store could reach.
        pragmas = getattr(sqlite_store, "_PRAGMAS", ("PRAGMA journal_mode=WAL",))
        db = await aiosqlite.connect(url[len("sqlite:///") :], isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            for pragma in pragmas:
                await db.execute_fetchall(pragma)
            sql = FLOOR_SQL.format(p="?")
            params = (now.isoformat(timespec="microseconds"), run_id)
            for i in range(warmup + trips):
                t0 = time.perf_counter_ns()
                await db.execute_fetchall(sql, params)
                if i >= warmup:
                    samples.append((time.perf_counter_ns() - t0) / 1000)
            for i in range(warmup + trips):
                t0 = time.perf_counter_ns()
                await db.execute_fetchall("SELECT 1")
                if i >= warmup:
                    reads.append((time.perf_counter_ns() - t0) / 1000)
        finally:
            await db.close()
        driver = f"aiosqlite {aiosqlite.__version__}, pragmas: {'; '.join(pragmas)}"
    else:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            sql = FLOOR_SQL.format(p="%s")
            for i in range(warmup + trips):
                t0 = time.perf_counter_ns()
                await conn.execute(sql, (now, run_id), prepare=True)
                if i >= warmup:
                    samples.append((time.perf_counter_ns() - t0) / 1000)
            for i in range(warmup + trips):
                t0 = time.perf_counter_ns()
                await conn.execute("SELECT 1", prepare=True)
                if i >= warmup:
                    reads.append((time.perf_counter_ns() - t0) / 1000)
        finally:
            await conn.close()
        driver = f"psycopg {psycopg.__version__} async, autocommit, prepared"
    samples.sort()
    return {
        "median_us": h.median(samples),
        "p10_us": samples[len(samples) // 10],
        "p90_us": samples[(len(samples) * 9) // 10],
        "mean_us": sum(samples) / len(samples),
        "select1_median_us": h.median(reads),
        "trips": trips,
        "driver": driver,
        "peak_rss_mb": h.peak_rss_mb(),
    }


# -- the floor: the store's own per-block SQL, replayed raw -----------------------------


def _capture(store: Any, backend: str) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Wrap this store instance so every progress write's statement, parameters and step
    rows are kept, exactly as the store issues them."""
    kept: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
    if backend == "sqlite":
        writer = store._writer

        def capturing_writer(name: str, params: Any, steps: Any) -> Any:
            if name == "write_progress":
                kept.append((store._queries[name], dict(params), [dict(s) for s in steps]))
            return writer(name, params, steps)

        store._writer = capturing_writer
    else:  # the async path, and the blocking one a block running alone takes
        fetch = store._fetch_with_steps
        execute = store._execute_progress

        async def capturing_fetch(name: str, params: Any, steps: Any) -> Any:
            if name == "write_progress":
                kept.append((store._queries[name], dict(params), [dict(s) for s in steps]))
            return await fetch(name, params, steps)

        def capturing_execute(conn: Any, sql: str, args: Any) -> Any:
            kept.append((sql, dict(args), None))  # args carry the steps as JSON already
            return execute(conn, sql, args)

        store._fetch_with_steps = capturing_fetch
        store._execute_progress = capturing_execute
    return kept


async def _fresh_run(store: Any) -> str:
    from datetime import UTC, datetime

    from flowtrail.status import RunStatus
    from flowtrail.store.records import NewRun

    run_id = f"bench-floor-{time.time_ns()}"
    await store.put_snapshot("bench-floor", "bench-floor", {"name": "bench-floor"})
    await store.create_run(
        NewRun(
            id=run_id,
            workflow_name="bench-floor",
            snapshot_hash="bench-floor",
            status=RunStatus.RUNNING,
            trigger="bench",
            started_at=datetime.now(UTC),
            input=None,
        )
    )
    return run_id


async def _replay_floor(
    store: Any, url: str, backend: str, kept: list[Any], n: int, repeat: int
) -> dict[str, Any]:
    """The floor: the progress writes one run made (the same statements, parameters and
    step rows), issued raw, back to back, on a fresh run row each time (so the steps are
    new rows, as in the run), on the cheapest driver path of the same durability: plain
    ``sqlite3`` on this thread with the store's PRAGMAs (synchronous=NORMAL); psycopg's
    blocking connection in autocommit with prepared statements (the statement itself
    commits with synchronous_commit off, as in the store). Microseconds per block."""
    import json

    samples: list[float] = []
    for _ in range(repeat):
        run_id = await _fresh_run(store)
        if backend == "sqlite":
            import sqlite3

            from flowtrail.store import sqlite as sqlite_store

            conn = sqlite3.connect(sqlite_store.sqlite_path(url), isolation_level=None)
            try:
                for pragma in sqlite_store._PRAGMAS:
                    conn.execute(pragma)
                upsert = store._queries["write_steps"]
                writes = [
                    (sql, {**params, "id": run_id, "epoch": None}, steps)
                    for sql, params, steps in kept
                ]
                began = time.perf_counter()
                for sql, params, steps in writes:
                    conn.execute("BEGIN IMMEDIATE")
                    epoch = conn.execute(sql, params).fetchall()[0][1]
                    conn.executemany(
                        upsert, [{**step, "run_id": run_id, "epoch": epoch} for step in steps]
                    )
                    conn.execute("COMMIT")
                samples.append((time.perf_counter() - began) * 1e6 / n)
            finally:
                conn.close()
            driver = (
                f"sqlite3 (SQLite {sqlite3.sqlite_version}), {'; '.join(sqlite_store._PRAGMAS)}"
            )
        else:
            import psycopg

            writes = [
                (
                    sql,
                    {
                        **params,
                        "id": run_id,
                        "epoch": None,
                        **(
                            {}
                            if steps is None
                            else {
                                "steps": json.dumps(
                                    steps, ensure_ascii=False, separators=(",", ":")
                                )
                            }
                        ),
                    },
                )
                for sql, params, steps in kept
            ]
            with psycopg.connect(url, autocommit=True) as conn:
                began = time.perf_counter()
                for sql, params in writes:
                    conn.execute(sql, params, prepare=True).fetchall()
                samples.append((time.perf_counter() - began) * 1e6 / n)
            driver = f"psycopg {psycopg.__version__}, blocking, autocommit, prepared"
    return {
        "us_per_block": h.median(samples),
        "samples_us": samples,
        "writes": len(kept),
        "driver": driver,
    }


async def _runs(spec: dict[str, Any]) -> dict[str, Any]:
    """``off``: record-off runs only (a clean peak RSS for the engine alone).
    ``on``: record-off and record-on runs interleaved, paired for the overhead."""
    workload, n, repeat = spec["workload"], int(spec["blocks"]), int(spec["repeat"])
    workflow = h.compile_workload(workload, n, FN)
    off_runner = h.make_runner(None, None, int(spec["max_concurrency"]))
    store = await h.open_bench_store(spec["url"]) if spec["mode"] == "on" else None
    try:
        on_runner = h.make_runner(store, spec.get("url"), int(spec["max_concurrency"]))
        setup_rss = h.peak_rss_mb()
        await h.run_once(off_runner, workflow, workload, n)  # warm-up
        off: list[h.RunSample] = []
        on: list[h.RunSample] = []
        kept: list[Any] = []
        if store is not None:
            kept = _capture(store, spec["backend"])
            await h.run_once(on_runner, workflow, workload, n)  # warm-up, writes kept
            store.__dict__.pop("_writer", None)
            store.__dict__.pop("_fetch_with_steps", None)
            store.__dict__.pop("_execute_progress", None)
        for _ in range(repeat):
            off.append(await h.run_once(off_runner, workflow, workload, n))
            if store is not None:
                on.append(await h.run_once(on_runner, workflow, workload, n))
        breakdown: list[dict[str, Any]] = []
        missing: list[str] = []
        if store is not None and spec.get("breakdown", True):
            # One more record-on run, instrumented (not part of the timings above).
            probe = h.Breakdown().install()
            instrumented = await h.run_once(on_runner, workflow, workload, n)
            breakdown, missing = probe.summary(n), probe.missing
            breakdown.insert(
                0,
                {
                    "what": "whole run (instrumented)",
                    "us_per_block": instrumented.seconds * 1e6 / n,
                    "calls": 1,
                    "us_per_call": instrumented.seconds * 1e6,
                },
            )
        floor = None
        if store is not None:
            floor = await _replay_floor(store, spec["url"], spec["backend"], kept, n, repeat)
    finally:
        if store is not None:
            await store.close()
    off_us = [s.seconds * 1e6 / n for s in off]
    result: dict[str, Any] = {
        "off_us_per_block": h.median(off_us),
        "off_samples_us": off_us,
        "setup_rss_mb": setup_rss,
        "peak_rss_mb": h.peak_rss_mb(),
    }
    if on:
        on_us = [s.seconds * 1e6 / n for s in on]
        result["on_us_per_block"] = h.median(on_us)
        result["on_samples_us"] = on_us
        # (record on - record off) / blocks, from the medians of runs interleaved above.
        result["overhead_us_per_block"] = h.median(on_us) - h.median(off_us)
        result["round_trips"] = h.round_trip_summary(on, n)
        result["floor"] = floor
        result["breakdown"] = breakdown
        result["breakdown_missing"] = missing
    return result


async def scenario(spec: dict[str, Any]) -> dict[str, Any]:
    return await (_floor(spec) if spec["mode"] == "floor" else _runs(spec))


# -- parent ----------------------------------------------------------------------------


def run_all(args: Any) -> dict[str, Any]:
    backends = h.backends_from(args)
    results: dict[str, dict[str, Any]] = {}
    base = {
        "blocks": args.blocks,
        "repeat": args.repeat,
        "max_concurrency": args.max_concurrency,
        "floor_trips": args.floor_trips,
    }
    with h.databases(backends, args.pg_url, args.require_postgres) as dbs:
        h.note(f"markers bench: {args.blocks} blocks, median of {args.repeat}, {backends}")
        for backend in backends:
            spec = {**base, "mode": "floor", "backend": backend, "url": dbs.url(backend)}
            results[f"floor/{backend}"] = h.run_child(SCRIPT, spec, f"floor/{backend}")
        for workload in WORKLOADS:
            spec = {**base, "mode": "off", "workload": workload}
            results[f"{workload}/off"] = h.run_child(SCRIPT, spec, f"{workload}/off")
            for backend in backends:
                spec = {
                    **base,
                    "mode": "on",
                    "workload": workload,
                    "backend": backend,
                    "url": dbs.url(backend),
                }
                key = f"{workload}/{backend}"
                results[key] = h.run_child(SCRIPT, spec, key)
        notes = list(dbs.notes)
    return {
        "benchmark": "markers",
        "machine": h.machine(),
        "config": {
            "blocks": args.blocks,
            "repeat": args.repeat,
            "backends": backends,
            "function": f"{FN} ({h.FUNCTIONS[FN]})",
            "max_concurrency": args.max_concurrency,
            "floor_trips": args.floor_trips,
            "unit": "microseconds per function block (median); RSS in MiB",
        },
        "notes": notes,
        "scenarios": results,
        "targets": targets(results, backends),
    }


def _floor_of(results: dict[str, dict[str, Any]], workload: str, backend: str) -> float | None:
    floor = results.get(f"{workload}/{backend}", {}).get("floor") or {}
    value = floor.get("us_per_block")
    return None if value is None else float(value)


def targets(results: dict[str, dict[str, Any]], backends: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(text: str, value: float | None, limit: float | None, unit: str) -> None:
        met = None if value is None or limit is None else value <= limit
        found.append({"target": text, "value": value, "limit": limit, "unit": unit, "met": met})

    for backend in backends:
        for workload in WORKLOADS:
            rt = results.get(f"{workload}/{backend}", {}).get("round_trips") or {}
            add(
                f"{backend} {workload}: round trips per block <= {RT_TARGET[workload]:g}",
                rt.get("per_block"),
                RT_TARGET[workload],
                "round trips",
            )
    for backend in backends:
        for workload in WORKLOADS:
            floor = _floor_of(results, workload, backend)
            add(
                f"{backend} {workload}: durable overhead per block <= {FLOOR_FACTOR:g} x floor",
                results.get(f"{workload}/{backend}", {}).get("overhead_us_per_block"),
                None if floor is None else FLOOR_FACTOR * floor,
                "us",
            )
    add(
        f"engine's own cost, chain, record off <= {CHAIN_TARGET_US:g} us per block",
        results.get("chain/off", {}).get("off_us_per_block"),
        CHAIN_TARGET_US,
        "us",
    )
    return found


def render(report: dict[str, Any]) -> str:
    cfg, res = report["config"], report["scenarios"]
    backends: list[str] = cfg["backends"]
    out = [
        f"flowtrail durable-record benchmark: {cfg['blocks']} blocks, {cfg['function']} "
        f"function, median of {cfg['repeat']} runs, {report['machine']['cpus']} cores",
        *report["notes"],
        "",
        f"For reference, one raw UPDATE round trip, median of {cfg['floor_trips']} "
        "(microseconds; the floor of the targets is the replay below):",
    ]
    rows = []
    for b in backends:
        f = res.get(f"floor/{b}", {})
        med = f.get("median_us")
        rows.append(
            [
                b,
                h.fmt(med),
                h.fmt(f.get("p10_us")),
                h.fmt(f.get("p90_us")),
                h.fmt(None if med is None else FLOOR_FACTOR * med),
                h.fmt(f.get("select1_median_us")),
            ]
        )
    headers = ["backend", "median", "p10", "p90", "1.5 x UPDATE", "SELECT 1 (no commit)"]
    out.append(h.table(headers, rows))
    out += [f"  {b}: {res.get(f'floor/{b}', {}).get('driver', 'n/a')}" for b in backends]
    out += [
        "",
        "Per block (microseconds, round trips); peak RSS in MiB. The floor is the run's own",
        "progress writes (statements, parameters, step rows) replayed raw, back to back, on",
        "a fresh run row, with the cheapest driver path of the same durability:",
    ]
    for workload in WORKLOADS:
        for b in backends:
            fl = res.get(f"{workload}/{b}", {}).get("floor") or {}
            if fl:
                out.append(f"  {workload}/{b}: {fl.get('writes')} writes, {fl.get('driver')}")
    headers = [
        "workload",
        "backend",
        "off us",
        "on us",
        "overhead us",
        "floor us",
        "1.5xfloor us",
        "RT/block",
        "fixed RT/run",
        "RSS on",
        "RSS off",
    ]
    rows = []
    for workload in WORKLOADS:
        off_alone = res.get(f"{workload}/off", {})
        for b in backends:
            r = res.get(f"{workload}/{b}", {})
            rt = r.get("round_trips") or {}
            floor = _floor_of(res, workload, b)
            rows.append(
                [
                    workload,
                    b,
                    h.fmt(r.get("off_us_per_block")),
                    h.fmt(r.get("on_us_per_block")),
                    h.fmt(r.get("overhead_us_per_block")),
                    h.fmt(floor),
                    h.fmt(None if floor is None else FLOOR_FACTOR * floor),
                    h.fmt(rt.get("per_block"), 3),
                    h.fmt(rt.get("fixed_per_run"), 0),
                    h.fmt(r.get("peak_rss_mb")),
                    h.fmt(off_alone.get("peak_rss_mb")),
                ]
            )
    out.append(h.table(headers, rows))
    out += [
        "",
        "Round trips per run by query (median), and milliseconds spent in them:",
    ]
    rows = []
    for workload in WORKLOADS:
        for b in backends:
            rt = res.get(f"{workload}/{b}", {}).get("round_trips") or {}
            for q, count in (rt.get("by_query") or {}).items():
                ms = (rt.get("ms_in_query") or {}).get(q)
                kind = "fixed" if q in h.FIXED_QUERIES else "per block"
                rows.append([workload, b, q, kind, h.fmt(count, 0), h.fmt(ms, 1)])
    out.append(h.table(["workload", "backend", "query", "kind", "round trips", "ms"], rows))
    out += [
        "",
        "Where the record-on time goes (one extra instrumented run; wall microseconds per",
        "block; indented rows are inside the row above; blocks run concurrently in the",
        "parallel, so there its per-call waits overlap and do not add up):",
    ]
    rows = []
    for workload in WORKLOADS:
        for b in backends:
            for item in res.get(f"{workload}/{b}", {}).get("breakdown") or []:
                rows.append(
                    [
                        workload,
                        b,
                        item["what"],
                        h.fmt(item["us_per_block"]),
                        h.fmt(item["calls"]),
                        h.fmt(item["us_per_call"]),
                    ]
                )
    out.append(h.table(["workload", "backend", "what", "us/block", "calls", "us/call"], rows))
    out += ["", "Targets:"]
    for t in report["targets"]:
        limit = "n/a" if t["limit"] is None else h.fmt(t["limit"], 3 if t["limit"] < 1 else 1)
        value = h.fmt(t["value"], 3 if t["unit"] == "round trips" else 1)
        out.append(f"  [{h.verdict(t['met']):>6}] {t['target']}: {value} (limit {limit})")
    out += h.failures(res)
    return "\n".join(out)


def main() -> int:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--floor-trips", type=int, default=2000, help="raw UPDATEs for the floor")
    args = p.parse_args()
    return h.run_main(args, scenario, run_all, render)


if __name__ == "__main__":
    sys.exit(main())
