"""The read surfaces over a big run table: list and detail latency, store and HTTP.

For each backend (SQLite, PostgreSQL), in a fresh child process: a database holding
--runs runs (default 1,000,000; bulk-inserted straight into the real schema after
``migrate()``, then ANALYZE) with varied statuses (70 % completed, failed, cancelled,
crashed, and a few running, queued, paused), 20 workflows, 4 triggers, costs 0-10 USD,
durations, errors on the failed and crashed ones, one run every 2 s going back in time,
each with a small stored trace. Then, p50 and p95 over --samples calls each:

  floor        one raw ``SELECT`` of a row by primary key on the store's own connection
  first page   the runs list, newest first, 50 rows
  deep page    the page reached after following ``next_cursor`` --deep-pages times
  status, workflow, has_error, min_cost
               the first page of the list filtered so
  detail       one run's record and steps (a random run)

once through the store (``Store.list_summaries(RunQuery)`` and ``get_run`` +
``list_steps``; before ``list_summaries`` exists, the old ``list_runs`` with the filters
it has) and once through the real HTTP API (``flowtrail serve`` on 127.0.0.1, an httpx
client; ``GET /api/v1/runs`` and ``GET /api/v1/runs/{id}``), whose peak RSS is read from
/proc. Then, when the web UI and Playwright are there, the run page of a 10,000-span run
is loaded in Chromium (/usr/bin/chromium): time to the ``load`` event with the trace tree
visible (median of 3 after a cold one), and to network idle (Playwright's: 500 ms quiet).
Last, ``flowtrail.retention.prune`` of the older half of the table (dry run, then for
real) and the plan of its batch read.

Targets (printed as MET or MISSED, never asserted): every list and detail p95 < 50 ms; the
10,000-span run page loaded in < 1 s.

    .venv/bin/python bench/api.py [--runs 1000000] [--samples 100] [--deep-pages 200]
        [--backends sqlite,postgres] [--no-http] [--no-browser] [--require-postgres] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import _harness as h

SCRIPT = Path(__file__).resolve()
P95_TARGET_MS = 50.0
PAGE_TARGET_S = 1.0
PAGE = 50
CHUNK = 100_000  # rows per bulk INSERT (one transaction each)
SPANS = 10_000
# What each list figure asks for: (label, RunQuery fields, HTTP query string).
LISTS: list[tuple[str, dict[str, Any], str]] = [
    ("first page", {}, ""),
    ("status", {"statuses": ("failed",)}, "status=failed"),
    ("workflow", {"workflow_name": "wf-7"}, "workflow=wf-7"),
    ("has_error", {"has_error": True}, "has_error=true"),
    ("min_cost", {"min_cost": 9.9}, "min_cost=9.9"),
]

# One run every 2 s back from :base; statuses by g % 100 (70 completed, 12 failed,
# 6 cancelled, 4 crashed, 4 running, 2 queued, 2 paused).
_STATUS = (
    "CASE WHEN {m} < 70 THEN 'completed' WHEN {m} < 82 THEN 'failed' "
    "WHEN {m} < 88 THEN 'cancelled' WHEN {m} < 92 THEN 'crashed' WHEN {m} < 96 THEN 'running' "
    "WHEN {m} < 98 THEN 'queued' ELSE 'paused' END"
)
_PATH = (
    "CASE WHEN {m} = 5 THEN 'fallback_completed' WHEN {m} < 70 THEN 'completed' "
    "WHEN {m} < 82 THEN 'force_failed' WHEN {m} < 88 THEN 'cancelled' "
    "WHEN {m} < 92 THEN 'crashed' WHEN {m} < 96 THEN NULL WHEN {m} < 98 THEN NULL "
    "ELSE 'paused' END"
)
_COLUMNS = (
    'id, workflow_name, snapshot_hash, status, level, "trigger", started_at, ended_at, '
    "duration_ms, updated_at, finalization_path, finalized_by, error_message, "
    "error_block_id, cost_total, tokens_prompt, tokens_completion, tokens_total, models, "
    "last_started_block_id, last_started_block_name, last_started_block_type, "
    "last_started_at, last_completed_block_id, last_completed_block_name, "
    "last_completed_block_type, last_completed_at, last_completed_success, "
    "has_trace_spans, trace_span_count, input, output, execution_data, lease_epoch"
)
_TRACE = (
    '{"trace": {"name": "wf", "type": "workflow", "status": "success", "children": ['
    '{"name": "fetch", "type": "http", "status": "success", "output": {"status": 200}}, '
    '{"name": "summarise", "type": "agent", "status": "success", "tokens": 1234, '
    '"output": {"text": "a short answer of a few words"}}]}, "truncation": null}'
)
BULK = {
    "sqlite": (
        "WITH RECURSIVE s(g) AS (SELECT :lo UNION ALL SELECT g + 1 FROM s WHERE g < :hi), "
        "t(g, m, st) AS (SELECT g, g % 100, strftime('%Y-%m-%dT%H:%M:%f', :base, "
        "printf('-%d seconds', g * 2)) || '000+00:00' FROM s) "
        f"INSERT INTO workflow_execution_logs ({_COLUMNS}) "
        "SELECT printf('%012x', 100000000000 - g) || printf('%020d', g), 'wf-' || (g % 20), "
        f"'bench', {_STATUS.format(m='m')}, CASE WHEN m BETWEEN 70 AND 91 THEN 'error' "
        "ELSE 'info' END, CASE g % 4 WHEN 0 THEN 'cli' WHEN 1 THEN 'python' WHEN 2 THEN 'api' "
        "ELSE 'cron' END, st, CASE WHEN m < 92 THEN st END, "
        "CASE WHEN m < 92 THEN 1 + (g * 31) % 600000 END, st, "
        f"{_PATH.format(m='m')}, CASE WHEN m BETWEEN 88 AND 91 THEN 'sweeper' "
        "WHEN m < 92 OR m >= 98 THEN 'engine' END, "
        "CASE WHEN m BETWEEN 70 AND 91 THEN 'block b' || (g % 7) || ' failed: boom' END, "
        "CASE WHEN m BETWEEN 70 AND 91 THEN 'b' || (g % 7) END, "
        "((g * 7919) % 10000) / 1000.0, g % 900, g % 300, g % 900 + g % 300, '[\"gpt-x\"]', "
        "'summarise', 'summarise', 'agent', st, 'fetch', 'fetch', 'http', st, 1, "
        '1, 3, \'{"q": "hello"}\', \'{"answer": "ok"}\', :trace, 1 FROM t'
    ),
    "postgres": (
        "WITH t AS (SELECT g, g %% 100 AS m, "
        "%(base)s::timestamptz - make_interval(secs => g * 2) AS st "
        "FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g) "
        f"INSERT INTO workflow_execution_logs ({_COLUMNS}) "
        "SELECT lpad(to_hex(100000000000 - g), 12, '0') || lpad(g::text, 20, '0'), "
        f"'wf-' || (g %% 20), 'bench', {_STATUS.format(m='m')}, "
        "CASE WHEN m BETWEEN 70 AND 91 THEN 'error' ELSE 'info' END, "
        "(ARRAY['cli', 'python', 'api', 'cron'])[1 + g %% 4], st, "
        "CASE WHEN m < 92 THEN st END, CASE WHEN m < 92 THEN 1 + (g * 31) %% 600000 END, st, "
        f"{_PATH.format(m='m')}, CASE WHEN m BETWEEN 88 AND 91 THEN 'sweeper' "
        "WHEN m < 92 OR m >= 98 THEN 'engine' END, "
        "CASE WHEN m BETWEEN 70 AND 91 THEN 'block b' || (g %% 7) || ' failed: boom' END, "
        "CASE WHEN m BETWEEN 70 AND 91 THEN 'b' || (g %% 7) END, "
        "((g * 7919) %% 10000) / 1000.0, g %% 900, g %% 300, g %% 900 + g %% 300, "
        "'[\"gpt-x\"]'::jsonb, 'summarise', 'summarise', 'agent', st, 'fetch', 'fetch', "
        '\'http\', st, true, true, 3, \'{"q": "hello"}\'::json, \'{"answer": "ok"}\'::json, '
        "%(trace)s::json, 1 FROM t"
    ),
}


# -- child scenario --------------------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    return {
        "p50_ms": ordered[len(ordered) // 2],
        "p95_ms": ordered[min(len(ordered) - 1, (len(ordered) * 95) // 100)],
    }


async def _timed_async(make: Any, times: int) -> dict[str, float]:
    await make()  # warm-up: plans, caches
    samples = []
    for _ in range(times):
        t0 = time.perf_counter_ns()
        await make()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return percentiles(samples)


def _timed_sync(make: Any, times: int) -> dict[str, float]:
    make()
    samples = []
    for _ in range(times):
        t0 = time.perf_counter_ns()
        make()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return percentiles(samples)


async def _seed(store: Any, backend: str, n: int) -> float:
    from datetime import UTC, datetime

    await store.put_snapshot("bench", "bench", {"name": "bench"})
    base = datetime.now(UTC).replace(microsecond=0)
    t0 = time.perf_counter()
    for lo in range(1, n + 1, CHUNK):
        hi = min(n, lo + CHUNK - 1)
        params = {"lo": lo, "hi": hi, "base": store._ts(base), "trace": _TRACE}
        if backend == "sqlite":
            params["base"] = base.strftime("%Y-%m-%d %H:%M:%S")
        await store._fetch(BULK[backend], params)
        h.note(f"    seeded {hi:,} runs ({time.perf_counter() - t0:.0f} s)")
    await store._fetch("ANALYZE", {})
    return time.perf_counter() - t0


async def _big_run(store: Any, spans: int) -> str:
    """A completed run whose stored trace holds ``spans`` spans (a loop of iterations of
    one block each), with a step per block: the run page's worst case."""
    from datetime import UTC, datetime, timedelta

    from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
    from flowtrail.store.records import Finalization, NewRun, StepWrite

    now = datetime.now(UTC)
    iterations = (spans - 2) // 2
    children = [
        {
            "name": f"each #{i}", "type": "iteration", "status": "success", "index": i,
            "started_at": (now + timedelta(milliseconds=i)).isoformat(),
            "ended_at": (now + timedelta(milliseconds=i + 1)).isoformat(), "duration_ms": 1,
            "children": [{
                "name": "work", "block_id": "work", "type": "function", "status": "success",
                "started_at": (now + timedelta(milliseconds=i)).isoformat(),
                "ended_at": (now + timedelta(milliseconds=i + 1)).isoformat(),
                "duration_ms": 1, "output": {"result": i}, "children": [],
            }],
        }
        for i in range(iterations)
    ]  # fmt: skip
    loop = {"name": "each", "block_id": "each", "type": "loop", "status": "success",
            "started_at": now.isoformat(), "ended_at": (now + timedelta(seconds=10)).isoformat(),
            "duration_ms": 10_000, "total": iterations, "iterations": iterations,
            "children": children}  # fmt: skip
    root = {"name": "bench-big", "type": "workflow", "status": "success",
            "started_at": now.isoformat(), "ended_at": (now + timedelta(seconds=10)).isoformat(),
            "duration_ms": 10_000, "children": [loop]}  # fmt: skip
    run_id = f"big-{time.time_ns()}"
    await store.create_run(
        NewRun(run_id, "bench-big", "bench", RunStatus.RUNNING, "bench", now, {"n": iterations})
    )
    steps = tuple(
        StepWrite(f"lp[{i}]", "work", "function", "completed", now, now, 1, None, None, {"r": i})
        for i in range(iterations)
    )
    await store.finalize(
        run_id,
        Finalization(
            RunStatus.COMPLETED, FinalizationPath.COMPLETED, FinalizedBy.ENGINE,
            now + timedelta(seconds=10), 10_000, output={"ok": True},
            execution_data={"trace": root, "truncation": None}, has_trace_spans=True,
            trace_span_count=2 + 2 * iterations, steps=steps,
        ),
    )  # fmt: skip
    return run_id


