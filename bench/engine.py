"""The engine's own cost per block, against the floor of doing the same work without it.

Workloads (N = --blocks, default 1,000):
  chain     start -> b0 -> ... -> b{N-1}, each ``call: bench_blocks:inc`` (or ``ainc``)
            with ``with: {x: "{{ b<i-1>.result }}"}`` (b0 gets a constant)
  parallel  start -> a ``parallel`` with ``count: N`` branches of one such block

Each with a sync function (the engine runs it in a worker thread) and an async one.
Modes, each in a fresh child process (clean peak RSS):
  plain     a plain Python loop calling the function; plus the "asyncio floor": the
            least asyncio machinery the engine inherently needs (chain: ``await`` one call
            at a time, sync calls hopping through ``asyncio.to_thread``; parallel:
            ``asyncio.gather`` over N tasks)
  off       ``Runner(settings, store=None)``: the durable record off
  sqlite    ``Runner(settings, SqliteStore)``: record on
  postgres  ``Runner(settings, PostgresStore)``: record on (a scratch database)

Figures are microseconds per function block (wall time of ``Runner.run`` / N), the median
of --repeat runs after one untimed warm-up run (reported as ``cold``). No timing is
asserted; targets are only printed as MET or MISSED.

    .venv/bin/python bench/engine.py [--blocks 1000] [--repeat 3]
        [--backends sqlite,postgres] [--require-postgres] [--json]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import _harness as h

SCRIPT = Path(__file__).resolve()
WORKLOADS = ("chain", "parallel")
KINDS = ("sync", "async")
CHAIN_TARGET_US = 50.0  # issue 9 (was 100)


# -- child scenarios -------------------------------------------------------------------


async def _plain(workload: str, fn: str, n: int, repeat: int) -> dict[str, Any]:
    import bench_blocks as bb

    async def loop() -> None:
        if fn == "sync":
            if workload == "chain":
                x = 0
                for _ in range(n):
                    x = bb.inc(x)
            else:
                [bb.inc(i) for i in range(n)]
        elif workload == "chain":
            x = 0
            for _ in range(n):
                x = await bb.ainc(x)
        else:
            [await bb.ainc(i) for i in range(n)]

    async def floor() -> None:
        if fn == "sync":
            if workload == "chain":
                x = 0
                for _ in range(n):
                    x = await asyncio.to_thread(bb.inc, x)
            else:
                await asyncio.gather(*(asyncio.to_thread(bb.inc, i) for i in range(n)))
        elif workload == "chain":
            x = 0
            for _ in range(n):
                x = await asyncio.ensure_future(bb.ainc(x))
        else:
            await asyncio.gather(*(bb.ainc(i) for i in range(n)))

    setup_rss = h.peak_rss_mb()
    out: dict[str, Any] = {}
    for name, body in (("plain_loop", loop), ("asyncio_floor", floor)):
        await body()  # warm-up
        samples = []
        for _ in range(max(repeat, 5)):
            t0 = time.perf_counter()
            await body()
            samples.append((time.perf_counter() - t0) * 1e6 / n)
        out[name] = {"us_per_block": h.median(samples), "samples_us": samples}
    out["setup_rss_mb"] = setup_rss
    out["peak_rss_mb"] = h.peak_rss_mb()
    return out


async def _engine(spec: dict[str, Any]) -> dict[str, Any]:
    workload, fn, mode = spec["workload"], spec["fn"], spec["mode"]
    n, repeat = int(spec["blocks"]), int(spec["repeat"])
    t0 = time.perf_counter()
    workflow = h.compile_workload(workload, n, fn)
    compile_s = time.perf_counter() - t0
    store = await h.open_bench_store(spec["url"]) if mode in h.ALL_BACKENDS else None
    try:
        runner = h.make_runner(store, spec.get("url"), int(spec["max_concurrency"]))
        setup_rss = h.peak_rss_mb()
        cold = await h.run_once(runner, workflow, workload, n)
        samples = [await h.run_once(runner, workflow, workload, n) for _ in range(repeat)]
    finally:
        if store is not None:
            await store.close()
    us = [s.seconds * 1e6 / n for s in samples]
    result: dict[str, Any] = {
        "us_per_block": h.median(us),
        "samples_us": us,
        "cold_us_per_block": cold.seconds * 1e6 / n,
        "compile_s": compile_s,
        "setup_rss_mb": setup_rss,
        "peak_rss_mb": h.peak_rss_mb(),
    }
    if store is not None:
        result["round_trips"] = h.round_trip_summary(samples, n)
    return result


async def scenario(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["mode"] == "plain":
        return await _plain(spec["workload"], spec["fn"], int(spec["blocks"]), spec["repeat"])
    return await _engine(spec)


# -- parent ----------------------------------------------------------------------------


def run_all(args: Any) -> dict[str, Any]:
    backends = h.backends_from(args)
    results: dict[str, dict[str, Any]] = {}
    with h.databases(backends, args.pg_url, args.require_postgres) as dbs:
        modes = ["plain", "off", *backends]
        h.note(f"engine bench: {args.blocks} blocks, median of {args.repeat}, modes {modes}")
        for workload in WORKLOADS:
            for fn in KINDS:
                for mode in modes:
                    spec: dict[str, Any] = {
                        "workload": workload,
                        "fn": fn,
                        "mode": mode,
                        "blocks": args.blocks,
                        "repeat": args.repeat,
                        "max_concurrency": args.max_concurrency,
                    }
                    if mode in h.ALL_BACKENDS:
                        spec["url"] = dbs.url(mode)
                    key = f"{workload}/{fn}/{mode}"
                    results[key] = h.run_child(SCRIPT, spec, key)
        notes = list(dbs.notes)
    targets = []
    for fn in KINDS:
        value = results.get(f"chain/{fn}/off", {}).get("us_per_block")
        text = f"engine's own cost, chain, {fn} fn, record off <= {CHAIN_TARGET_US:g} us/block"
        targets.append(
            {
                "target": text,
                "value_us": value,
                "met": None if value is None else value <= CHAIN_TARGET_US,
            }
        )
    return {
        "benchmark": "engine",
        "machine": h.machine(),
        "config": {
            "blocks": args.blocks,
            "repeat": args.repeat,
            "backends": backends,
            "max_concurrency": args.max_concurrency,
            "parallel_max_concurrency": None,
            "unit": "microseconds per function block (median); RSS in MiB",
        },
        "notes": notes,
        "scenarios": results,
        "targets": targets,
    }


def render(report: dict[str, Any]) -> str:
    cfg, res = report["config"], report["scenarios"]
    backends: list[str] = cfg["backends"]
    out = [
        f"flowtrail engine benchmark: {cfg['blocks']} blocks, median of {cfg['repeat']} runs, "
        f"{report['machine']['cpus']} cores, Python {report['machine']['python']}",
        f"max_concurrency={cfg['max_concurrency']} (engine leaf slots); the parallel has no "
        "max_concurrency of its own (all branches launched)",
        *report["notes"],
        "",
        "Microseconds per block (wall time / blocks, median):",
    ]
    headers = ["workload", "fn", "plain loop", "asyncio floor", "record off", "off cold"]
    headers += [f"record on {b}" for b in backends]
    rows = []
    for workload in WORKLOADS:
        for fn in KINDS:
            plain = res.get(f"{workload}/{fn}/plain", {})
            off = res.get(f"{workload}/{fn}/off", {})
            row = [
                workload,
                fn,
                h.fmt(plain.get("plain_loop", {}).get("us_per_block"), 3),
                h.fmt(plain.get("asyncio_floor", {}).get("us_per_block")),
                h.fmt(off.get("us_per_block")),
                h.fmt(off.get("cold_us_per_block")),
            ]
            for b in backends:
                row.append(h.fmt(res.get(f"{workload}/{fn}/{b}", {}).get("us_per_block")))
            rows.append(row)
    out.append(h.table(headers, rows))
    out += ["", "Peak RSS MiB (in brackets: before the first run, after imports/compile):"]
    headers = ["workload", "fn", "plain", "record off", *[f"record on {b}" for b in backends]]
    rows = []
    for workload in WORKLOADS:
        for fn in KINDS:
            row = [workload, fn]
            for mode in ["plain", "off", *backends]:
                r = res.get(f"{workload}/{fn}/{mode}", {})
                peak, setup = r.get("peak_rss_mb"), r.get("setup_rss_mb")
                row.append("n/a" if peak is None else f"{peak:.1f} ({setup:.1f})")
            rows.append(row)
    out.append(h.table(headers, rows))
    rt_rows = []
    for workload in WORKLOADS:
        for fn in KINDS:
            for b in backends:
                rt = res.get(f"{workload}/{fn}/{b}", {}).get("round_trips")
                if rt:
                    rt_rows.append(
                        [workload, fn, b, h.fmt(rt["per_block"], 3), h.fmt(rt["fixed_per_run"], 0)]
                    )
    if rt_rows:
        out += ["", "Database round trips (record on):"]
        out.append(h.table(["workload", "fn", "backend", "per block", "fixed per run"], rt_rows))
    out += ["", "Targets:"]
    for t in report["targets"]:
        out.append(f"  [{h.verdict(t['met']):>6}] {t['target']}: {h.fmt(t['value_us'])} us")
    out += h.failures(res)
    return "\n".join(out)


def main() -> int:
    args = h.parser(__doc__.splitlines()[0]).parse_args()
    return h.run_main(args, scenario, run_all, render)


if __name__ == "__main__":
    sys.exit(main())
