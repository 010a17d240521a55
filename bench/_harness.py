"""Shared plumbing for ``bench/engine.py`` and ``bench/markers.py``.

Each benchmark is a parent that prepares the databases and then runs every scenario in a
fresh child interpreter (the same script with ``--scenario JSON``), so that each
scenario's peak RSS (``ru_maxrss``, a process-wide high-water mark) is its own. A child
prints one JSON line; the parent gathers them into a table or ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
# Never read: the compiler and the engine only use its folder, which puts bench/ on
# sys.path so that ``call: bench_blocks:inc`` imports.
SOURCE = BENCH_DIR / "bench.yaml"
DEFAULT_PG_URL = os.environ.get(
    "FLOWTRAIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
FUNCTIONS = {"sync": "bench_blocks:inc", "async": "bench_blocks:ainc"}
ALL_BACKENDS = ("sqlite", "postgres")
SCENARIO_TIMEOUT_S = 600


def note(message: str) -> None:
    """Progress and notes go to stderr, so ``--json`` stdout stays pure JSON."""
    print(message, file=sys.stderr, flush=True)


# -- command line ----------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--blocks", type=int, default=1000, help="blocks per workflow (default 1000)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs; the median is reported")
    p.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help="comma-separated subset of sqlite,postgres (default both)",
    )
    p.add_argument(
        "--require-postgres",
        action="store_true",
        help="fail instead of skipping PostgreSQL when the server is unreachable",
    )
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server for the scratch database")
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=64,
        help="Settings.max_concurrency, the engine-wide leaf-block slots (default 64)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--scenario", help=argparse.SUPPRESS)  # internal: run one child scenario
    return p


def backends_from(args: argparse.Namespace) -> list[str]:
    names = [b.strip() for b in str(args.backends).split(",") if b.strip()]
    unknown = [b for b in names if b not in ALL_BACKENDS]
    if unknown:
        raise SystemExit(f"unknown backend(s): {', '.join(unknown)} (expected sqlite,postgres)")
    return names


# -- databases -------------------------------------------------------------------------


def _pg_url_for(base: str, dbname: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, ""))


@dataclass
class Databases:
    """Where each backend's scenarios write. SQLite: a fresh file per scenario."""

    tmpdir: Path
    pg_url: str | None = None
    notes: list[str] = field(default_factory=list)
    _count: int = 0

    def url(self, backend: str) -> str:
        if backend == "postgres":
            assert self.pg_url is not None
            return self.pg_url
        self._count += 1
        return f"sqlite:///{(self.tmpdir / f'bench{self._count}.db').as_posix()}"


@contextmanager
def databases(backends: list[str], base_pg_url: str, require_postgres: bool) -> Iterator[Databases]:
    """A temp dir for SQLite files and, if asked for, a scratch PostgreSQL database
    (created, migrated, and dropped on the way out). Removes ``postgres`` from
    ``backends`` (with a note) when the server cannot be reached."""
    import psycopg
    from psycopg import sql

    with tempfile.TemporaryDirectory(prefix="flowtrail-bench-") as tmp:
        dbs = Databases(Path(tmp))
        dbname = f"flowtrail_bench_{os.getpid()}_{secrets.token_hex(3)}"
        admin: psycopg.Connection[Any] | None = None
        if "postgres" in backends:
            try:
                admin = psycopg.connect(base_pg_url, autocommit=True, connect_timeout=5)
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                dbs.pg_url = _pg_url_for(base_pg_url, dbname)
                _migrate(dbs.pg_url)
            except Exception as exc:
                if require_postgres:
                    raise SystemExit(f"PostgreSQL is required but unusable: {exc}") from exc
                message = (
                    f"NOTE: PostgreSQL at {_redact(base_pg_url)} is unreachable ({exc}); "
                    "continuing without it (--require-postgres makes this an error)."
                )
                dbs.notes.append(message)
                note(message)
                backends.remove("postgres")
                dbs.pg_url = None
        try:
            yield dbs
        finally:
            if admin is not None:
                try:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(dbname)
                        )
                    )
                finally:
                    admin.close()


def _redact(url: str) -> str:
    from flowtrail.store.common import redact_url

    return redact_url(url)


def _migrate(url: str) -> None:
    import asyncio

    from flowtrail.store import open_store

    async def go() -> None:
        async with open_store(url) as store:
            await store.migrate()

    asyncio.run(go())


# -- workflows -------------------------------------------------------------------------


def chain_definition(n: int, fn: str) -> dict[str, Any]:
    """start -> b0 -> b1 -> ... -> b{n-1}; each adds one to its predecessor's result."""
    blocks: dict[str, Any] = {"start": {"type": "start"}}
    connections = ["start -> b0"]
    for i in range(n):
        x: Any = 0 if i == 0 else "{{ " + f"b{i - 1}.result" + " }}"
        blocks[f"b{i}"] = {"type": "function", "call": FUNCTIONS[fn], "with": {"x": x}}
        if i:
            connections.append(f"b{i - 1} -> b{i}")
    return {"name": f"bench-chain-{fn}", "blocks": blocks, "connections": connections}