async def _store_figures(store: Any, backend: str, spec: dict[str, Any]) -> dict[str, Any]:
    from flowtrail.status import RunStatus
    from flowtrail.store import records

    samples, n = int(spec["samples"]), int(spec["runs"])
    pk = "%(id)s" if backend == "postgres" else ":id"
    rng = random.Random(7)
    some = [f"{100000000000 - g:012x}{g:020d}" for g in (rng.randint(1, n) for _ in range(samples))]
    pick = iter(some * 3)
    figures: dict[str, Any] = {}
    floor_sql = f"SELECT id, status FROM workflow_execution_logs WHERE id = {pk}"
    figures["floor"] = await _timed_async(
        lambda: store._fetch(floor_sql, {"id": next(pick)}), samples
    )

    lean = hasattr(store, "list_summaries") and hasattr(records, "RunQuery")
    figures["list_api"] = "list_summaries" if lean else "list_runs (legacy: full rows)"
    if lean:
        query_type = records.RunQuery

        def q(**fields: Any) -> Any:
            if "statuses" in fields:
                fields["statuses"] = tuple(RunStatus(s) for s in fields["statuses"])
            return query_type(limit=PAGE, **fields)

        for label, fields, _ in LISTS:
            query = q(**fields)
            figures[label] = await _timed_async(
                lambda query=query: store.list_summaries(query), samples
            )
        cursor = None
        for _ in range(int(spec["deep_pages"])):
            page = await store.list_summaries(q(cursor=cursor))
            cursor = page.next_cursor
            if cursor is None:
                break
        deep = q(cursor=cursor)
        figures["deep page"] = await _timed_async(lambda: store.list_summaries(deep), samples)
        figures["deep_rows"] = int(spec["deep_pages"]) * PAGE
    else:
        legacy: dict[str, Any] = {
            "first page": records.RunFilter(limit=PAGE),
            "status": records.RunFilter(status=RunStatus.FAILED, limit=PAGE),
            "workflow": records.RunFilter(workflow_name="wf-7", limit=PAGE),
        }
        for label, filt in legacy.items():
            figures[label] = await _timed_async(lambda filt=filt: store.list_runs(filt), samples)

    async def detail() -> None:
        run_id = next(pick)
        await store.get_run(run_id)
        await store.list_steps(run_id)

    figures["detail"] = await _timed_async(detail, samples)
    return figures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "FLOWTRAIL_DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowtrail", "serve", "--db", url, "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flowtrail serve exited: {proc.stderr.read().decode()[-800:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("flowtrail serve did not become ready in 60 s")


