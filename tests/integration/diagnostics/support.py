"""Helpers for the durable-record tests: real workflows, real databases, real faults.

Nothing here mocks the database. Faults are caused for real: triggers installed through a
second connection reject chosen updates, a subclass of the real store class adds latency,
function blocks return values the strict JSON encoder refuses.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sqlite3
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

from flowtrail.diagnostics.finalize import Finalizer
from flowtrail.diagnostics.masking import Masker
from flowtrail.diagnostics.recorder import Recorder
from flowtrail.model.compile import compile_definition, compile_file
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.graph import Workflow
from flowtrail.model.imports import load_module
from flowtrail.status import RunStatus
from flowtrail.store import Finalization, FinalizeOutcome, NewRun, ProgressWrite, SqlStore
from flowtrail.store import open_store as _open_store
from flowtrail.store.records import RunRecord
from flowtrail.store.sqlite import sqlite_path

MODULE_TOKEN = "FNS"  # replaced by the unique name of the test's function module


# -- workflows ----------------------------------------------------------------------------


@dataclass
class Flow:
    workflow: Workflow
    module: ModuleType
    folder: Path


def _substitute(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return value.replace(f"{MODULE_TOKEN}:", f"{name}:")
    if isinstance(value, dict):
        return {k: _substitute(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, name) for v in value]
    return value


def write_module(folder: Path, code: str) -> str:
    """Write a function module with a name no other test uses and return that name."""
    name = f"ftdiag_{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    importlib.invalidate_caches()
    return name


def make_flow(folder: Path, definition: dict[str, Any], code: str) -> Flow:
    """Compile ``definition`` (a dict in the YAML's shape) whose ``call: FNS:fn`` name
    functions in ``code``, a module written beside the workflow."""
    name = write_module(folder, code)
    wf = compile_definition(
        WorkflowDefinition.model_validate(_substitute(definition, name)),
        source=folder / f"{name}.yaml",
    )
    return Flow(wf, load_module(name, folder), folder)


def make_yaml_flow(folder: Path, files: dict[str, str], code: str, main: str) -> Flow:
    """Write YAML files (``FNS:`` replaced) and a module beside them; compile ``main``."""
    name = write_module(folder, code)
    for filename, text in files.items():
        (folder / filename).write_text(
            textwrap.dedent(text).replace(f"{MODULE_TOKEN}:", f"{name}:"), encoding="utf-8"
        )
    return Flow(compile_file(folder / main), load_module(name, folder), folder)


# -- stores -------------------------------------------------------------------------------


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:") else "postgres"


async def open_store(url: str) -> SqlStore:
    store = _open_store(url)
    await store.open()
    return store


class RecordingMixin:
    """Mixed into the real store class: logs each marker write and terminal write, in the
    order they happen, optionally after a real delay (the database itself is untouched)."""

    progress_delay: float = 0.0
    events: list[tuple[str, Any]]

    async def write_progress(self, run_id: str, write: ProgressWrite) -> bool:
        self.events.append(("progress-begin", write))
        if self.progress_delay:
            await asyncio.sleep(self.progress_delay)
        try:
            return await super().write_progress(run_id, write)  # type: ignore[misc]
        finally:
            self.events.append(("progress-end", write))

    def write_progress_now(self, run_id: str, write: ProgressWrite) -> bool | None:
        if self.progress_delay:
            return None  # a delayed write must be awaited
        self.events.append(("progress-begin", write))
        done = super().write_progress_now(run_id, write)  # type: ignore[misc]
        if done is None:  # not written: the awaited write logs itself
            self.events.pop()
        else:
            self.events.append(("progress-end", write))
        return done  # type: ignore[no-any-return]

    async def finalize(self, run_id: str, fin: Finalization) -> FinalizeOutcome:
        self.events.append(("finalize-begin", fin))
        try:
            return await super().finalize(run_id, fin)  # type: ignore[misc]
        finally:
            self.events.append(("finalize-end", fin))

    # -- reading the log --
    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def progress_writes(self) -> list[ProgressWrite]:
        return [w for kind, w in self.events if kind == "progress-end"]


def recording_store(url: str, delay: float = 0.0) -> Any:
    """An unopened instance of a subclass of the real store class for ``url``."""
    base = type(_open_store(url))
    cls = type(f"Recording{base.__name__}", (RecordingMixin, base), {})
    store = cls(url)
    store.progress_delay = delay
    store.events = []
    return store


# -- faults: triggers installed through a second, plain driver connection ------------------


def _sqlite_exec(url: str, statements: list[str]) -> None:
    conn = sqlite3.connect(sqlite_path(url), timeout=10)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def execute_sql(url: str, statements: list[str]) -> None:
    if backend_of(url) == "sqlite":
        await asyncio.to_thread(_sqlite_exec, url, statements)
        return
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for statement in statements:
            await conn.execute(statement)


async def add_reject_trigger(
    url: str, name: str, sqlite_condition: str, postgres_condition: str | None = None
) -> None:
    """Make the database refuse every UPDATE of a run row for which the condition (over
    ``NEW``) holds, with an error whose text contains ``injected``."""
    if backend_of(url) == "sqlite":
        await execute_sql(
            url,
            [
                f"CREATE TRIGGER {name} BEFORE UPDATE ON workflow_execution_logs "
                f"WHEN {sqlite_condition} "
                f"BEGIN SELECT RAISE(ABORT, 'injected by {name}'); END;"
            ],
        )
        return
    condition = postgres_condition or sqlite_condition
    await execute_sql(
        url,
        [
            f"CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF {condition} THEN RAISE EXCEPTION 'injected by {name}'; END IF; "
            "RETURN NEW; END $$",
            f"CREATE TRIGGER {name} BEFORE UPDATE ON workflow_execution_logs "
            f"FOR EACH ROW EXECUTE FUNCTION {name}_fn()",
        ],
    )


async def drop_trigger(url: str, name: str) -> None:
    if backend_of(url) == "sqlite":
        await execute_sql(url, [f"DROP TRIGGER {name}"])
    else:
        await execute_sql(
            url,
            [
                f"DROP TRIGGER {name} ON workflow_execution_logs",
                f"DROP FUNCTION {name}_fn()",
            ],
        )


async def add_oversize_trigger(url: str, name: str, limit: int) -> None:
    """The database refuses an ``execution_data`` document longer than ``limit``."""
    await add_reject_trigger(
        url,
        name,
        f"length(NEW.execution_data) > {limit}",
        f"length(NEW.execution_data::text) > {limit}",
    )


# -- spans --------------------------------------------------------------------------------


def walk(span: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    if span is None:
        return
    yield span
    for child in span.get("children", []):
        yield from walk(child)


def count_spans(span: dict[str, Any] | None) -> int:
    return sum(1 for _ in walk(span))


def spans_of(trace: dict[str, Any] | None, **match: Any) -> list[dict[str, Any]]:
    return [s for s in walk(trace) if all(s.get(k) == v for k, v in match.items())]


def one_span(trace: dict[str, Any] | None, **match: Any) -> dict[str, Any]:
    found = spans_of(trace, **match)
    assert len(found) == 1, f"expected one span matching {match}, found {len(found)}"
    return found[0]


def trace_of(rec: RunRecord) -> dict[str, Any] | None:
    data = rec.execution_data
    return data.get("trace") if isinstance(data, dict) else None


# -- waiting ------------------------------------------------------------------------------


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float = 5.0, every: float = 0.01
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(every)


async def wait_started(store: SqlStore, run_id: str, block_id: str, within: float = 5.0) -> None:
    """Until the row's start marker names ``block_id`` (read through ``store``)."""

    async def check() -> bool:
        marker = (await store.get_run(run_id)).last_started_block
        return marker is not None and marker.block_id == block_id

    await wait_for(check, within=within)


# -- a bare run row, a recorder and a finalizer (for the Finalizer's own contract) --------


@dataclass
class BareRun:
    run_id: str
    started_at: float
    recorder: Recorder
    finalizer: Finalizer
    masker: Masker = field(default_factory=lambda: Masker(()))


async def bare_run(store: SqlStore, *, workflow: str = "bare") -> BareRun:
    run_id = f"bare-{uuid.uuid4().hex}"
    started_at = time.time()
    await store.put_snapshot(f"hash-{workflow}", workflow, {"name": workflow})
    await store.create_run(
        NewRun(
            id=run_id,
            workflow_name=workflow,
            snapshot_hash=f"hash-{workflow}",
            status=RunStatus.RUNNING,
            trigger="test",
            started_at=datetime.fromtimestamp(started_at, UTC),
            input={},
        )
    )
    masker = Masker(())
    recorder = Recorder(store, run_id, workflow, started_at, masker=masker, cancel_poll_seconds=0)
    finalizer = Finalizer(recorder, run_id, started_at, masker=masker)
    return BareRun(run_id, started_at, recorder, finalizer, masker)


def record_text(rec: RunRecord) -> str:
    """Every stored column of a run, as one JSON text (for 'never contains' checks)."""
    from dataclasses import asdict

    return json.dumps(asdict(rec), default=str, ensure_ascii=False)
