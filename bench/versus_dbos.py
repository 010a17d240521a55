"""flowtrail against DBOS, as whole processes: the marginal cost of one more sync step.

Both engines run the same workload, a chain of N trivial sync steps that each add one to
the previous result, as one whole process per run, on the same machine in the same
invocation:

  flowtrail  ``python -m flowtrail run chain-N.yaml --db URL --quiet --json``: the chain
             ``start -> b0 -> ... -> b{N-1}``, each ``call: bench_blocks:inc``
  DBOS       a small program (written into the temp dir, run with the Python of its own
             virtual environment): a ``@DBOS.workflow()`` calling a ``@DBOS.step()``
             ``inc(x)`` N times; ``DBOS.launch()``, run, print the result, ``DBOS.destroy()``

  marginal = (t(--large) - t(--small)) / (large - small), microseconds per block or step

where each t is a process's wall time (start to exit), the median of --repeat runs after
one untimed warm-up per engine and backend. Also reported: a 10-block run's whole-process
time (start-up included), each process's peak RSS, and flowtrail's SQLite figures while
every core is kept busy by a spinning process. DBOS is installed (``dbos>=3,<4``) into its
own virtual environment, never into the project's. Targets (DBOS / flowtrail marginal) are
only printed as MET or MISSED.

    .venv/bin/python bench/versus_dbos.py [--repeat 3] [--small 100] [--large 1000]
        [--backends sqlite,postgres] [--require-postgres] [--pg-url URL] [--json]
        [--skip-dbos] [--dbos-venv PATH] [--no-busy]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import _harness as h

COLD_BLOCKS = 10
# DBOS / flowtrail marginal cost per block: at least this many times.
TARGETS = {"sqlite": 10.0, "postgres": 7.0}
DBOS_REQUIREMENT = "dbos>=3,<4"
# DBOS's notification_listener_polling_interval_sec (its default is 1.0): see DBOS_PROGRAM.
DBOS_POLL_S = 0.01
# Variables that would point the DBOS interpreter at the project's packages.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")

DBOS_PROGRAM = '''\
"""The DBOS side of bench/versus_dbos.py: one workflow of N sequential sync steps."""

import sys

from dbos import DBOS, DBOSConfig


@DBOS.step()
def inc(x: int) -> int:
    return x + 1


@DBOS.workflow()
def chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


def main() -> None:
    n, url, poll_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    config: DBOSConfig = {
        "name": "flowtrail-bench",
        "system_database_url": url,
        "log_level": "WARNING",
        # On SQLite a thread polls for notifications, sleeping this long between polls,
        # and DBOS.destroy() joins it: with the default 1.0 s the process's exit waits
        # for the sleep to end, so its wall time is rounded up by 0-1 s.
        "notification_listener_polling_interval_sec": poll_s,
    }
    DBOS(config=config)
    DBOS.launch()
    print(chain(n), flush=True)
    DBOS.destroy()


if __name__ == "__main__":
    main()
'''


# -- the spawner: starts and reaps every timed process --------------------------------


def _vm_hwm_kib() -> int:
    return round(h.peak_rss_mb() * 1024)


def _spawn(request: dict[str, Any]) -> dict[str, Any]:
    """Run one process to its end: wall time from just before ``Popen`` to ``wait4``'s
    return, and the child's ``ru_maxrss`` (KiB on Linux) from ``wait4``."""
    timed_out = threading.Event()
    with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            request["argv"],
            cwd=request["cwd"],
            env=request["env"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(request["timeout"], kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return {
        "seconds": seconds,
        "returncode": proc.returncode,
        "timed_out": timed_out.is_set(),
        "peak_rss_kib": usage.ru_maxrss,
        "spawner_peak_rss_kib": _vm_hwm_kib(),
    }


def _serve(requests: IO[str], results: IO[str]) -> None:
    for line in requests:
        try:
            result = _spawn(json.loads(line))
        except Exception as exc:
            result = {"failed": f"{type(exc).__name__}: {exc}"}
        results.write(json.dumps(result) + "\n")
        results.flush()


@dataclass
class Spawned:
    seconds: float
    returncode: int
    timed_out: bool
    peak_rss_kib: int
    spawner_peak_rss_kib: int


class Spawner:
    """A small process, forked from this script before psycopg and flowtrail are
    imported, that starts each timed process and reaps it with ``os.wait4``.

    On Linux a child's ``ru_maxrss`` starts at the peak RSS of the process that started
    it (``exec`` carries the old address space's high-water mark over), so a child of
    the bench itself, ~50 MiB once psycopg and flowtrail are loaded, could never report
    less than that. The spawner's own peak (``rss_floor_mb`` in the report)
    is the floor instead (~18 MiB), below any Python process that imports either engine."""

    def __init__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the spawner: serve until the bench closes the pipe
            code = 1
            try:
                os.close(req_w)
                os.close(res_r)
                with os.fdopen(req_r, "r") as requests, os.fdopen(res_w, "w") as results:
                    _serve(requests, results)
                code = 0
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(res_w)
        self.pid = pid
        self._requests = os.fdopen(req_w, "w")
        self._results = os.fdopen(res_r, "r")
        self.floor_kib = 0

    def run(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], stdout: Path, stderr: Path
    ) -> Spawned:
        request = {
            "argv": argv,
            "cwd": str(cwd),
            "env": env,
            "stdout": str(stdout),
            "stderr": str(stderr),
            "timeout": h.SCENARIO_TIMEOUT_S,
        }
        self._requests.write(json.dumps(request) + "\n")
        self._requests.flush()
        line = self._results.readline()
        if not line:
            raise RuntimeError("the spawner process exited")
        result = json.loads(line)
        if "failed" in result:
            raise RuntimeError(f"could not start {argv[0]}: {result['failed']}")
        spawned = Spawned(**result)
        self.floor_kib = max(self.floor_kib, spawned.spawner_peak_rss_kib)
        return spawned

    def close(self) -> None:
        self._requests.close()  # end of file: the spawner exits
        self._results.close()
        os.waitpid(self.pid, 0)


# -- the two engines --------------------------------------------------------------------


@dataclass
class Contender:
    """One engine on one backend: how to start a run of N blocks and how to tell that
    it computed N."""

    key: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    check: Callable[[int, str], str | None]


@dataclass
class Workdir:
    """The temp dir's files: one workflow file per chain length, ``bench_blocks.py``
    beside them (``call:`` modules import relative to the workflow file's folder), the
    DBOS program, a fresh SQLite file per run, and each run's captured output."""

    root: Path
    _count: int = 0

    def __post_init__(self) -> None:
        shutil.copy(h.BENCH_DIR / "bench_blocks.py", self.root / "bench_blocks.py")
        (self.root / "dbos_chain.py").write_text(DBOS_PROGRAM, encoding="utf-8")

    def workflow(self, n: int) -> Path:
        import yaml

        path = self.root / f"chain-{n}.yaml"
        if not path.exists():
            text = yaml.safe_dump(h.chain_definition(n, "sync"), sort_keys=False)
            path.write_text(text, encoding="utf-8")
        return path

    def sqlite_url(self, engine: str) -> str:
        self._count += 1
        return f"sqlite:///{(self.root / f'{engine}{self._count}.sqlite').as_posix()}"


def flowtrail_contender(work: Workdir, backend: str, pg_url: str | None, key: str) -> Contender:
    def argv(n: int) -> list[str]:
        url = work.sqlite_url("flowtrail") if backend == "sqlite" else pg_url
        assert url is not None
        path = str(work.workflow(n))
        return [sys.executable, "-m", "flowtrail", "run", path, "--db", url, "--quiet", "--json"]

    def check(n: int, stdout: str) -> str | None:
        try:
            report = json.loads(stdout)
        except ValueError:
            return f"stdout is not the run's JSON: {stdout[:200]!r}"
        status, output = report.get("status"), report.get("output")
        if status != "completed" or not h.expected_ok("chain", n, output):
            return f"status {status!r}, output {output!r}"
        return None

    return Contender(key, argv, dict(os.environ), check)


def dbos_contender(
    work: Workdir, backend: str, python: Path, pg_url: str | None, poll_s: float, key: str
) -> Contender:
    def argv(n: int) -> list[str]:
        url = work.sqlite_url("dbos") if backend == "sqlite" else pg_url
        assert url is not None
        return [str(python), str(work.root / "dbos_chain.py"), str(n), url, repr(poll_s)]

    def check(n: int, stdout: str) -> str | None:
        lines = stdout.strip().splitlines()
        if not lines or lines[-1].strip() != str(n):
            return f"printed {lines[-1] if lines else 'nothing'!r}, expected {n}"
        return None

    return Contender(key, argv, _dbos_env(), check)


def _dbos_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}