def _http_figures(base: str, spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    samples, n = int(spec["samples"]), int(spec["runs"])
    rng = random.Random(11)
    pick = iter(
        [f"{100000000000 - g:012x}{g:020d}" for g in (rng.randint(1, n) for _ in range(samples))]
        * 3
    )
    figures: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=30) as client:

        def get(path: str) -> Any:
            response = client.get(path)
            if response.status_code != 200:
                raise LookupError(f"GET {path}: {response.status_code} {response.text[:200]}")
            return response.json()

        try:
            get(f"/api/v1/runs?limit={PAGE}")
            has_list = True
        except LookupError as exc:
            figures["list_note"] = f"no list endpoint yet ({exc})"
            has_list = False
        if has_list:
            for label, _, query in LISTS:
                path = f"/api/v1/runs?limit={PAGE}" + (f"&{query}" if query else "")
                figures[label] = _timed_sync(lambda path=path: get(path), samples)
            cursor = None
            for _ in range(int(spec["deep_pages"])):
                page = get(f"/api/v1/runs?limit={PAGE}" + (f"&cursor={cursor}" if cursor else ""))
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            deep = f"/api/v1/runs?limit={PAGE}&cursor={cursor}"
            figures["deep page"] = _timed_sync(lambda: get(deep), samples)
        figures["detail"] = _timed_sync(lambda: get(f"/api/v1/runs/{next(pick)}"), samples)
    return figures


