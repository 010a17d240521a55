"""The ``Store`` behaviour, written once over named queries.

A backend subclass supplies only I/O: connecting, running one named query (counting
round trips and translating driver errors), a locked transaction for migrations, and how
timestamps and status lists are bound.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from flowtrail.errors import RunNotFoundError, RunStateError, StoreError
from flowtrail.status import (
    PATH_STATUS,
    RETRYABLE,
    FinalizationPath,
    RunStatus,
    can_transition,
    sources_for,
)
from flowtrail.store import common
from flowtrail.store.base import Store
from flowtrail.store.cursor import decode_cursor, encode_cursor
from flowtrail.store.migrate import MigrationTarget, apply_pending, discover
from flowtrail.store.queries import load_queries
from flowtrail.store.records import (
    CancelOutcome,
    Finalization,
    FinalizeOutcome,
    ForcedEnd,
    LeaseRenewal,
    NewRun,
    ProgressWrite,
    PruneBatch,
    QueueJob,
    QueueScan,
    QueueState,
    RunFilter,
    RunPage,
    RunQuery,
    RunRecord,
    StepRecord,
    SweepScan,
    Worker,
)
from flowtrail.store.schema import SchemaDescription

Row = dict[str, Any]

# Where prune's keyset starts: before every run.
_KEYSET_START = datetime(1, 1, 1, tzinfo=UTC)


class SqlStore(ABC):
    backend: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url
        self.round_trips = 0
        self._queries = load_queries(self.backend)
        # Serializes callers on the one connection, so a migration transaction is never
        # interleaved with another caller's statement.
        self._lock = asyncio.Lock()
        self._snapshots_stored: set[str] = set()
        self.progress_on_loop = True
        """A block running alone may write its progress on the event loop's thread
        (:meth:`write_progress_now`); off, every progress write is awaited."""

    # -- what a backend supplies -------------------------------------------------------

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _fetch(self, sql: str, params: Mapping[str, Any], *, hot: bool = False) -> list[Row]:
        """Run one statement, unlocked; count it; return its rows as dicts."""

    @abstractmethod
    async def _fetch_with_steps(
        self, name: str, params: Mapping[str, Any], steps: list[Row]
    ) -> list[Row]:
        """Run query ``name`` (``write_progress`` or ``finalize``, which return the run's
        ``lease_epoch`` when they applied) and upsert ``steps`` (``common.step_rows``)
        under that epoch, atomically, in one round trip; unlocked; counted once."""

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[None]:
        """A transaction on the store's one connection, holding the store's lock: the
        statements run inside it with ``_q_unlocked`` commit or roll back together."""

    @abstractmethod
    def _ts(self, value: Any) -> Any:
        """Bind a datetime (or None)."""

    @abstractmethod
    def _text_list(self, values: Iterable[str]) -> Any:
        """Bind a list of texts (statuses, run ids) for an ``IN``/``ANY`` test."""

    @abstractmethod
    def _param(self, name: str, sql_type: str) -> str:
        """The placeholder of parameter ``name`` (of PostgreSQL type ``sql_type``) in SQL
        composed here rather than read from ``queries.sql``."""

    @abstractmethod
    def _migration_target(self) -> MigrationTarget: ...

    # -- plumbing ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({common.redact_url(self.url)!r})"

    async def _q(
        self,
        name: str,
        params: Mapping[str, Any],
        *,
        hot: bool = False,
        steps: list[Row] | None = None,
    ) -> list[Row]:
        """One named query, one round trip; with ``steps``, they are upserted in the same
        round trip (``_fetch_with_steps``)."""
        async with self._lock:
            if steps is not None:
                return await self._fetch_with_steps(name, params, steps)
            return await self._fetch(self._queries[name], params, hot=hot)

    async def _q_unlocked(self, name: str, params: Mapping[str, Any]) -> list[Row]:
        return await self._fetch(self._queries[name], params)

    # -- schema ------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        migrations, target = discover(self.backend), self._migration_target()
        # Every CLI process migrates on start: when nothing is pending, skip the lock
        # (SQLite's is the database write lock) instead of queueing behind the others.
        async with self._lock:
            applied = await target.applied_versions()
        if all(m.version in applied for m in migrations):
            return []
        return await apply_pending(target, migrations)

    async def pending_migrations(self) -> list[str]:
        """Versions shipped with this package that the database has not applied yet."""
        current = await self.schema_version()
        return [m.version for m in discover(self.backend) if current is None or m.version > current]

    async def schema_version(self) -> str | None:
        async with self._lock:
            present = await self._q_unlocked("migrations_table_exists", {})
            if not present[0]["present"]:
                return None
            rows = await self._q_unlocked("applied_versions", {})
        return str(rows[-1]["version"]) if rows else None

    async def describe_schema(self) -> SchemaDescription:
        """Tables and columns as the database reports them (see ``schema.py``)."""
        described: SchemaDescription = {}
        for row in await self._q("describe_schema", {}):
            table = described.setdefault(row["table_name"], {})
            table[row["column_name"]] = (str(row["data_type"]).lower(), not row["not_null"])
        return described

    # -- snapshots ---------------------------------------------------------------------

    async def put_snapshot(self, definition_hash: str, name: str, definition: Any) -> None:
        # A snapshot is immutable (its hash is its content): once this store has written
        # one, runs started from the same workflow neither encode nor send it again.
        if definition_hash in self._snapshots_stored:
            return
        params = {
            "definition_hash": definition_hash,
            "workflow_name": name,
            "definition": common.encode_json(definition, "definition"),
            "now": self._ts(common.utcnow()),
        }
        await self._q("put_snapshot", params)
        self._snapshots_stored.add(definition_hash)

    async def get_snapshot(self, definition_hash: str) -> Any | None:
        rows = await self._q("get_snapshot", {"definition_hash": definition_hash})
        return common.decode_json(rows[0]["definition"]) if rows else None

    # -- runs --------------------------------------------------------------------------

    async def create_run(self, run: NewRun) -> None:
        await self._q("create_run", common.new_run_params(run, common.utcnow(), self._ts))

    async def write_progress(self, run_id: str, write: ProgressWrite) -> bool:
        params = common.progress_params(run_id, write, common.utcnow(), self._ts)
        rows = await self._q("write_progress", params, steps=common.step_rows(write.steps))
        return self._stop_engine(rows)

    def write_progress_now(self, run_id: str, write: ProgressWrite) -> bool | None:
        """:meth:`write_progress` done before returning, on the event loop's thread, where
        the backend can do it now (see its ``_progress_now``); ``None``: nothing was
        written (switched off, another caller holds the store, the backend cannot right
        now), await :meth:`write_progress`."""
        if not self.progress_on_loop or self._lock.locked():
            return None
        params = common.progress_params(run_id, write, common.utcnow(), self._ts)
        rows = self._progress_now(params, common.step_rows(write.steps))
        return None if rows is None else self._stop_engine(rows)

    def _progress_now(self, params: Mapping[str, Any], steps: list[Row]) -> list[Row] | None:
        """The backend's blocking progress write (the rows ``write_progress`` returns), or
        ``None`` when it cannot make it now. None here: always the awaited way."""
        return None

    @staticmethod
    def _stop_engine(rows: list[Row]) -> bool:
        # No row: the run is no longer running (someone else ended it), so stop too.
        return not rows or rows[0]["cancel_requested_at"] is not None

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        rows = await self._q("list_steps", {"id": run_id})
        return [common.row_to_step(row) for row in rows]

    async def create_retry(self, run: NewRun) -> None:
        if run.retry_of is None:
            raise RunStateError("a retry names the run it retries (retry_of)")
        now = common.utcnow()
        link = {
            "id": run.retry_of,
            "retried_by": run.id,
            "now": self._ts(now),
            "retryable": self._text_list(RETRYABLE),
        }
        async with self._transaction():
            if not await self._q_unlocked("link_retry", link):
                status = await self._q_unlocked("get_run", {"id": run.retry_of})
                if not status:
                    raise self._not_found(run.retry_of)
                raise RunStateError(common.not_retryable(common.row_to_record(status[0])))
            await self._q_unlocked("create_run", common.new_run_params(run, now, self._ts))

    async def finalize(self, run_id: str, fin: Finalization) -> FinalizeOutcome:
        now = common.utcnow()
        sources = self._text_list(sources_for(fin.status))
        params = common.finalize_params(run_id, fin, now, self._ts, sources)
        if await self._q("finalize", params, steps=common.step_rows(fin.steps)):
            return FinalizeOutcome(True, fin.status, fin.path)
        # Lost the compare-and-set: keep the late result on the row instead of dropping it.
        note = common.late_result_note(fin, now)
        rows = await self._q("append_note", {"id": run_id, "note": note, "now": self._ts(now)})
        if not rows:
            raise self._not_found(run_id)
        status, path = common.status_and_path(rows[0])
        return FinalizeOutcome(False, status, path)

    async def add_note(self, run_id: str, note: Mapping[str, Any]) -> RunStatus:
        now = common.utcnow()
        params = {"id": run_id, "note": common.note_json(note, now), "now": self._ts(now)}
        rows = await self._q("append_note", params)
        if not rows:
            raise self._not_found(run_id)
        return RunStatus(rows[0]["status"])

    def _not_found(self, run_id: str) -> RunNotFoundError:
        return RunNotFoundError(run_id, common.redact_url(self.url))

    async def request_cancel(self, run_id: str, by: str) -> CancelOutcome:
        cancellable = sources_for(RunStatus.CANCELLED)
        params = {
            "id": run_id,
            "now": self._ts(common.utcnow()),
            "by": by,
            "cancelled": RunStatus.CANCELLED.value,
            "path": FinalizationPath.CANCELLED.value,
            "finalized_by": common.finalized_by_for(by),
            "output": common.CANCELLED_OUTPUT,
            "level": "info",
            "max_duration_ms": common.MAX_DURATION_MS,
            "request_from": self._text_list(cancellable),
            # A running run has an engine that sees the flag and finalizes itself; a
            # queued or paused one has none, so the request ends it here.
            "finalize_from": self._text_list(s for s in cancellable if s is not RunStatus.RUNNING),
        }
        rows = await self._q("request_cancel", params)
        if rows:
            status = RunStatus(rows[0]["status"])
            return CancelOutcome(
                status,
                requested=True,
                finalized=status.terminal,
                worker=common.row_worker(rows[0]),
            )
        found = await self._q("get_status", {"id": run_id})
        if not found:
            raise self._not_found(run_id)
        status = RunStatus(found[0]["status"])
        return CancelOutcome(status, False, False, worker=common.row_worker(found[0]))

    async def cancel_requested(self, run_id: str) -> bool:
        rows = await self._q("cancel_requested", {"id": run_id})
        if not rows:
            raise self._not_found(run_id)
        return bool(rows[0]["cancel_requested"])

    async def claim(self, run_id: str, worker: Worker, lease_seconds: float) -> RunRecord | None:
        if not can_transition(RunStatus.QUEUED, RunStatus.RUNNING):
            raise RunStateError("the transition table forbids queued -> running")
        params = common.claim_params(run_id, worker, common.utcnow(), lease_seconds, self._ts)
        rows = await self._q("claim", params)
        return common.row_to_record(rows[0]) if rows else None

    async def set_job_id(self, run_id: str, job_id: int) -> None:
        if not await self._q("set_job_id", {"id": run_id, "job_id": job_id}):
            raise self._not_found(run_id)

    async def renew_lease(
        self,
        run_id: str,
        epoch: int,
        lease_seconds: float,
        loop_lag_ms: int | None = None,
        loop_blocked_since: datetime | None = None,
    ) -> LeaseRenewal:
        params = common.lease_params(
            run_id,
            epoch,
            common.utcnow(),
            lease_seconds,
            self._ts,
            loop_lag_ms,
            loop_blocked_since,
        )
        return common.lease_renewal(await self._q("renew_lease", params))

    async def claim_resume(
        self, run_id: str, worker: Worker | None = None, lease_seconds: float = 60.0
    ) -> RunRecord:
        source, target = RunStatus.PAUSED, RunStatus.RUNNING
        if not can_transition(source, target):  # the table is the authority, not this code
            raise RunStateError(f"the transition table forbids {source} -> {target}")
        params = {
            "source": source.value,
            "target": target.value,
            **common.claim_params(run_id, worker, common.utcnow(), lease_seconds, self._ts),
        }
        rows = await self._q("claim_resume", params)
        if rows:
            return common.row_to_record(rows[0])
        status, _ = await self._current(run_id)
        if status is RunStatus.PAUSED:
            # A cancel was asked for while the run was pausing: honour it now.
            record = await self.get_run(run_id)
            await self.request_cancel(run_id, record.cancel_requested_by or "api")
            raise RunStateError(f"run {run_id} was cancelled while it paused; not resumed")
        raise RunStateError(f"run {run_id} is {status}, not paused")

    # -- the sweeper -------------------------------------------------------------------

    async def sweep_scan(
        self, now: datetime, cancel_before: datetime, limit: int = 500
    ) -> SweepScan:
        params = {
            "now": self._ts(now),
            "cancel_before": self._ts(cancel_before),
            "limit": max(0, limit),
        }
        found: dict[str, list[RunRecord]] = {
            "lease_expired": [],
            "cancel_overdue": [],
            "queue_expired": [],
        }
        for row in await self._q("sweep_scan", params):
            found[row["sweep_kind"]].append(common.row_to_record(row))
        return SweepScan(*(tuple(found[kind]) for kind in found))

    async def end_run(self, run_id: str, end: ForcedEnd) -> bool:
        if not can_transition(end.source, end.status):
            raise RunStateError(f"the transition table forbids {end.source} -> {end.status}")
        if PATH_STATUS[end.path] is not end.status:
            raise RunStateError(f"path {end.path} does not write status {end.status}")
        params = common.end_params(run_id, end, common.utcnow(), self._ts)
        return bool(await self._q("end_run", params))

    async def reconcile_scan(
        self, now: datetime, stalled_before: datetime, ended_before: datetime, limit: int = 500
    ) -> QueueScan | None:
        """No job queue here (SQLite): nothing to reconcile (PostgreSQL overrides this)."""
        return None

    async def cancel_job(self, job_id: int) -> bool:
        raise StoreError(f"there is no job queue in {common.redact_url(self.url)}")

    @asynccontextmanager
    async def sweeper_lock(self) -> AsyncIterator[bool]:
        """SQLite needs no lock across sweepers: every action is a compare-and-set, and
        the database's write lock serializes them (PostgreSQL overrides this)."""
        yield True

    async def get_run(self, run_id: str) -> RunRecord:
        rows = await self._q("get_run", {"id": run_id})
        if not rows:
            raise self._not_found(run_id)
        return common.row_to_record(rows[0])

    async def run_ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        rows = await self._q("run_ids_with_prefix", {"prefix": prefix, "limit": max(0, limit)})
        return [str(row["id"]) for row in rows]

    async def run_id_neighbours(self, run_id: str) -> tuple[str | None, str | None]:
        row = (await self._q("run_id_neighbours", {"id": run_id}))[0]
        return row["before"], row["after"]

    async def list_runs(self, filt: RunFilter) -> list[RunRecord]:
        params = {
            "status": None if filt.status is None else str(filt.status),
            "workflow_name": filt.workflow_name,
            "limit": max(0, filt.limit),
        }
        return [common.row_to_record(row) for row in await self._q("list_runs", params)]

    async def list_summaries(self, query: RunQuery) -> RunPage:
        """The run list: ``summary_select`` (the lean row) under the filters ``query``
        gives, newest first, one page plus one row (to know whether there is a next).
        Every filter is a plain column test beside an index ending in (started_at, id),
        so a page reads in index order and stops at ``limit``: several statuses are one
        such ordered scan each (``status = x`` on the status index), merged by a
        ``UNION ALL`` whose branches are each cut at the page size."""
        limit = max(0, query.limit)
        sql, params = self.summary_sql(query)
        async with self._lock:
            rows = await self._fetch(sql, params)
        records = [common.row_to_record(row) for row in rows[:limit]]
        more = len(rows) > limit and limit > 0
        last = records[-1] if records else None
        return RunPage(
            records,
            encode_cursor(last.started_at, last.id) if more and last is not None else None,
        )

    def summary_sql(self, query: RunQuery) -> tuple[str, dict[str, Any]]:
        """The statement ``list_summaries`` runs for ``query`` and its parameters (the
        plan tests EXPLAIN exactly this); ``BadCursorError`` for a cursor that does not
        decode."""
        limit = max(0, query.limit)
        p = self._param
        params: dict[str, Any] = {"limit": limit + 1}
        where: list[str] = []
        if query.workflow_name is not None:
            params["workflow_name"] = query.workflow_name
            where.append(f"workflow_name = {p('workflow_name', 'text')}")
        if query.trigger is not None:
            params["trigger"] = query.trigger
            where.append(f'"trigger" = {p("trigger", "text")}')
        if query.started_since is not None:
            params["since"] = self._ts(query.started_since)
            where.append(f"started_at >= {p('since', 'timestamptz')}")
        if query.started_until is not None:
            params["until"] = self._ts(query.started_until)
            where.append(f"started_at < {p('until', 'timestamptz')}")
        if query.min_duration_ms is not None:
            params["min_duration_ms"] = query.min_duration_ms
            where.append(f"duration_ms >= {p('min_duration_ms', 'bigint')}")
        if query.min_cost is not None:
            params["min_cost"] = float(query.min_cost)
            where.append(f"cost_total >= {p('min_cost', 'double precision')}")
        if query.has_error is True:
            where.append("(error_message IS NOT NULL OR error_block_id IS NOT NULL)")
        elif query.has_error is False:
            where.append("error_message IS NULL AND error_block_id IS NULL")
        if query.cursor is not None:
            after_started, after_id = decode_cursor(query.cursor)
            params["after_started"] = self._ts(after_started)
            params["after_id"] = after_id
            at, rid = p("after_started", "timestamptz"), p("after_id", "text")
            where.append(f"started_at <= {at} AND (started_at < {at} OR id < {rid})")
        order = f"ORDER BY started_at DESC, id DESC LIMIT {p('limit', 'bigint')}"
        select = self._queries["summary_select"]
        statuses = list(dict.fromkeys(str(s) for s in query.statuses))

        def branch(extra: list[str]) -> str:
            conds = extra + where
            return f"{select}\nWHERE {' AND '.join(conds)}" if conds else select

        if len(statuses) <= 1:
            extra = []
            if statuses:
                params["status_0"] = statuses[0]
                extra.append(f"status = {p('status_0', 'text')}")
            sql = f"{branch(extra)}\n{order}"
        else:
            parts = []
            for i, status in enumerate(statuses):
                params[f"status_{i}"] = status
                one = branch([f"status = {p(f'status_{i}', 'text')}"])
                parts.append(f"SELECT * FROM ({one}\n{order}) AS s{i}")
            sql = "\nUNION ALL\n".join(parts) + f"\n{order}"
        return sql, params

    # -- what "why is this run not moving?" reads -----------------------------------------

    async def queue_state(self, run: RunRecord, live_seconds: float) -> QueueState:
        params = {"id": run.id, "queue_name": run.queue_name, "queued_at": self._ts(run.queued_at)}
        ahead = int((await self._q("queued_ahead", params))[0]["ahead"])
        if not (await self._q("queue_workers_present", {}))[0]["present"]:
            return QueueState(ahead, None)
        rows = await self._q("live_queue_workers", {"seconds": live_seconds})
        job = None
        if run.job_id is not None:
            found = await self._q("queue_job", {"job_id": run.job_id})
            job = (
                QueueJob(
                    run.job_id, str(found[0]["status"]), common.parse_ts(found[0]["scheduled_at"])
                )
                if found
                else QueueJob(run.job_id, "absent")
            )
        return QueueState(ahead, int(rows[0]["live"]), job)

    async def running_steps(self, run_id: str, limit: int = 20) -> list[StepRecord]:
        rows = await self._q("running_steps", {"id": run_id, "limit": max(0, limit)})
        return [common.row_to_step(row) for row in rows]

    async def block_durations(
        self, workflow_name: str, block_id: str, *, exclude: str, runs: int = 20
    ) -> list[float]:
        params = {
            "workflow_name": workflow_name,
            "block_id": block_id,
            "id": exclude,
            "runs": max(0, runs),
        }
        durations = []
        for row in await self._q("block_durations", params):
            started, ended = common.parse_ts(row["started_at"]), common.parse_ts(row["ended_at"])
            if started is not None and ended is not None:
                durations.append(max(0.0, (ended - started).total_seconds()))
        return durations

    # -- retention -------------------------------------------------------------------

    async def prune_batch(
        self,
        before: datetime,
        statuses: Iterable[RunStatus],
        after: tuple[datetime, str] | None,
        limit: int,
        *,
        dry_run: bool,
        now: datetime,
    ) -> PruneBatch:
        wanted = [s for s in statuses if s.terminal]  # never a run that may still move
        params = {
            "before": self._ts(before),
            "after_started": self._ts(after[0] if after else _KEYSET_START),
            "after_id": after[1] if after else "",
            "statuses": self._text_list(wanted),
            "limit": max(1, limit),
        }
        stats: list[Row] = []
        if dry_run:
            found = await self._q("prune_candidates", params)
            ids = [row["id"] for row in found if row["ended_before"]]
            if ids:
                stats = await self._q("prune_step_stats", {"ids": self._text_list(ids)})
            return self._pruned(found, ids, stats)
        async with self._transaction():  # one batch, one short transaction
            found = await self._q_unlocked("prune_candidates", params)
            ids = [row["id"] for row in found if row["ended_before"]]
            if ids:
                change = {"ids": self._text_list(ids), "statuses": params["statuses"]}
                pruned = await self._q_unlocked("prune_runs", {**change, "now": self._ts(now)})
                ids = [row["id"] for row in pruned]
            if ids:
                stats = await self._q_unlocked("prune_step_stats", {"ids": self._text_list(ids)})
                await self._q_unlocked("prune_steps", {"ids": self._text_list(ids)})
        return self._pruned(found, ids, stats)

    @staticmethod
    def _pruned(found: list[Row], ids: list[str], stats: list[Row]) -> PruneBatch:
        chosen = set(ids)
        last = found[-1] if found else None
        started = common.parse_ts(last["started_at"]) if last else None
        return PruneBatch(
            runs=len(ids),
            steps=int(stats[0]["steps"]) if stats else 0,
            bytes=sum(int(row["doc_bytes"]) for row in found if row["id"] in chosen)
            + (int(stats[0]["doc_bytes"]) if stats else 0),
            last=None if last is None or started is None else (started, str(last["id"])),
        )

    async def database_size(self) -> int:
        """Bytes the runs take: the SQLite file's pages, or PostgreSQL's two tables with
        their indexes and TOAST."""
        return int((await self._q("database_size", {}))[0]["bytes"])

    async def reclaim_space(self) -> None:
        """Give the space freed by deletes back: SQLite rewrites the file (``VACUUM``,
        which holds the write lock while it runs) and truncates its WAL; PostgreSQL's
        plain ``VACUUM`` makes it reusable without blocking writers."""
        await self._q("reclaim_space", {})
        await self._q("checkpoint", {})

    async def _current(self, run_id: str) -> tuple[RunStatus, FinalizationPath | None]:
        rows = await self._q("get_status", {"id": run_id})
        if not rows:
            raise self._not_found(run_id)
        return common.status_and_path(rows[0])


def _conforms(store: SqlStore) -> Store:
    return store  # mypy proves here that every backend is a ``Store``
