"""Pure logic both backends share: JSON, timestamps, query parameters, row mapping.

Nothing here does I/O. A backend differs only in how a timestamp and a list of statuses
are bound (``TsEncoder`` and the ``statuses`` argument), everything else is the same.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flowtrail.errors import StoreError
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store.records import (
    CompletedMarker,
    Finalization,
    ForcedEnd,
    LeaseRenewal,
    NewRun,
    ProgressWrite,
    RunRecord,
    StartedMarker,
    StepRecord,
    StepWrite,
    Worker,
)

TsEncoder = Callable[[datetime | None], Any]

# A late result is kept as a note; its output only when it is small, so that a note
# can never be what makes a row too large.
NOTE_OUTPUT_LIMIT = 4096
NOTE_ERROR_LIMIT = 2000
# One bound for every stored duration (finalizer and cancel alike): the largest integer a
# JSON reader using doubles (JavaScript) still reads exactly.
MAX_DURATION_MS = 2**53
CANCELLED_OUTPUT = '{"cancelled":true}'


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware_utc(value: datetime) -> datetime:
    """Refuse naive datetimes: the two backends would read them differently."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"naive datetime {value.isoformat()} given to the store; use UTC")
    return value.astimezone(UTC)


def ts_datetime(value: datetime | None) -> datetime | None:
    return None if value is None else aware_utc(value)


def ts_text(value: datetime | None) -> str | None:
    """Fixed-width ISO-8601 UTC with microseconds: string order is time order."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # the engine's own timestamps: nothing to convert
        return value.isoformat(timespec="microseconds")
    return aware_utc(value).isoformat(timespec="microseconds")


def parse_ts(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# An escaped NUL preceded by an even number of backslashes (an odd number would make
# it the text "\\u0000", which is fine).
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def safe_text(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate (``"\\ud800"``, which Python strings can
    hold but UTF-8, SQLite and PostgreSQL cannot) becomes U+FFFD; a surrogate pair that
    arrived as two code points is joined into the one character it stands for."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def encode_json(value: Any, what: str) -> str | None:
    """Strict JSON: no NaN, no fallback for unknown objects. ``None`` stays SQL NULL.
    Lone surrogates are replaced (``safe_text``) rather than refused: they are the one
    flaw that is repaired here, because a repaired output is still the run's output."""
    if value is None:
        return None
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"{what} is not JSON-encodable: {exc}") from exc
    text = safe_text(text)
    # PostgreSQL's jsonb cannot hold U+0000; refuse it on both backends alike, before
    # any write, rather than only failing on one of them.
    if "\\u0000" in text and _NUL.search(text):
        raise StoreError(f"{what} is not JSON-encodable: it contains a NUL character (U+0000)")
    return text


def cost(value: float | None) -> float | None:
    """NaN would stick forever under GREATEST on PostgreSQL and fail NOT NULL on SQLite:
    treat it like "no new cost"."""
    return None if value is None or math.isnan(value) else float(value)