def _browser_figures(base: str, run_id: str) -> dict[str, Any]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright

        import flowtrail.web  # noqa: F401
    except ImportError as exc:
        return {"note": f"not measured: {exc}"}
    if not Path(chromium).exists():
        return {"note": "not measured: no chromium"}
    loads, idles = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for _ in range(4):
                page = browser.new_page()
                t0 = time.perf_counter()
                response = page.goto(f"{base}/runs/{run_id}", wait_until="load", timeout=60_000)
                # server-rendered: the trace tree is in the page once it has loaded
                page.wait_for_selector("#tree", state="visible", timeout=60_000)
                loads.append(time.perf_counter() - t0)
                page.wait_for_load_state("networkidle", timeout=60_000)
                idles.append(time.perf_counter() - t0)
                status = response.status if response else None
                page.close()
        finally:
            browser.close()
    if status != 200:
        return {"note": f"not measured: the run page answered {status}"}
    return {"load_s": h.median(loads[1:]), "idle_s": h.median(idles[1:]), "cold_load_s": loads[0]}


async def scenario(spec: dict[str, Any]) -> dict[str, Any]:
    from flowtrail.store import open_store

    backend, n = spec["backend"], int(spec["runs"])
    store = open_store(spec["url"])
    await store.open()
    try:
        await store.migrate()
        fill_s = await _seed(store, backend, n)
        big = await _big_run(store, SPANS)
        h.note("    store figures")
        result: dict[str, Any] = {"rows": n, "fill_s": fill_s}
        result["store"] = await _store_figures(store, backend, spec)
    finally:
        await store.close()
    if spec["http"]:
        try:
            import flowtrail.api  # noqa: F401
        except ImportError as exc:
            result["http"] = {"note": f"not measured: {exc}"}
            return result
        proc, base = _serve(spec["url"])
        try:
            h.note("    HTTP figures")
            result["http"] = _http_figures(base, spec)
            if spec["browser"]:
                h.note("    browser")
                # Playwright's sync API refuses to run on a thread with an event loop.
                result["browser"] = await asyncio.to_thread(_browser_figures, base, big)
            result["server_peak_rss_mb"] = _vm_hwm_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    result["prune"] = await _prune_figures(spec["url"], backend, timedelta(seconds=n))
    result["peak_rss_mb"] = h.peak_rss_mb()
    return result