# -- DBOS's own virtual environment ----------------------------------------------------


def default_dbos_venv() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "flowtrail-bench" / "dbos-venv"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _installed_dbos(python: Path) -> dict[str, str] | None:
    """The venv's DBOS and Python versions, or None when ``import dbos`` fails there."""
    if not python.exists():
        return None
    probe = (
        "import json, platform, importlib.metadata as m, dbos; "
        "print(json.dumps({'dbos': m.version('dbos'), 'python': platform.python_version()}))"
    )
    proc = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, env=_dbos_env(), check=False
    )
    if proc.returncode != 0:
        return None
    found: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def ensure_dbos(venv: Path) -> tuple[Path, dict[str, str]]:
    """Reuse ``venv`` when DBOS 3 imports there; otherwise create it (``python -m venv``
    with this interpreter) and ``pip install 'dbos>=3,<4'`` into it."""
    python = _venv_python(venv)
    found = _installed_dbos(python)
    if found is not None and found["dbos"].split(".")[0] == "3":
        h.note(f"DBOS {found['dbos']} (Python {found['python']}) from {venv}")
        return python, found
    h.note(f"installing {DBOS_REQUIREMENT} into {venv} (its own virtual environment) ...")
    if not python.exists() or subprocess.run([str(python), "-c", ""], check=False).returncode:
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         DBOS_REQUIREMENT],
        check=True, env=_dbos_env(), stdout=sys.stderr,
    )  # fmt: skip
    found = _installed_dbos(python)
    if found is None:
        raise SystemExit(f"DBOS does not import in {venv} after installing it")
    h.note(f"DBOS {found['dbos']} (Python {found['python']}) installed")
    return python, found