def parallel_definition(n: int, fn: str) -> dict[str, Any]:
    """start -> fan: ``count: n`` branches of one function block; no per-parallel
    ``max_concurrency`` (every branch is launched; leaf blocks still share the engine's
    ``Settings.max_concurrency`` slots)."""
    body = {"w": {"type": "function", "call": FUNCTIONS[fn], "with": {"x": "{{ parallel.index }}"}}}
    blocks = {"start": {"type": "start"}, "fan": {"type": "parallel", "count": n, "blocks": body}}
    return {"name": f"bench-parallel-{fn}", "blocks": blocks, "connections": ["start -> fan"]}


def compile_workload(workload: str, n: int, fn: str) -> Any:
    from flowtrail.model.compile import compile_definition
    from flowtrail.model.definition import WorkflowDefinition

    # The compiler's cycle check (model/compile.py, _Compiler.check_cycles) recurses once
    # per block along a chain: a 1,000-block chain overflows the default limit of 1,000.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * n + 2000))
    make = chain_definition if workload == "chain" else parallel_definition
    definition = WorkflowDefinition.model_validate(make(n, fn))
    return compile_definition(definition, source=SOURCE)


def expected_ok(workload: str, n: int, output: Any) -> bool:
    if workload == "chain":
        return isinstance(output, dict) and output.get("result") == n
    results = output.get("results") if isinstance(output, dict) else None
    return isinstance(results, list) and len(results) == n