async def _prune_figures(url: str, backend: str, age: timedelta) -> dict[str, Any]:
    """Last (it changes the table): ``prune`` of the older half of the seeded runs (one
    every 2 s, so ``age`` = --runs seconds), its dry run first, and the plan of the batch
    read."""
    from flowtrail.retention import PRUNABLE, prune
    from flowtrail.store import open_store
    from flowtrail.store.common import utcnow
    from flowtrail.store.queries import load_queries

    async with open_store(url) as store:
        explain = "EXPLAIN " if backend == "postgres" else "EXPLAIN QUERY PLAN "
        cutoff = store._ts(utcnow() - age)
        params = {"before": cutoff, "after_started": store._ts(utcnow() - timedelta(days=3650)),
                  "after_id": "", "statuses": store._text_list(PRUNABLE), "limit": 500}  # fmt: skip
        plan = [
            str(r.get("QUERY PLAN") or r.get("detail"))
            for r in await store._fetch(explain + load_queries(backend)["prune_candidates"], params)
        ]
        dry = await prune(store, older_than=age, dry_run=True)
        real = await prune(store, older_than=age, dry_run=False)
    return {
        "dry_run_s": dry.seconds,
        "seconds": real.seconds,
        "runs": real.runs,
        "batches": real.batches,
        "bytes": real.bytes,
        "runs_per_s": real.runs / real.seconds if real.seconds else None,
        "plan": plan,
    }


# -- parent ----------------------------------------------------------------------------

FIGURES = ("first page", "deep page", "status", "workflow", "has_error", "min_cost", "detail")


def run_all(args: Any) -> dict[str, Any]:
    backends = h.backends_from(args)
    results: dict[str, dict[str, Any]] = {}
    with h.databases(backends, args.pg_url, args.require_postgres) as dbs:
        h.note(f"api bench: {args.runs:,} runs, {backends}")
        for backend in backends:
            spec = {
                "backend": backend,
                "url": dbs.url(backend),
                "runs": args.runs,
                "samples": args.samples,
                "deep_pages": args.deep_pages,
                "http": not args.no_http,
                "browser": not args.no_browser,
            }
            results[backend] = h.run_child(SCRIPT, spec, f"api/{backend}")
        notes = list(dbs.notes)
    targets: list[dict[str, Any]] = []
    for b in backends:
        for surface in ("store", "http"):
            figures = results.get(b, {}).get(surface, {})
            for label in FIGURES:
                value = figures.get(label, {}).get("p95_ms") if isinstance(figures, dict) else None
                if value is None:
                    continue
                targets.append(
                    {
                        "target": f"{b} {surface}: {label} p95 < {P95_TARGET_MS:g} ms",
                        "value": value,
                        "limit": P95_TARGET_MS,
                        "unit": "ms",
                        "met": value < P95_TARGET_MS,
                    }
                )
        load = results.get(b, {}).get("browser", {}).get("load_s")
        if load is not None:
            targets.append(
                {
                    "target": f"{b}: run page of a {SPANS:,}-span run loads in "
                    f"< {PAGE_TARGET_S:g} s",
                    "value": load,
                    "limit": PAGE_TARGET_S,
                    "unit": "s",
                    "met": load < PAGE_TARGET_S,
                }
            )
    return {
        "benchmark": "api",
        "machine": h.machine(),
        "config": {
            "runs": args.runs,
            "samples": args.samples,
            "deep_pages": args.deep_pages,
            "page": PAGE,
            "backends": backends,
            "unit": "milliseconds (p50 / p95); RSS in MiB",
        },
        "notes": notes,
        "scenarios": results,
        "targets": targets,
    }


