"""Exactly one terminal (or pause) write per run, with a fallback that keeps the outcome.

Outcome first, telemetry second: if the full record cannot be stored, a minimal one is
written instead (output kept, spans dropped, ``completion_failure`` says why). A run that
succeeded stays a success.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from flowtrail.diagnostics.compaction import DEFAULT_BUDGET, compact
from flowtrail.diagnostics.masking import Masker
from flowtrail.diagnostics.recorder import Recorder
from flowtrail.diagnostics.spans import clean
from flowtrail.engine.executor import RunResult
from flowtrail.errors import StoreUnavailableError
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store.records import Finalization, FinalizeOutcome

log = logging.getLogger("flowtrail.diagnostics")

_PATHS = {
    RunStatus.COMPLETED: FinalizationPath.COMPLETED,
    RunStatus.FAILED: FinalizationPath.FORCE_FAILED,
    RunStatus.CANCELLED: FinalizationPath.CANCELLED,
    RunStatus.PAUSED: FinalizationPath.PAUSED,
}
_FALLBACK = {
    FinalizationPath.COMPLETED: FinalizationPath.FALLBACK_COMPLETED,
    FinalizationPath.FORCE_FAILED: FinalizationPath.FORCE_FAILED,
    FinalizationPath.CANCELLED: FinalizationPath.CANCELLED,
    FinalizationPath.PAUSED: FinalizationPath.PAUSED,
}
MAX_DURATION_MS = 2**53
RETRY_DELAYS = (0.25, 1.0, 2.0)  # then one last try: about 3 s of outage is ridden out


def duration_ms(started_at: float, ended_at: float) -> int:
    """Never negative, at least 1 ms, and bounded however old the start is."""
    return int(min(MAX_DURATION_MS, max(1, round((ended_at - started_at) * 1000))))


def json_safe(value: Any) -> Any:
    """A JSON-storable stand-in for a value the strict encoder refused: unknown objects
    become their ``repr``, NUL characters (which PostgreSQL cannot store) are dropped, and
    something that cannot be walked at all (a cycle) becomes one ``repr``."""
    try:
        plain = json.loads(json.dumps(value, default=repr, allow_nan=False))
    except (ValueError, TypeError, RecursionError):
        return {"unserializable": repr(value)[:2000].replace("\x00", "")}
    return _without_nul(plain)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


class Finalizer:
    def __init__(
        self,
        recorder: Recorder,
        run_id: str,
        started_at: float,
        *,
        masker: Masker,
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        self.recorder = recorder
        self.store = recorder.store
        self.run_id = run_id
        self.started_at = started_at
        self.masker = masker
        self.budget = budget
        self.outcome: FinalizeOutcome | None = None
        self._failed_kind: FinalizationPath | None = None
        self.completion_failure: str | None = None

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
        if path is FinalizationPath.PAUSED and await self._cancel_pending():
            # Asked to cancel while it was pausing: there is nothing to resume for.
            result = RunResult(RunStatus.CANCELLED, output={"cancelled": True})
            path = FinalizationPath.CANCELLED
        ended = time.time()
        try:
            fin = self._build(result, path, ended)
            self.outcome = await self._write(fin)
            return self.outcome
        except Exception as exc:
            failure = f"could not store the full record: {exc}"
            log.warning("run %s: %s; writing the minimal record", self.run_id, failure)
        try:
            minimal = self._minimal(result, path, ended, failure)
            self.outcome = await self._write(minimal)
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

    async def _write(self, fin: Finalization) -> FinalizeOutcome:
        """The terminal write, retried while the database is unreachable (a blip must not
        leave the run `running`); any other refusal is final for this attempt."""
        for delay in RETRY_DELAYS:
            try:
                return await self.store.finalize(self.run_id, fin)
            except StoreUnavailableError as exc:
                log.warning(
                    "run %s: database unreachable at finalization (%s); retrying in %.1fs",
                    self.run_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        return await self.store.finalize(self.run_id, fin)

    def _build(self, result: RunResult, path: FinalizationPath, ended: float) -> Finalization:
        rec = self.recorder
        rec.digest()
        status = "paused" if path is FinalizationPath.PAUSED else result.status.value
        root = rec.spans.finish(ended, status if status != "completed" else "success")
        data = compact(clean(root), rec.spans.count, self.budget, rec.spans.elided)
        data["paused_spans"] = rec.spans.paused_spans  # what a resume will continue
        return Finalization(
            path=path,
            output=self.masker(result.output),
            execution_data=data,
            has_trace_spans=data.get("trace") is not None,
            **self._shared(result, path, ended),
        )

    def _minimal(
        self, result: RunResult, path: FinalizationPath, ended: float, failure: str
    ) -> Finalization:
        """The record without its trace: built from plain values only, so whatever broke
        the full record (the trace, an odd output) cannot break this one too."""
        reason = self.masker(failure)
        dropped = {"tier": "dropped", "reason": reason, "span_count": self.recorder.spans.count}
        return Finalization(
            path=_FALLBACK[path],
            # masked after it is made JSON-safe: a secret inside a set or an object only
            # becomes visible text once it is turned into its repr
            output=self.masker(json_safe(self.masker(result.output))),
            completion_failure=reason,
            execution_data={
                "trace": None,
                "truncation": dropped,
                "paused_spans": self.recorder.spans.paused_spans,
            },
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
            "cost_total": rec.cost_total,
            "tokens_prompt": rec.tokens_prompt,
            "tokens_completion": rec.tokens_completion,
            "tokens_total": rec.tokens_prompt + rec.tokens_completion,
            "models": sorted(rec.models),
            "started": rec.started,
            "completed": rec.completed,
            "marker_write_failures": rec.write_failures,
            "pause_state": result.pause_state,
        }

    async def force_fail(self, message: str) -> FinalizeOutcome | None:
        """The last resort when the normal path could not record anything."""
        return await self.finalize(RunResult(RunStatus.FAILED, error=message))