# -- measuring -------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB: hence one child process per scenario.

    On Linux ``ru_maxrss`` survives ``exec``: a child's value starts at the RSS its
    parent had when it forked (here ~50 MiB of psycopg and flowtrail), which would hide
    every smaller peak. ``VmHWM`` in /proc/self/status is the same high-water mark for the
    current address space only, so it is used where it exists."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def failures(results: dict[str, dict[str, Any]]) -> list[str]:
    """The closing lines of a report naming the scenarios whose child failed (none: [])."""
    errors = [key for key, value in results.items() if "error" in value]
    return ["", f"FAILED scenarios: {', '.join(errors)} (see stderr)"] if errors else []


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class QueryCounter:
    """Attributes the store's round trips to named queries by wrapping the instance's
    ``_q`` (every ``SqlStore`` query goes through it: one call, one round trip). Also sums
    the wall time spent in each (lock wait included). Falls back to the total only."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.counts: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        inner = getattr(store, "_q", None)
        self.attributed = callable(inner)
        if inner is not None and callable(inner):
            original: Callable[..., Awaitable[Any]] = inner

            async def counted(name: str, *args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await original(name, *args, **kwargs)
                finally:
                    self.counts[name] += 1
                    self.seconds[name] += time.perf_counter() - t0

            store._q = counted

    def reset(self) -> None:
        self.counts.clear()
        self.seconds.clear()


# Query names: fixed per run vs per block (markers and the cancel watch).
FIXED_QUERIES = ("put_snapshot", "create_run", "finalize", "append_note")


@dataclass
class RunSample:
    seconds: float
    round_trips: int = 0
    by_query: dict[str, int] = field(default_factory=dict)
    seconds_by_query: dict[str, float] = field(default_factory=dict)


async def run_once(runner: Any, workflow: Any, workload: str, n: int) -> RunSample:
    store = runner.store
    counter: QueryCounter | None = getattr(store, "_bench_counter", None)
    if counter is not None:
        counter.reset()
    before = store.round_trips if store is not None else 0
    t0 = time.perf_counter()
    report = await runner.run(workflow, None)
    elapsed = time.perf_counter() - t0
    if str(report.status.value) != "completed" or not expected_ok(workload, n, report.output):
        raise RuntimeError(f"run did not complete as expected: {report.status} {report.error}")
    if store is None:
        return RunSample(elapsed)
    return RunSample(
        elapsed,
        store.round_trips - before,
        dict(counter.counts) if counter else {},
        dict(counter.seconds) if counter else {},
    )


async def open_bench_store(url: str) -> Any:
    from flowtrail.store import open_store

    store = open_store(url)
    await store.open()
    await store.migrate()
    store._bench_counter = QueryCounter(store)  # type: ignore[attr-defined]
    return store


def make_runner(store: Any, url: str | None, max_concurrency: int) -> Any:
    from flowtrail.runner import Runner
    from flowtrail.settings import Settings

    settings = Settings(database_url=url or "sqlite:///unused.db", max_concurrency=max_concurrency)
    return Runner(settings, store)


def round_trip_summary(samples: Sequence[RunSample], n: int) -> dict[str, Any]:
    """Median per-run figures. ``per_block`` excludes the fixed per-run queries."""
    totals = [s.round_trips for s in samples]
    fixed = [sum(s.by_query.get(q, 0) for q in FIXED_QUERIES) for s in samples]
    names = sorted({q for s in samples for q in s.by_query})
    by_query = {q: median([s.by_query.get(q, 0) for s in samples]) for q in names}
    ms_by_query = {
        q: round(1000 * median([s.seconds_by_query.get(q, 0.0) for s in samples]), 3) for q in names
    }
    per_run_fixed = median(fixed)
    total = median(totals)
    return {
        "total_per_run": total,
        "fixed_per_run": per_run_fixed,
        "fixed_by_query": {q: by_query[q] for q in FIXED_QUERIES if q in by_query},
        "per_block": (total - per_run_fixed) / n,
        "by_query": by_query,
        "ms_in_query": ms_by_query,
    }


# Where the record-on time goes: (module, class, method, label). Nested entries (indented
# labels) are included in the entry above them. A name that no longer exists in src/ is
# skipped, so the breakdown degrades instead of failing when the code moves.
BREAKDOWN_POINTS = (
    ("flowtrail.store.sqlstore", "SqlStore", "put_snapshot", "store.put_snapshot (fixed)"),
    ("flowtrail.store.sqlstore", "SqlStore", "create_run", "store.create_run (fixed)"),
    ("flowtrail.diagnostics.recorder", "Recorder", "block_started", "Recorder.block_started"),
    ("flowtrail.diagnostics.recorder", "Recorder", "flush", "  Recorder.flush (waits)"),
    ("flowtrail.store.sqlstore", "SqlStore", "write_progress", "    store.write_progress"),
    ("flowtrail.diagnostics.recorder", "Recorder", "record", "Recorder.record"),
    ("flowtrail.diagnostics.spans", "SpanTree", "add", "SpanTree.add (in both above)"),
    ("flowtrail.diagnostics.finalize", "Finalizer", "finalize", "Finalizer.finalize (fixed)"),
    ("flowtrail.diagnostics.recorder", "Recorder", "drain", "  Recorder.drain"),
    ("flowtrail.diagnostics.finalize", "Finalizer", "_build", "  Finalizer._build (trace)"),
    ("flowtrail.store.sqlstore", "SqlStore", "finalize", "  store.finalize"),
)


class Breakdown:
    """Wall time and calls per instrumented method, by patching the classes (child
    processes only: one instrumented run after the timed ones, so the wrappers' own cost
    never reaches the reported timings)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.missing: list[str] = []

    def install(self) -> Breakdown:
        import importlib
        import inspect

        for module_name, cls_name, method, label in BREAKDOWN_POINTS:
            cls = getattr(importlib.import_module(module_name), cls_name, None)
            original = getattr(cls, method, None) if cls is not None else None
            if original is None:
                self.missing.append(f"{cls_name}.{method}")
                continue
            setattr(cls, method, self._wrap(original, label, inspect.iscoroutinefunction))
        return self

    def _wrap(self, original: Any, label: str, is_async: Callable[[Any], bool]) -> Any:
        import functools

        seconds, calls = self.seconds, self.calls
        if is_async(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    seconds[label] += time.perf_counter() - t0
                    calls[label] += 1

            return timed_async

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - t0
                calls[label] += 1

        return timed

    def summary(self, n: int) -> list[dict[str, Any]]:
        order = [label for *_, label in BREAKDOWN_POINTS if label in self.calls]
        return [
            {
                "what": label,
                "us_per_block": self.seconds[label] * 1e6 / n,
                "calls": self.calls[label],
                "us_per_call": self.seconds[label] * 1e6 / self.calls[label],
            }
            for label in order
        ]


# -- children --------------------------------------------------------------------------


def run_child(script: Path, spec: dict[str, Any], label: str) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter; its last stdout line is its JSON."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), "--scenario", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
        cwd=BENCH_DIR.parent,
    )
    took = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        note(f"  {label:<34} FAILED ({took:.1f}s)\n{tail}")
        return {"error": tail or f"exit code {proc.returncode}"}
    note(f"  {label:<34} {took:5.1f}s")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def emit_child(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


# -- output ----------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *[line(r) for r in cells[1:]]])


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def machine() -> dict[str, Any]:
    import platform

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_main(
    args: Any,
    scenario: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    run_all: Callable[[Any], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """The shared ``main``: a child interpreter runs one scenario; the parent runs them
    all and prints the table (or JSON). Non-zero when a scenario failed."""
    if args.scenario:
        emit_child(asyncio.run(scenario(json.loads(args.scenario))))
        return 0
    report = run_all(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if any("error" in v for v in report["scenarios"].values()) else 0