def render(report: dict[str, Any]) -> str:
    cfg, res = report["config"], report["scenarios"]
    out = [
        f"flowtrail API benchmark: {cfg['runs']:,} runs, pages of {cfg['page']}, "
        f"{cfg['samples']} samples per figure, {report['machine']['cpus']} cores "
        "(milliseconds, p50 / p95)",
        *report["notes"],
        "",
    ]
    headers = ["backend", "surface", "floor", *FIGURES]
    rows = []
    for b, r in res.items():
        if "error" in r:
            rows.append([b, "FAILED", *["" for _ in range(len(FIGURES) + 1)]])
            continue
        for surface in ("store", "http"):
            figures = r.get(surface)
            if not isinstance(figures, dict):
                continue
            cells = []
            for label in ("floor", *FIGURES):
                f = figures.get(label)
                cells.append(f"{h.fmt(f['p50_ms'], 2)} / {h.fmt(f['p95_ms'], 2)}" if f else "n/a")
            rows.append([b, surface, *cells])
    out.append(h.table(headers, rows))
    out.append("")
    for b, r in res.items():
        if "error" in r:
            continue
        store = r.get("store", {})
        out.append(
            f"{b}: seeded {r.get('rows', 0):,} runs in {h.fmt(r.get('fill_s'))} s; store via "
            f"{store.get('list_api')}; deep page after {store.get('deep_rows', 'n/a')} rows; "
            f"bench process peak RSS {h.fmt(r.get('peak_rss_mb'))} MiB; server peak RSS "
            f"{h.fmt(r.get('server_peak_rss_mb'))} MiB"
        )
        http = r.get("http", {})
        for key in ("note", "list_note"):
            if key in http:
                out.append(f"  http: {http[key]}")
        pruned = r.get("prune")
        if pruned:
            out.append(
                f"  prune of the older half: {pruned['runs']:,} runs in {pruned['batches']} "
                f"batches, {h.fmt(pruned['seconds'], 2)} s ({h.fmt(pruned['runs_per_s'], 0)} "
                f"runs/s; dry run {h.fmt(pruned['dry_run_s'], 2)} s); batch read plan: "
                + " | ".join(pruned["plan"])
            )
        browser = r.get("browser")
        if browser:
            if "note" in browser:
                out.append(f"  browser: {browser['note']}")
            else:
                out.append(
                    f"  browser: {SPANS:,}-span run page: load {h.fmt(browser['load_s'], 3)} s, "
                    f"network idle {h.fmt(browser['idle_s'], 3)} s (cold "
                    f"{h.fmt(browser['cold_load_s'], 3)} s)"
                )
    out += ["", "Targets:"]
    for t in report["targets"]:
        out.append(f"  [{h.verdict(t['met']):>6}] {t['target']}: {h.fmt(t['value'], 3)}")
    out += h.failures(res)
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1_000_000, help="runs in the table")
    p.add_argument("--samples", type=int, default=100, help="calls timed per figure")
    p.add_argument("--deep-pages", type=int, default=200, help="pages followed to the deep one")
    p.add_argument("--backends", default=",".join(h.ALL_BACKENDS), help="sqlite,postgres")
    p.add_argument("--no-http", action="store_true", help="store figures only")
    p.add_argument("--no-browser", action="store_true", help="no Chromium run page")
    p.add_argument("--require-postgres", action="store_true", help="fail without PostgreSQL")
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL, help="server for the scratch database")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    return h.run_main(p.parse_args(), scenario, run_all, render)


if __name__ == "__main__":
    sys.exit(main())
