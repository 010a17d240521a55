"""Queued runs on workers: throughput against Procrastinate's own, latency, sweep, memory.

Figures, all on one scratch PostgreSQL database, in one run, on this machine:

* **throughput**: runs per second of a 10-block trivial workflow executed by 1 and by 2
  ``flowtrail worker`` processes, against the floor: no-op Procrastinate jobs per second
  with the same number of worker processes and the same concurrency. Both are measured
  from the database's own timestamps (first claim or start -> last end), so process
  start-up is left out of both. Target: flowtrail >= 50 % of the floor.
* **latency**: enqueue -> first block started (p50, p95), one run at a time on an idle
  worker.
* **sweep**: one sweeper pass over a table of 100,000 finished runs and a few live ones
  (``bench/sweep.py`` measures it in detail; here it is the same pass). Target < 50 ms.
* **memory**: a worker's resident set after 100 runs and after ``--rss-runs`` (1,000)
  runs: it must not grow with the number of runs.

    .venv/bin/python bench/queued.py            # table on stdout, progress on stderr
    .venv/bin/python bench/queued.py --json     # the same figures as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
import _harness as h  # noqa: E402

NOOP_QUEUE = "bench_noop"
FLOW_QUEUE = "bench_flow"


# -- the floor: Procrastinate's no-op jobs --------------------------------------------


def _noop_app(url: str) -> Any:
    from procrastinate import App, PsycopgConnector

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # "app in __main__" notes

    app = App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=8))

    @app.task(name="bench_noop", queue=NOOP_QUEUE)
    async def noop() -> None:
        return None

    return app


async def _noop_worker(url: str, concurrency: int) -> None:
    """A child process: run no-op jobs until the queue is empty, then exit."""
    app = _noop_app(url)
    async with app.open_async():
        await app.run_worker_async(
            queues=[NOOP_QUEUE], concurrency=concurrency, wait=False, install_signal_handlers=False
        )


async def _defer_noops(url: str, n: int) -> None:
    app = _noop_app(url)
    async with app.open_async():
        await app.configure_task("bench_noop").batch_defer_async(*({} for _ in range(n)))


def _sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def noop_throughput(url: str, n: int, workers: int, concurrency: int) -> float:
    _sql(url, "DELETE FROM procrastinate_jobs WHERE queue_name = %s", NOOP_QUEUE)
    asyncio.run(_defer_noops(url, n))
    argv = [sys.executable, __file__, "--noop-worker", url, "--concurrency", str(concurrency)]
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL) for _ in range(workers)]
    for proc in procs:
        proc.wait(timeout=600)
    [(first, last, done)] = _sql(
        url,
        "SELECT min(e.at) FILTER (WHERE e.type = 'started'), "
        "max(e.at) FILTER (WHERE e.type = 'succeeded'), "
        "count(*) FILTER (WHERE e.type = 'succeeded') "
        "FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id "
        "WHERE j.queue_name = %s",
        NOOP_QUEUE,
    )
    if done != n:
        raise SystemExit(f"only {done} of {n} no-op jobs succeeded")
    return float(n / (last - first).total_seconds())


# -- flowtrail runs on flowtrail workers ------------------------------------------------


def chain_file(folder: Path, blocks: int) -> Path:
    """The workflow, with its function module beside it (the worker imports it from the
    workflow's folder, as it would on another machine with the same checkout)."""
    shutil.copy(_HERE / "bench_blocks.py", folder / "bench_blocks.py")
    lines = ["name: queued_chain", "blocks:", "  start: {type: start}"]
    lines += [
        f'  b{i}: {{type: function, call: "bench_blocks:inc", with: {{x: {i}}}}}'
        for i in range(blocks)
    ]
    lines += ["connections:", "  - start -> b0"]
    lines += [f"  - b{i} -> b{i + 1}" for i in range(blocks - 1)]
    path = folder / "queued_chain.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def _submit(url: str, path: Path, n: int) -> list[str]:
    from flowtrail.model.compile import compile_file
    from flowtrail.queue.submit import submit_run
    from flowtrail.settings import Settings
    from flowtrail.store import open_store

    workflow = compile_file(path)
    settings = Settings(database_url=url)
    async with open_store(url) as store:
        return [
            (await submit_run(store, workflow, settings=settings, queue_name=FLOW_QUEUE)).id
            for _ in range(n)
        ]


@contextmanager
def flowtrail_workers(
    url: str, count: int, concurrency: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {**os.environ, "FLOWTRAIL_DATABASE_URL": url}
    argv = [
        sys.executable, "-m", "flowtrail", "worker", "--queue", FLOW_QUEUE,
        "--concurrency", str(concurrency),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ended(url: str, ids: list[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [(left,)] = _sql(
            url,
            "SELECT count(*) FROM workflow_execution_logs WHERE id = ANY(%s) "
            "AND status IN ('queued', 'running')",
            ids,
        )
        if left == 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"runs still going after {timeout} s")


def flow_throughput(url: str, path: Path, n: int, workers: int, concurrency: int) -> float:
    ids = asyncio.run(_submit(url, path, n))
    with flowtrail_workers(url, workers, concurrency):
        wait_ended(url, ids)
    [(first, last, done)] = _sql(
        url,
        "SELECT min(claimed_at), max(ended_at), count(*) FILTER (WHERE status = 'completed') "
        "FROM workflow_execution_logs WHERE id = ANY(%s)",
        ids,
    )
    if done != n:
        raise SystemExit(f"only {done} of {n} queued runs completed")
    return float(n / (last - first).total_seconds())


def latency(url: str, path: Path, samples: int) -> list[float]:
    """Enqueue -> first block started, in ms, one run at a time on an idle worker."""
    out: list[float] = []
    with flowtrail_workers(url, 1, 1):
        time.sleep(2.0)  # the worker is up and listening
        for _ in range(samples):
            [run_id] = asyncio.run(_submit(url, path, 1))
            wait_ended(url, [run_id], timeout=60)
            [(queued_at, data)] = _sql(
                url,
                "SELECT queued_at, execution_data FROM workflow_execution_logs WHERE id = %s",
                run_id,
            )
            trace = (data if isinstance(data, dict) else json.loads(data))["trace"]
            first = min(
                child["started_at"] for child in trace["children"] if child.get("started_at")
            )
            from datetime import datetime

            out.append((datetime.fromisoformat(first) - queued_at).total_seconds() * 1000)
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_memory(url: str, path: Path, total: int, concurrency: int) -> dict[str, float]:
    """A worker's resident set after 100 runs and after ``total`` runs (MiB)."""
    first = min(100, total)
    with flowtrail_workers(url, 1, concurrency) as [proc]:
        ids = asyncio.run(_submit(url, path, first))
        wait_ended(url, ids)
        early = rss_kib(proc.pid)
        rest = asyncio.run(_submit(url, path, total - first))
        wait_ended(url, rest)
        late = rss_kib(proc.pid)
    return {"after_100_mib": early / 1024, f"after_{total}_mib": late / 1024,
            "growth_mib": (late - early) / 1024}  # fmt: skip


def sweep_pass(url: str) -> float | None:
    """One sweeper pass over 100,000 finished runs (ms), when the sweeper exists."""
    if not (_HERE / "sweep.py").exists():
        return None
    import sweep as sweep_bench  # bench/sweep.py

    measure = getattr(sweep_bench, "one_pass_ms", None)
    return float(measure(url, 100_000)) if measure is not None else None


# -- main --------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=300, help="runs per throughput figure")
    p.add_argument("--blocks", type=int, default=10, help="blocks per workflow (default 10)")
    p.add_argument("--concurrency", type=int, default=4, help="per worker process")
    p.add_argument("--latency-samples", type=int, default=40)
    p.add_argument("--rss-runs", type=int, default=1000)
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL)
    p.add_argument("--require-postgres", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--noop-worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.noop_worker:
        asyncio.run(_noop_worker(args.noop_worker, args.concurrency))
        return 0

    from flowtrail.queue.schema import apply_queue_schema

    results: dict[str, Any] = {"runs": args.runs, "blocks": args.blocks,
                               "concurrency": args.concurrency}  # fmt: skip
    with h.databases(["postgres"], args.pg_url, args.require_postgres) as dbs:
        if dbs.pg_url is None:
            h.note("NOTE: the queue needs PostgreSQL; nothing measured")
            return 0 if not args.require_postgres else 1
        url = dbs.pg_url
        asyncio.run(apply_queue_schema(url))
        path = chain_file(dbs.tmpdir, args.blocks)
        for workers in (1, 2):
            h.note(f"no-op Procrastinate jobs, {workers} worker(s) ...")
            floor = noop_throughput(url, args.runs * 2, workers, args.concurrency)
            h.note(f"flowtrail runs, {workers} worker(s) ...")
            flow = flow_throughput(url, path, args.runs, workers, args.concurrency)
            results[f"workers_{workers}"] = {
                "noop_jobs_per_s": floor,
                "runs_per_s": flow,
                "ratio": flow / floor,
            }
        h.note("latency ...")
        lat = latency(url, path, args.latency_samples)
        results["latency_ms"] = {
            "p50": statistics.median(lat),
            "p95": statistics.quantiles(lat, n=20)[-1] if len(lat) >= 20 else max(lat),
            "samples": len(lat),
        }
        h.note(f"worker memory over {args.rss_runs} runs ...")
        results["worker_rss"] = worker_memory(url, path, args.rss_runs, args.concurrency)
        h.note("sweep pass ...")
        results["sweep_100k_ms"] = sweep_pass(url)
    targets = [
        {
            "target": f"{w} worker(s): runs/s >= 50% of no-op jobs/s",
            "value": results[f"workers_{w}"]["ratio"],
            "limit": 0.5,
            "met": results[f"workers_{w}"]["ratio"] >= 0.5,
        }
        for w in (1, 2)
    ]
    if results["sweep_100k_ms"] is not None:
        targets.append({"target": "one sweep pass over 100,000 runs < 50 ms",
                        "value": results["sweep_100k_ms"], "limit": 50.0,
                        "met": results["sweep_100k_ms"] < 50.0})  # fmt: skip
    results["targets"] = targets
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    rows = [
        [f"{w} worker(s)", h.fmt(results[f"workers_{w}"]["noop_jobs_per_s"]),
         h.fmt(results[f"workers_{w}"]["runs_per_s"]),
         f"{results[f'workers_{w}']['ratio']:.0%}"]
        for w in (1, 2)
    ]  # fmt: skip
    print(h.table(["workers", "no-op jobs/s", f"{args.blocks}-block runs/s", "ratio"], rows))
    lat_ms = results["latency_ms"]
    print(f"\nenqueue -> first block started: p50 {lat_ms['p50']:.1f} ms, "
          f"p95 {lat_ms['p95']:.1f} ms ({lat_ms['samples']} runs)")  # fmt: skip
    rss = results["worker_rss"]
    print("worker RSS: " + ", ".join(f"{k} {v:.1f}" for k, v in rss.items()))
    sweep = results["sweep_100k_ms"]
    print(f"one sweep pass over 100,000 runs: {'n/a' if sweep is None else f'{sweep:.1f} ms'}")
    print("\nTargets:")
    for t in targets:
        print(f"  [{'   MET' if t['met'] else 'MISSED'}] {t['target']}: "
              f"{t['value']:.3f} (limit {t['limit']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