def decode_json(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8")
    return json.loads(value)


def level_for(fin: Finalization) -> str:
    if fin.level:
        return fin.level
    return "error" if fin.status in (RunStatus.FAILED, RunStatus.CRASHED) else "info"


def finalized_by_for(by: str) -> str:
    """``request_cancel`` takes free text; the column only takes ``FinalizedBy`` words."""
    return by if by in FinalizedBy._value2member_map_ else FinalizedBy.API.value


def marker_params(
    started: StartedMarker | None, completed: CompletedMarker | None, ts: TsEncoder
) -> dict[str, Any]:
    return {
        "started_at": ts(started.started_at) if started else None,
        "started_block_id": started.block_id if started else None,
        "started_block_name": started.block_name if started else None,
        "started_block_type": started.block_type if started else None,
        "completed_at": ts(completed.ended_at) if completed else None,
        "completed_block_id": completed.block_id if completed else None,
        "completed_block_name": completed.block_name if completed else None,
        "completed_block_type": completed.block_type if completed else None,
        "completed_success": completed.success if completed else None,
    }


def progress_params(
    run_id: str, write: ProgressWrite, now: datetime, ts: TsEncoder
) -> dict[str, Any]:
    return {
        "id": run_id,
        "now": ts(now),
        "epoch": write.epoch,
        "cost_total": cost(write.cost_total),
        "marker_write_failures": write.marker_write_failures,
        **marker_params(write.started, write.completed, ts),
    }


def step_rows(steps: tuple[StepWrite, ...]) -> list[dict[str, Any]]:
    """The steps of one write as plain rows: the same for both backends (PostgreSQL
    reads them with ``json_to_recordset``, SQLite binds them one by one). Timestamps are
    ISO text and the output is its JSON text, so neither backend re-normalises it."""
    return [
        {
            "position": step.position,
            "block_id": step.block_id,
            "block_type": step.block_type,
            "status": step.status,
            "started_at": ts_text(step.started_at),
            "ended_at": ts_text(step.ended_at),
            "tries": step.tries,
            "cost": cost(step.cost),
            "handle": step.handle,
            "output": _step_output(step),
            "output_truncated": step.output_truncated,
            "error": _opt_text(step.error),
            "iterations_total": step.iterations_total,
            "iterations_done": step.iterations_done,
        }
        for step in steps
    ]


def _step_output(step: StepWrite) -> str | None:
    if step.output_json is not None and step.output is not None:  # None stays SQL NULL
        return safe_text(step.output_json)
    # The recorder hands over JSON-safe values; should one still be refused, the step is
    # written without it rather than failing (and re-failing) every progress write.
    try:
        return encode_json(step.output, "step output")
    except StoreError as exc:
        return encode_json({"unrecordable": str(exc)[:500]}, "step output")


def row_to_step(row: Mapping[str, Any]) -> StepRecord:
    started = parse_ts(row["started_at"])
    assert started is not None  # NOT NULL column
    return StepRecord(
        run_id=row["run_id"],
        epoch=int(row["epoch"]),
        position=row["position"],
        block_id=row["block_id"],
        block_type=row["block_type"],
        status=row["status"],
        started_at=started,
        ended_at=parse_ts(row["ended_at"]),
        tries=int(row["tries"]),
        cost=None if row["cost"] is None else float(row["cost"]),
        handle=row["handle"],
        output=decode_json(row["output"]),
        output_truncated=bool(row["output_truncated"]),
        error=row["error"],
        iterations_total=row.get("iterations_total"),
        iterations_done=row.get("iterations_done"),
    )


def lease_params(
    run_id: str,
    epoch: int,
    now: datetime,
    lease_seconds: float,
    ts: TsEncoder,
    loop_lag_ms: int | None = None,
    loop_blocked_since: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": run_id,
        "epoch": epoch,
        "now": ts(now),
        "lease_expires_at": ts(now + timedelta(seconds=lease_seconds)),
        "loop_lag_ms": loop_lag_ms,
        "loop_blocked_since": ts(loop_blocked_since),
    }


def lease_renewal(rows: list[dict[str, Any]]) -> LeaseRenewal:
    """What ``renew_lease`` returned: no row means the lease was taken away."""
    if not rows:
        return LeaseRenewal(held=False, cancel_requested=False)
    return LeaseRenewal(True, rows[0]["cancel_requested_at"] is not None)


def claim_params(
    run_id: str, worker: Worker | None, now: datetime, lease_seconds: float, ts: TsEncoder
) -> dict[str, Any]:
    return {
        "id": run_id,
        "now": ts(now),
        "lease_expires_at": ts(now + timedelta(seconds=lease_seconds)),
        **worker_params(worker, ts),
    }


def finalize_params(
    run_id: str, fin: Finalization, now: datetime, ts: TsEncoder, sources: Any
) -> dict[str, Any]:
    """Everything ``finalize`` binds. Raises ``StoreError`` before any I/O when a document
    cannot be encoded, so the caller can retry with a smaller result."""
    running = fin.status is RunStatus.RUNNING
    return {
        "id": run_id,
        "now": ts(now),
        "epoch": fin.epoch,
        "crash_cause": _opt_text(fin.crash_cause),
        "sources": sources,
        "status": fin.status.value,
        "path": fin.path.value,
        "finalized_by": fin.finalized_by.value,
        # A run going back to running has not ended, whatever the caller passed.
        "ended_at": None if running else ts(fin.ended_at),
        "duration_ms": None if running else fin.duration_ms,
        "output": encode_json(fin.output, "output"),
        "error_message": _opt_text(fin.error_message),
        "error_block_id": _opt_text(fin.error_block_id),
        "completion_failure": _opt_text(fin.completion_failure),
        "execution_data": encode_json(fin.execution_data, "execution_data"),
        "error_path": encode_json(_error_path(fin.execution_data), "error_path"),
        "has_trace_spans": fin.has_trace_spans,
        "trace_span_count": fin.trace_span_count,
        "cost_total": cost(fin.cost_total),
        "tokens_prompt": fin.tokens_prompt,
        "tokens_completion": fin.tokens_completion,
        "tokens_total": fin.tokens_total,
        "models": encode_json(list(fin.models), "models"),
        "marker_write_failures": fin.marker_write_failures,
        "level": level_for(fin),
        # paused: the state to resume from; terminal: nothing to resume; running: keep.
        "keep_pause_state": running,
        "pause_state": (
            encode_json(fin.pause_state, "pause_state") if fin.status is RunStatus.PAUSED else None
        ),
        **marker_params(fin.started, fin.completed, ts),
    }


def end_params(run_id: str, end: ForcedEnd, now: datetime, ts: TsEncoder) -> dict[str, Any]:
    """Everything ``end_run`` binds: the new terminal state, the note, and the row as it
    was seen (the compare-and-set conditions)."""
    return {
        "id": run_id,
        "now": ts(now),
        "source": end.source.value,
        "status": end.status.value,
        "path": end.path.value,
        "finalized_by": end.finalized_by.value,
        "epoch": end.epoch,
        "seen_started_at": ts(end.seen_started_at),
        "lease_before": ts(end.lease_expired_before),
        "cancel_before": ts(end.cancel_requested_before),
        "expires_before": ts(end.queue_expired_before),
        "job_id": end.job_id,
        "output": encode_json(end.output, "output"),
        "error_message": _opt_text(end.error_message),
        "error_block_id": _opt_text(end.error_block_id),
        "crash_cause": end.crash_cause,
        "level": "info" if end.status is RunStatus.CANCELLED else "error",
        "max_duration_ms": MAX_DURATION_MS,
        "note": note_json(end.note, now),
    }


def _error_path(execution_data: Any) -> Any:
    """The failure's path through child workflows, kept in the trace document and, for the
    run list (which never reads the trace), in a column of its own."""
    path = execution_data.get("error_path") if isinstance(execution_data, dict) else None
    return path if isinstance(path, list) and path else None


def _opt_text(value: str | None) -> str | None:
    return None if value is None else safe_text(value)


def note_json(note: Mapping[str, Any], now: datetime) -> str:
    """A note for the row's ``notes`` list, stamped with the time it was written."""
    stamped = {"at": now.astimezone(UTC).isoformat(timespec="microseconds"), **note}
    return encode_json(stamped, "note") or "{}"


def late_result_note(fin: Finalization, now: datetime) -> str:
    note: dict[str, Any] = {
        "at": now.astimezone(UTC).isoformat(timespec="microseconds"),
        "kind": "late_result",
        "status": fin.status.value,
        "path": fin.path.value,
        "finalized_by": fin.finalized_by.value,
        "error": fin.error_message[:NOTE_ERROR_LIMIT] if fin.error_message else None,
    }
    if fin.epoch is not None:  # a fenced engine: its lease had been taken away
        note["epoch"] = fin.epoch
    try:
        output = encode_json(fin.output, "output")
    except StoreError:
        output = None
    if output is not None and len(output) <= NOTE_OUTPUT_LIMIT:
        note["output"] = fin.output
    return encode_json(note, "note") or "{}"


def new_run_params(run: NewRun, now: datetime, ts: TsEncoder) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow_name": run.workflow_name,
        "snapshot_hash": run.snapshot_hash,
        "status": str(run.status),
        "trigger": run.trigger,
        "started_at": ts(run.started_at),
        "deadline_at": ts(run.deadline_at),
        "input": encode_json(run.input, "input"),
        "parent_run_id": run.parent_run_id,
        "now": ts(now),
        "claimed_at": ts(now) if run.status is RunStatus.RUNNING else None,
        "lease_epoch": 1 if run.lease_seconds is not None else 0,
        "lease_expires_at": (
            ts(now + timedelta(seconds=run.lease_seconds))
            if run.lease_seconds is not None
            else None
        ),
        "queue_name": run.queue_name,
        "queued_at": ts(now) if run.status is RunStatus.QUEUED else None,
        "expires_at": ts(run.expires_at),
        "retry_of": run.retry_of,
        "attempt": run.attempt,
        "retry_from_block": run.retry_from_block,
        **worker_params(run.worker, ts),
    }