@contextmanager
def dbos_pg_database(base_url: str) -> Iterator[str]:
    """DBOS's own scratch database ``dbos_bench_<pid>_<hex>`` (DBOS migrates it on its
    first launch), dropped on the way out: its tables never meet flowtrail's."""
    import psycopg
    from psycopg import sql

    name = f"dbos_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield h._pg_url_for(base_url, name)
        finally:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


@contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """``n`` processes spinning ``while True: pass``, killed on the way out."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        time.sleep(0.2)  # let them start spinning
        yield
    finally:
        for proc in burners:
            proc.kill()
        for proc in burners:
            proc.wait()


# -- measuring -------------------------------------------------------------------------


@dataclass
class Tally:
    seconds: dict[int, list[float]] = field(default_factory=dict)
    rss_mb: dict[int, list[float]] = field(default_factory=dict)
    warmup_s: float | None = None
    error: str | None = None


def _run_one(
    spawner: Spawner, work: Workdir, contender: Contender, n: int, label: str
) -> Spawned | str:
    """One process; its result, or what went wrong."""
    stdout, stderr = work.root / "stdout.txt", work.root / "stderr.txt"
    ran = spawner.run(
        contender.argv(n), cwd=work.root, env=contender.env, stdout=stdout, stderr=stderr
    )
    problem: str | None
    if ran.timed_out:
        problem = f"timed out after {h.SCENARIO_TIMEOUT_S} s"
    elif ran.returncode != 0:
        problem = f"exit code {ran.returncode}"
    else:
        problem = contender.check(n, stdout.read_text(encoding="utf-8", errors="replace"))
    rss = ran.peak_rss_kib / 1024
    if problem is not None:
        tail = stderr.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-8:]
        detail = problem + "".join(f"\n    {line}" for line in tail)
        h.note(f"  {label:<40} FAILED ({ran.seconds:.2f} s): {detail}")
        return f"{label}: {detail}"
    h.note(f"  {label:<40} {ran.seconds:7.3f} s  {rss:6.1f} MiB")
    return ran


def measure(
    spawner: Spawner,
    work: Workdir,
    contenders: list[Contender],
    sizes: list[int],
    repeat: int,
) -> dict[str, Tally]:
    """One untimed warm-up run per contender (the smallest size), then ``repeat`` rounds;
    each round runs every size, and each size every contender in turn, so slow drift on
    a shared machine lands on both engines alike."""
    tallies = {c.key: Tally({n: [] for n in sizes}, {n: [] for n in sizes}) for c in contenders}
    for c in contenders:
        ran = _run_one(spawner, work, c, sizes[0], f"{c.key} n={sizes[0]} warm-up")
        if isinstance(ran, str):
            tallies[c.key].error = ran
        else:
            tallies[c.key].warmup_s = ran.seconds
    for r in range(repeat):
        for n in sizes:
            for c in contenders:
                tally = tallies[c.key]
                if tally.error is not None:
                    continue
                ran = _run_one(spawner, work, c, n, f"{c.key} n={n} #{r + 1}")
                if isinstance(ran, str):
                    tally.error = ran
                else:
                    tally.seconds[n].append(ran.seconds)
                    tally.rss_mb[n].append(ran.peak_rss_kib / 1024)
    return tallies


def summarize(tally: Tally, small: int, large: int) -> dict[str, Any]:
    if tally.error is not None:
        return {"error": tally.error}
    seconds = {n: h.median(v) for n, v in tally.seconds.items()}
    marginal_s = (seconds[large] - seconds[small]) / (large - small)
    return {
        "marginal_us": marginal_s * 1e6,
        # The line through both points, at zero blocks: start-up, migrations, shutdown.
        "fixed_s": seconds[small] - small * marginal_s,
        "seconds": {str(n): s for n, s in seconds.items()},
        "cold_start_s": seconds.get(COLD_BLOCKS),
        "peak_rss_mb": {str(n): h.median(v) for n, v in tally.rss_mb.items()},
        "samples_s": {str(n): v for n, v in tally.seconds.items()},
        "warmup_s": tally.warmup_s,
    }


# -- parent ----------------------------------------------------------------------------


def _flowtrail_source() -> dict[str, Any]:
    """Which flowtrail the runs import (the children inherit this environment)."""
    import flowtrail

    folder = Path(flowtrail.__file__).resolve().parent
    git = subprocess.run(
        ["git", "-C", str(folder), "log", "-1", "--format=%h"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    dirty = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no", "."],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {
        "source": str(folder),
        "commit": git.stdout.strip() or None,
        "modified": bool(dirty.stdout.strip()) if git.returncode == 0 else None,
    }


def run_all(args: argparse.Namespace, spawner: Spawner) -> dict[str, Any]:
    backends = h.backends_from(args)
    small, large = args.small, args.large
    sizes = sorted({COLD_BLOCKS, small, large})
    results: dict[str, dict[str, Any]] = {}
    dbos: dict[str, Any] | None = None
    with h.databases(backends, args.pg_url, args.require_postgres) as dbs:
        work = Workdir(dbs.tmpdir)
        for n in sizes:
            work.workflow(n)
        dbos_python: Path | None = None
        if not args.skip_dbos:
            venv = Path(args.dbos_venv).expanduser() if args.dbos_venv else default_dbos_venv()
            dbos_python, found = ensure_dbos(venv)
            dbos = {
                "version": found["dbos"],
                "python": found["python"],
                "venv": str(venv),
                "notification_listener_polling_interval_sec": args.dbos_poll_interval,
            }
        h.note(
            f"versus DBOS: chains of {sizes} sync blocks, median of {args.repeat}, "
            f"backends {backends}"
        )
        for backend in backends:
            with ExitStack() as stack:
                dbos_pg_url = (
                    stack.enter_context(dbos_pg_database(args.pg_url))
                    if backend == "postgres" and dbos_python is not None
                    else None
                )
                contenders = [
                    flowtrail_contender(work, backend, dbs.pg_url, f"{backend}/flowtrail")
                ]
                if dbos_python is not None:
                    key = f"{backend}/dbos"
                    contenders.append(
                        dbos_contender(
                            work, backend, dbos_python, dbos_pg_url, args.dbos_poll_interval, key
                        )
                    )
                tallies = measure(spawner, work, contenders, sizes, args.repeat)
            for key, tally in tallies.items():
                results[key] = summarize(tally, small, large)
        if "sqlite" in backends and not args.no_busy:
            cores = os.cpu_count() or 2
            h.note(f"flowtrail on SQLite again, {cores} processes spinning (every core busy):")
            busy = flowtrail_contender(work, "sqlite", None, "sqlite/flowtrail/busy")
            with busy_cores(cores):
                tallies = measure(spawner, work, [busy], sorted({small, large}), args.repeat)
            results[busy.key] = summarize(tallies[busy.key], small, large) | {"busy": cores}
        notes = list(dbs.notes)
    ratios: dict[str, float | None] = {}
    targets = []
    for backend in backends:
        ft = results.get(f"{backend}/flowtrail", {}).get("marginal_us")
        other = results.get(f"{backend}/dbos", {}).get("marginal_us")
        ratio = other / ft if ft is not None and other is not None and ft > 0 else None
        ratios[backend] = ratio
        limit = TARGETS[backend]
        targets.append(
            {
                "target": f"{backend}: DBOS / flowtrail marginal cost per block >= {limit:g}",
                "backend": backend,
                "value": ratio,
                "limit": limit,
                "met": None if ratio is None else ratio >= limit,
            }
        )
    return {
        "benchmark": "versus_dbos",
        "machine": h.machine(),
        "config": {
            "small": small,
            "large": large,
            "cold_blocks": COLD_BLOCKS,
            "repeat": args.repeat,
            "backends": backends,
            "busy": not args.no_busy and "sqlite" in backends,
            "flowtrail": _flowtrail_source(),
            "dbos": dbos,
            "rss_floor_mb": spawner.floor_kib / 1024,
            "unit": "seconds per whole process (median); marginal_us: microseconds per "
            "block or step; RSS in MiB",
        },
        "notes": notes,
        "scenarios": results,
        "ratios": ratios,
        "targets": targets,
    }


def render(report: dict[str, Any]) -> str:
    cfg, res = report["config"], report["scenarios"]
    small, large, cold = cfg["small"], cfg["large"], cfg["cold_blocks"]
    dbos = cfg["dbos"]
    ft = cfg["flowtrail"]
    out = [
        f"flowtrail vs DBOS, whole processes: a chain of N trivial sync steps, median of "
        f"{cfg['repeat']} runs per size after one warm-up, {report['machine']['cpus']} cores, "
        f"Python {report['machine']['python']}",
        f"flowtrail {ft['commit'] or '(no git)'}{' (modified)' if ft['modified'] else ''}; "
        + (f"DBOS {dbos['version']} (Python {dbos['python']})" if dbos else "DBOS skipped"),
        *report["notes"],
        "",
        f"Whole-process wall time (s); marginal = (t({large}) - t({small})) / {large - small} "
        "(us per block or step); fixed = the same line at 0 blocks; peak RSS (MiB):",
    ]
    headers = ["engine, backend", f"t({cold})", f"t({small})", f"t({large})", "marginal us",
               "fixed s", f"RSS({cold})", f"RSS({large})"]  # fmt: skip
    rows = []
    for key, r in res.items():
        backend, engine, *busy = key.split("/")
        name = {"flowtrail": "flowtrail", "dbos": "DBOS"}[engine] + f" {backend}"
        if busy:
            name += f", {r.get('busy', 'all')} cores busy"
        if "error" in r:
            rows.append([name, "FAILED", "", "", "", "", "", ""])
            continue
        t, rss = r["seconds"], r["peak_rss_mb"]
        rows.append(
            [
                name,
                h.fmt(t.get(str(cold)), 3),
                h.fmt(t.get(str(small)), 3),
                h.fmt(t.get(str(large)), 3),
                h.fmt(r["marginal_us"]),
                h.fmt(r["fixed_s"], 3),
                h.fmt(rss.get(str(cold))),
                h.fmt(rss.get(str(large))),
            ]
        )
    out.append(h.table(headers, rows))
    ratios = [f"{b} {h.fmt(v, 2)}" for b, v in report["ratios"].items()]
    out += ["", f"DBOS / flowtrail, marginal cost per block: {', '.join(ratios)}"]
    out += ["", "Targets:"]
    for t in report["targets"]:
        out.append(f"  [{h.verdict(t['met']):>6}] {t['target']}: {h.fmt(t['value'], 2)}")
    errors = [k for k, v in res.items() if "error" in v]
    if errors:
        out += ["", f"FAILED: {', '.join(errors)}"]
        out += [f"  {res[k]['error']}" for k in errors]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per size; the median is reported")
    p.add_argument("--small", type=int, default=100, help="blocks in the short chain (100)")
    p.add_argument("--large", type=int, default=1000, help="blocks in the long chain (1000)")
    p.add_argument("--backends", default=",".join(h.ALL_BACKENDS), help="sqlite,postgres")
    p.add_argument("--require-postgres", action="store_true", help="fail without PostgreSQL")
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL, help="server for the scratch databases")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--skip-dbos", action="store_true", help="flowtrail only (no DBOS venv)")
    p.add_argument(
        "--dbos-venv",
        metavar="PATH",
        help="DBOS's virtual environment, created if DBOS 3 does not import there "
        "(default $XDG_CACHE_HOME/flowtrail-bench/dbos-venv, or ~/.cache/...)",
    )
    p.add_argument(
        "--dbos-poll-interval",
        type=float,
        default=DBOS_POLL_S,
        metavar="S",
        help="DBOS's notification_listener_polling_interval_sec (default 0.01; DBOS's own "
        "default 1.0 makes a SQLite process's exit wait up to 1 s for the poller)",
    )
    p.add_argument(
        "--no-busy", action="store_true", help="leave out the SQLite row with every core busy"
    )
    args = p.parse_args()
    if args.repeat < 1 or args.small < 1 or args.large <= args.small:
        p.error("need --repeat >= 1 and 1 <= --small < --large")
    spawner = Spawner()  # before psycopg and flowtrail are imported: see Spawner
    try:
        report = run_all(args, spawner)
    finally:
        spawner.close()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if any("error" in v for v in report["scenarios"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
