"""Exactly one terminal (or pause) write per run, with a fallback that keeps the outcome.

Outcome first, telemetry second: if the full record cannot be stored, a minimal one is
written instead (output kept, spans dropped, ``completion_failure`` says why). A run that
succeeded stays a success: it is never recorded as failed. While the database is
unavailable (an outage, a full disk, a read-only file) the write is retried for
``finalize_retry_seconds``; when even the minimal record cannot be stored, ``finalize``
returns ``None`` and the caller must report the record as not final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from flowtrail.diagnostics.capping import cap_output, json_safe
from flowtrail.diagnostics.compaction import DEFAULT_BUDGET, compact
from flowtrail.diagnostics.masking import Masker
from flowtrail.diagnostics.recorder import Recorder
from flowtrail.diagnostics.spans import clean
from flowtrail.engine.executor import RunResult
from flowtrail.errors import StoreUnavailableError
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store.common import MAX_DURATION_MS
from flowtrail.store.records import Finalization, FinalizeOutcome, StepWrite

log = logging.getLogger("flowtrail.diagnostics")

_PATHS = {
    RunStatus.COMPLETED: FinalizationPath.COMPLETED,
    RunStatus.FAILED: FinalizationPath.FORCE_FAILED,
    RunStatus.CANCELLED: FinalizationPath.CANCELLED,
    RunStatus.PAUSED: FinalizationPath.PAUSED,
    RunStatus.CRASHED: FinalizationPath.CRASHED,
}
_FALLBACK = {
    FinalizationPath.COMPLETED: FinalizationPath.FALLBACK_COMPLETED,
    FinalizationPath.FORCE_FAILED: FinalizationPath.FORCE_FAILED,
    FinalizationPath.CANCELLED: FinalizationPath.CANCELLED,
    FinalizationPath.PAUSED: FinalizationPath.PAUSED,
    FinalizationPath.CRASHED: FinalizationPath.CRASHED,
}
DEFAULT_FINALIZE_RETRY_SECONDS = 30.0
FIRST_RETRY_DELAY, MAX_RETRY_DELAY = 0.25, 2.0
# The stored output's cap: far below PostgreSQL's jsonb limit (256 MB) and SQLite's
# default SQLITE_MAX_LENGTH (1 GB), so the record always fits both.
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MIN_OUTPUT_BYTES, MAX_OUTPUT_BYTES = 1024, 128 * 1024 * 1024


def duration_ms(started_at: float, ended_at: float) -> int:
    """Never negative, at least 1 ms, and bounded however old the start is."""
    return int(min(MAX_DURATION_MS, max(1, round((ended_at - started_at) * 1000))))


def _error_path(result: RunResult) -> dict[str, Any]:
    """Where a failure inside child workflows happened, for the record's ``error.path``."""
    return {"error_path": list(result.error_path)} if len(result.error_path) > 1 else {}