def worker_params(worker: Worker | None, ts: TsEncoder | None = None) -> dict[str, Any]:
    started = worker.started_at if worker else None
    return {
        "worker_host": worker.host if worker else None,
        "worker_pid": worker.pid if worker else None,
        "worker_id": worker.id if worker else None,
        "worker_started_at": ts(started) if ts is not None else started,
    }


def row_worker(row: Mapping[str, Any]) -> Worker | None:
    host, pid = row.get("worker_host"), row.get("worker_pid")
    if host is None or pid is None:
        return None
    return Worker(str(host), int(pid), row.get("worker_id"), parse_ts(row.get("worker_started_at")))


def _opt_path(value: Any) -> FinalizationPath | None:
    return None if value is None else FinalizationPath(value)


def row_to_record(row: Mapping[str, Any]) -> RunRecord:
    started_at = parse_ts(row["last_started_at"])
    completed_at = parse_ts(row["last_completed_at"])
    started = (
        StartedMarker(
            block_id=row["last_started_block_id"],
            block_name=row["last_started_block_name"] or "",
            block_type=row["last_started_block_type"] or "",
            started_at=started_at,
        )
        if started_at is not None and row["last_started_block_id"] is not None
        else None
    )
    completed = (
        CompletedMarker(
            block_id=row["last_completed_block_id"],
            block_name=row["last_completed_block_name"] or "",
            block_type=row["last_completed_block_type"] or "",
            ended_at=completed_at,
            success=bool(row["last_completed_success"]),
        )
        if completed_at is not None and row["last_completed_block_id"] is not None
        else None
    )
    run_started = parse_ts(row["started_at"])
    assert run_started is not None  # NOT NULL column
    finalized_by = row["finalized_by"]
    return RunRecord(
        id=row["id"],
        workflow_name=row["workflow_name"],
        snapshot_hash=row["snapshot_hash"],
        status=RunStatus(row["status"]),
        level=row["level"],
        trigger=row["trigger"],
        started_at=run_started,
        ended_at=parse_ts(row["ended_at"]),
        duration_ms=row["duration_ms"],
        deadline_at=parse_ts(row["deadline_at"]),
        last_started_block=started,
        last_completed_block=completed,
        finalization_path=_opt_path(row["finalization_path"]),
        finalized_by=None if finalized_by is None else FinalizedBy(finalized_by),
        completion_failure=row["completion_failure"],
        error_message=row["error_message"],
        error_block_id=row["error_block_id"],
        has_trace_spans=bool(row["has_trace_spans"]),
        trace_span_count=int(row["trace_span_count"]),
        cost_total=float(row["cost_total"]),
        tokens_prompt=int(row["tokens_prompt"]),
        tokens_completion=int(row["tokens_completion"]),
        tokens_total=int(row["tokens_total"]),
        models=decode_json(row["models"]) or [],
        execution_data=decode_json(row["execution_data"]),
        output=decode_json(row["output"]),
        input=decode_json(row["input"]),
        marker_write_failures=int(row["marker_write_failures"]),
        cancel_requested_at=parse_ts(row["cancel_requested_at"]),
        pause_state=decode_json(row["pause_state"]),
        notes=decode_json(row["notes"]) or [],
        parent_run_id=row["parent_run_id"],
        updated_at=parse_ts(row["updated_at"]),
        cancel_requested_by=row["cancel_requested_by"],
        worker_host=row.get("worker_host"),
        worker_pid=row.get("worker_pid"),
        claimed_at=parse_ts(row.get("claimed_at")),
        lease_epoch=int(row.get("lease_epoch") or 0),
        lease_expires_at=parse_ts(row.get("lease_expires_at")),
        heartbeat_at=parse_ts(row.get("heartbeat_at")),
        worker_id=row.get("worker_id"),
        worker_started_at=parse_ts(row.get("worker_started_at")),
        loop_lag_ms=row.get("loop_lag_ms"),
        loop_blocked_since=parse_ts(row.get("loop_blocked_since")),
        queue_name=row.get("queue_name"),
        job_id=row.get("job_id"),
        queued_at=parse_ts(row.get("queued_at")),
        expires_at=parse_ts(row.get("expires_at")),
        crash_cause=row.get("crash_cause"),
        retry_of=row.get("retry_of"),
        retried_by=row.get("retried_by"),
        retry_from_block=row.get("retry_from_block"),
        attempt=int(row.get("attempt") or 1),
        pruned_at=parse_ts(row.get("pruned_at")),
    )


def not_retryable(rec: RunRecord) -> str:
    """Why ``rec`` cannot be retried (it is not crashed, failed or cancelled, or it was
    retried already)."""
    if rec.retried_by:
        return (
            f"run {rec.id} was already retried by run {rec.retried_by}; "
            "retry the newest attempt instead"
        )
    if rec.status.terminal:
        return f"run {rec.id} is {rec.status.value}: there is nothing to retry"
    why = (
        " (a run whose process died stays running until its lease expires and it is "
        "swept crashed; retry it then)"
        if rec.status is RunStatus.RUNNING
        else ""
    )
    return (
        f"run {rec.id} is {rec.status.value}, not ended: only a crashed, failed or "
        f"cancelled run can be retried{why}"
    )


def status_and_path(row: Mapping[str, Any]) -> tuple[RunStatus, FinalizationPath | None]:
    return RunStatus(row["status"]), _opt_path(row["finalization_path"])


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for messages and logs."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostinfo = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostinfo}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*"
            )
        if netloc == parts.netloc and query == parts.query:
            # Nothing to hide: keep the URL as given (urlunsplit would turn
            # sqlite:////abs/path into sqlite://abs/path, a different URL).
            return url
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparseable url>"