class Finalizer:
    def __init__(
        self,
        recorder: Recorder,
        run_id: str,
        started_at: float,
        *,
        masker: Masker,
        budget: int = DEFAULT_BUDGET,
        retry_seconds: float = DEFAULT_FINALIZE_RETRY_SECONDS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        self.recorder = recorder
        self.store = recorder.store
        self.run_id = run_id
        self.started_at = started_at
        self.masker = masker
        self.budget = budget
        self.retry_seconds = retry_seconds
        self.max_output_bytes = max_output_bytes
        self.outcome: FinalizeOutcome | None = None
        self.crash_cause: str | None = None
        """Set when the engine's own process ends the run ``crashed`` (a worker that
        shuts down hands back its runs)."""
        self._failed_kind: FinalizationPath | None = None
        self.completion_failure: str | None = None
        self.steps: tuple[StepWrite, ...] = ()

    async def finalize(self, result: RunResult) -> FinalizeOutcome | None:
        """Idempotent: a second call returns the first result. After a failed attempt that
        was not an error, an error attempt may still run."""
        path = _PATHS[result.status]
        if self.outcome is not None:
            return self.outcome
        if self._failed_kind is not None and (
            self._failed_kind is FinalizationPath.FORCE_FAILED
            or path is not FinalizationPath.FORCE_FAILED
        ):
            return None
        await self.recorder.drain()
        # The steps not written yet ride on the full record; the minimal one is made of
        # plain values only and goes without them.
        newest = {(s.position, s.block_id): s for s in self.steps + self.recorder.steps.take()}
        self.steps = tuple(newest.values())
        if path is FinalizationPath.PAUSED and await self._cancel_pending():
            # Asked to cancel while it was pausing: there is nothing to resume for.
            result = RunResult(RunStatus.CANCELLED, output={"cancelled": True})
            path = FinalizationPath.CANCELLED
        ended = time.time()
        # One budget for both records: an outage longer than it is not ridden out twice.
        deadline = time.monotonic() + self.retry_seconds
        try:
            fin = self._build(result, path, ended)
            self.outcome = await self._write(fin, deadline)
            return self.outcome
        except Exception as exc:
            failure = f"could not store the full record: {exc}"
            log.warning("run %s: %s; writing the minimal record", self.run_id, failure)
        try:
            minimal = self._minimal(result, path, ended, failure)
            self.outcome = await self._write(minimal, deadline)
            self.completion_failure = failure
            return self.outcome
        except Exception as exc:
            log.error("run %s: even the minimal record could not be stored: %s", self.run_id, exc)
            self._failed_kind = path
            self.completion_failure = f"{failure}; minimal record failed too: {exc}"
            return None

    async def _cancel_pending(self) -> bool:
        if self.recorder.cancel_seen:
            return True
        try:
            return await self.store.cancel_requested(self.run_id)
        except Exception:  # unknown: pause, and let a resume check again (it does)
            return False

    async def _write(self, fin: Finalization, deadline: float) -> FinalizeOutcome:
        """The terminal write, retried until ``deadline`` while the database is unavailable
        (a blip, a full disk or a read-only file must not leave the run `running`); any
        other refusal is final for this attempt. At least one attempt is always made."""
        delay = FIRST_RETRY_DELAY
        while True:
            try:
                return await self.store.finalize(self.run_id, fin)
            except StoreUnavailableError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                wait = min(delay, left)
                log.warning(
                    "run %s: database unavailable at finalization (%s); retrying in %.2fs",
                    self.run_id,
                    exc,
                    wait,
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    async def leave_note(self, status: RunStatus) -> None:
        """Best effort, one attempt: when no record could be stored, say on the row (if it
        can still be reached) what the engine reached, without changing its status."""
        try:
            await self.store.add_note(
                self.run_id,
                {
                    "kind": "unrecorded_result",
                    "status": status.value,
                    "reason": self.masker(self.completion_failure or "")[:2000],
                },
            )
        except Exception as exc:
            log.warning("run %s: could not leave a note on the row either: %s", self.run_id, exc)

    def _build(self, result: RunResult, path: FinalizationPath, ended: float) -> Finalization:
        rec = self.recorder
        rec.digest()
        status = "paused" if path is FinalizationPath.PAUSED else result.status.value
        root = rec.spans.finish(ended, status if status != "completed" else "success")
        data = compact(clean(root), rec.spans.count, self.budget, rec.spans.elided)
        data["paused_spans"] = rec.spans.paused_spans  # what a resume will continue
        data.update(_error_path(result))
        output, truncation = cap_output(self.masker(result.output), self.max_output_bytes)
        if truncation is not None:
            data["output_truncation"] = truncation
        return Finalization(
            path=path,
            output=output,
            execution_data=data,
            has_trace_spans=data.get("trace") is not None,
            steps=self.steps,
            **self._shared(result, path, ended),
        )

    def _minimal(
        self, result: RunResult, path: FinalizationPath, ended: float, failure: str
    ) -> Finalization:
        """The record without its trace: built from plain values only, so whatever broke
        the full record (the trace, an odd output) cannot break this one too."""
        reason = self.masker(failure)
        dropped = {"tier": "dropped", "reason": reason, "span_count": self.recorder.spans.count}
        # masked after it is made JSON-safe: a secret inside a set or an object only
        # becomes visible text once it is turned into its repr
        safe = self.masker(json_safe(self.masker(result.output)))
        output, truncation = cap_output(safe, self.max_output_bytes)
        data: dict[str, Any] = {
            "trace": None,
            "truncation": dropped,
            "paused_spans": self.recorder.spans.paused_spans,
            **_error_path(result),
        }
        if truncation is not None:
            data["output_truncation"] = truncation
        return Finalization(
            path=_FALLBACK[path],
            output=output,
            completion_failure=reason,
            execution_data=data,
            has_trace_spans=False,
            **self._shared(result, path, ended),
        )

    def _shared(self, result: RunResult, path: FinalizationPath, ended: float) -> dict[str, Any]:
        """Everything both records say: the outcome, markers, counts and cost."""
        rec = self.recorder
        paused = path is FinalizationPath.PAUSED
        return {
            "status": result.status,
            "finalized_by": FinalizedBy.ENGINE,
            "ended_at": None if paused else datetime.fromtimestamp(ended, UTC),
            "duration_ms": duration_ms(self.started_at, ended),
            "error_message": self.masker(result.error) if result.error else None,
            "error_block_id": result.error_block_id,
            "trace_span_count": rec.spans.count,
            "cost_total": rec.usage.cost_total,
            "tokens_prompt": rec.usage.tokens_prompt,
            "tokens_completion": rec.usage.tokens_completion,
            "tokens_total": rec.usage.tokens_total,
            "models": sorted(rec.usage.models),
            "started": rec.markers.started,
            "completed": rec.markers.completed,
            "marker_write_failures": rec.write_failures,
            "pause_state": result.pause_state,
            "epoch": rec.epoch,
            "crash_cause": self.crash_cause if result.status is RunStatus.CRASHED else None,
        }

    async def force_fail(self, message: str) -> FinalizeOutcome | None:
        """The last resort when the normal path could not record anything."""
        return await self.finalize(RunResult(RunStatus.FAILED, error=message))
