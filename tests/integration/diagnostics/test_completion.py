"""How a run ends on the row: completed, failed (error, block timeout, run deadline), and the
fallback that keeps a success a success when the full record cannot be stored."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import pytest

from flowtrail.diagnostics.view import record_json
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store.records import RunRecord
from tests.integration.diagnostics.support import (
    add_oversize_trigger,
    add_reject_trigger,
    count_spans,
    one_span,
    spans_of,
    trace_of,
)

CODE = """
import asyncio

async def add(x, y):
    await asyncio.sleep(0.002)
    return x + y

def double(x):
    return x * 2

def summary(total, items):
    return {"total": total, "items": items}

def boom(why):
    raise ValueError(f"kaput: {why}")

async def hang():
    await asyncio.sleep(30)

def as_set():
    return {"only"}

class Opaque:
    def __repr__(self):
        return "<Opaque thing>"

def as_object():
    return Opaque()

def big(n):
    return [{"row": i, "text": "x" * 40} for i in range(n)]

def with_label(label):
    return {"tags": {"t"}, "label": label}

def infinite():
    return float("inf")

def nul():
    return "before" + chr(0) + "after"
"""


def chain(last: dict, *, extra: dict | None = None, first: str = "a") -> dict:
    return {
        "name": "chain",
        "blocks": {
            "start": {"type": "start"},
            "a": {"type": "function", "call": "FNS:add", "with": {"x": 1, "y": 2}},
            "lp": {
                "type": "loop",
                "count": 2,
                "blocks": {
                    "b": {
                        "type": "function",
                        "call": "FNS:double",
                        "with": {"x": "{{ loop.index }}"},
                    }
                },
            },
            "c": last,
            **(extra or {}),
        },
        "connections": ["start -> a", "a -> lp", "lp -> c"],
    }


SUMMARY = {
    "type": "function",
    "call": "FNS:summary",
    "with": {"total": "{{ a.result }}", "items": "{{ lp.results }}"},
}

# RunRecord field -> how record_json shows it.
RENAMED = {
    "workflow_name": lambda j: j["workflow"],
    "error_message": lambda j: (j["error"] or {}).get("message"),
    "error_block_id": lambda j: (j["error"] or {}).get("block_id"),
    "tokens_prompt": lambda j: j["tokens"]["prompt"],
    "tokens_completion": lambda j: j["tokens"]["completion"],
    "tokens_total": lambda j: j["tokens"]["total"],
    "pause_state": lambda j: j["paused"],
}


def _jsonable(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[attr-defined]
    if hasattr(value, "to_dict"):
        return value.to_dict()  # type: ignore[attr-defined]
    if hasattr(value, "value") and not isinstance(value, dict | list):
        return value.value  # type: ignore[attr-defined]
    return value


def assert_view_exposes(rec: RunRecord) -> None:
    view = record_json(rec)
    for f in dataclasses.fields(RunRecord):
        value = getattr(rec, f.name)
        if f.name == "pause_state":
            assert (view["paused"] is None) == (value is None)
            continue
        if f.name in RENAMED:
            assert RENAMED[f.name](view) == value, f.name
        else:
            assert f.name in view, f"record_json does not expose {f.name}"
            assert view[f.name] == _jsonable(value), f.name


async def test_completed_run_leaves_the_full_record(db, flow) -> None:
    fl = flow(chain(SUMMARY), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    assert report.output == {"result": {"total": 3, "items": [{"result": 0}, {"result": 2}]}}
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED
    assert rec.finalized_by is FinalizedBy.ENGINE
    assert rec.completion_failure is None and rec.error_message is None
    assert rec.last_started_block is not None and rec.last_completed_block is not None
    assert (rec.last_started_block.block_id, rec.last_started_block.block_type) == ("c", "function")
    assert rec.last_completed_block.block_id == "c" and rec.last_completed_block.success
    assert rec.last_completed_block.ended_at >= rec.last_started_block.started_at
    assert rec.output == report.output
    assert rec.input == {}
    assert rec.marker_write_failures == 0
    assert rec.pause_state is None
    # the trace: root, start, a, lp, 2 iterations, 2 b, c
    trace = trace_of(rec)
    assert rec.has_trace_spans and trace is not None
    assert rec.trace_span_count == count_spans(trace) == 9
    assert rec.execution_data["truncation"] is None
    assert trace["type"] == "workflow" and trace["status"] == "success"
    assert [s["block_id"] for s in trace["children"]] == ["start", "a", "lp", "c"]
    assert one_span(trace, block_id="a")["output"] == {"result": 3}
    assert one_span(trace, block_id="c")["input"] == {
        "total": 3,
        "items": [{"result": 0}, {"result": 2}],
    }
    # timing
    assert rec.ended_at is not None and rec.ended_at >= rec.started_at
    assert rec.duration_ms is not None and rec.duration_ms >= 1
    measured = (rec.ended_at - rec.started_at) / timedelta(milliseconds=1)
    assert abs(rec.duration_ms - measured) <= 2
    assert rec.level == "info" and rec.trigger == "python"
    # one shape for every surface
    view = record_json(rec)
    assert view["status"] == "completed"
    assert view["finalization_path"] == "completed"
    assert view["finalized_by"] == "engine"
    assert view["error"] is None
    assert view["last_started_block"]["block_id"] == "c"
    assert view["last_completed_block"] == rec.last_completed_block.to_dict()
    assert view["execution_data"]["trace"] == trace
    assert "execution_data" not in record_json(rec, include_trace=False)
    assert_view_exposes(rec)


async def test_view_exposes_who_requested_a_cancel(db, db2, flow) -> None:
    fl = flow(
        {
            "name": "hang",
            "blocks": {"start": {"type": "start"}, "h": {"type": "function", "call": "FNS:hang"}},
            "connections": ["start -> h"],
        },
        CODE,
    )
    handle = await Runner(Settings(cancel_poll_seconds=0.1), db).start(fl.workflow)
    await db2.request_cancel(handle.run_id, "cli:alice")
    await handle.result()
    rec = await db.get_run(handle.run_id)
    assert rec.cancel_requested_by == "cli:alice"
    assert_view_exposes(rec)


async def test_unhandled_error_is_force_failed_with_message_and_block(db, flow) -> None:
    fl = flow(
        chain(
            {"type": "function", "call": "FNS:boom", "with": {"why": "{{ a.result }}"}},
            extra={"after": {"type": "function", "call": "FNS:double", "with": {"x": 1}}},
        )
        | {"connections": ["start -> a", "a -> lp", "lp -> c", "c -> after"]},
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.FAILED
    assert report.error_block_id == "c"
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.FAILED
    assert rec.finalization_path is FinalizationPath.FORCE_FAILED
    assert rec.finalized_by is FinalizedBy.ENGINE
    assert rec.error_block_id == "c"
    assert rec.error_message is not None and "kaput: 3" in rec.error_message
    assert rec.level == "error"
    assert record_json(rec)["error"] == {"message": rec.error_message, "block_id": "c"}
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "c"
    assert rec.last_completed_block is not None
    assert rec.last_completed_block.block_id == "c" and not rec.last_completed_block.success
    assert rec.ended_at is not None and rec.duration_ms is not None and rec.duration_ms >= 1
    trace = trace_of(rec)
    assert rec.trace_span_count == count_spans(trace)
    failed = one_span(trace, block_id="c")
    assert failed["status"] == "error" and "kaput: 3" in failed["error"]
    assert trace["status"] == "failed"
    assert spans_of(trace, block_id="after") == []


async def test_error_inside_a_loop_names_the_inner_block(db, flow) -> None:
    fl = flow(
        {
            "name": "loopfail",
            "blocks": {
                "start": {"type": "start"},
                "lp": {
                    "type": "loop",
                    "count": 3,
                    "blocks": {
                        "inner": {
                            "type": "function",
                            "call": "FNS:boom",
                            "with": {"why": "{{ loop.index }}"},
                        }
                    },
                },
            },
            "connections": ["start -> lp"],
        },
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    rec = await db.get_run(report.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.FAILED, FinalizationPath.FORCE_FAILED)
    assert rec.error_block_id == "inner"
    assert "kaput: 0" in (rec.error_message or "") and "lp" in (rec.error_message or "")
    loop_span = one_span(trace_of(rec), block_id="lp")
    assert loop_span["status"] == "error"
    assert rec.trace_span_count == count_spans(trace_of(rec))


async def test_block_timeout_is_a_failure_not_a_cancellation(db, flow) -> None:
    fl = flow(
        {
            "name": "slow",
            "blocks": {
                "start": {"type": "start"},
                "slow": {"type": "function", "call": "FNS:hang", "timeout": 0.1},
            },
            "connections": ["start -> slow"],
        },
        CODE,
    )
    t0 = time.monotonic()
    report = await Runner(Settings(), db).run(fl.workflow)
    assert time.monotonic() - t0 < 5
    rec = await db.get_run(report.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.FAILED, FinalizationPath.FORCE_FAILED)
    assert rec.error_block_id == "slow"
    assert "timed out" in (rec.error_message or "")
    assert rec.last_completed_block is not None and not rec.last_completed_block.success
    assert rec.cancel_requested_at is None


async def test_run_deadline_fails_the_run_and_names_the_hung_block(db, flow) -> None:
    fl = flow(
        {
            "name": "deadline",
            "blocks": {"start": {"type": "start"}, "h": {"type": "function", "call": "FNS:hang"}},
            "connections": ["start -> h"],
        },
        CODE,
    )
    t0 = time.monotonic()
    report = await Runner(Settings(run_timeout=0.3), db).run(fl.workflow)
    assert time.monotonic() - t0 < 5
    assert report.status is RunStatus.FAILED
    rec = await db.get_run(report.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.FAILED, FinalizationPath.FORCE_FAILED)
    assert rec.finalized_by is FinalizedBy.ENGINE
    assert "deadline" in (rec.error_message or "")
    # the block that hung is named afterwards
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "h"
    assert rec.deadline_at is not None
    assert abs((rec.deadline_at - rec.started_at).total_seconds() - 0.3) < 0.01
    assert one_span(trace_of(rec), block_id="h")["status"] != "success"


# -- fallback_completed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "stored"),
    [("as_set", "{'only'}"), ("as_object", "<Opaque thing>")],
)
async def test_unserializable_output_falls_back_and_stays_a_success(db, flow, fn, stored) -> None:
    fl = flow(chain({"type": "function", "call": f"FNS:{fn}"}), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.FALLBACK_COMPLETED
    assert rec.finalized_by is FinalizedBy.ENGINE
    assert rec.completion_failure is not None and "JSON" in rec.completion_failure
    assert report.completion_failure == rec.completion_failure
    assert rec.output == {"result": stored}  # kept, coerced to JSON
    assert not rec.has_trace_spans and trace_of(rec) is None
    assert rec.execution_data["truncation"]["reason"] == rec.completion_failure
    assert rec.trace_span_count == 9  # the count survives the dropped spans
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "c"
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "c"
    assert rec.error_message is None
    assert rec.ended_at is not None and rec.duration_ms is not None and rec.duration_ms >= 1


async def test_database_refusing_the_document_falls_back_with_output_intact(
    db, flow, store_url
) -> None:
    fl = flow(chain({"type": "function", "call": "FNS:big", "with": {"n": 30}}), CODE)
    await add_oversize_trigger(store_url, "ft_oversize", 1500)
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.FALLBACK_COMPLETED
    assert "injected by ft_oversize" in (rec.completion_failure or "")
    assert (
        rec.output == report.output == {"result": [{"row": i, "text": "x" * 40} for i in range(30)]}
    )
    assert not rec.has_trace_spans and trace_of(rec) is None
    assert rec.trace_span_count == 9
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "c"


async def test_fallback_keeps_string_values_that_contain_nan(db, flow) -> None:
    fl = flow(
        chain({"type": "function", "call": "FNS:with_label", "with": {"label": "NaN rows"}}), CODE
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    rec = await db.get_run(report.run_id)
    assert rec.finalization_path is FinalizationPath.FALLBACK_COMPLETED
    assert rec.output["result"]["label"] == "NaN rows"


async def test_infinite_float_output_does_not_fail_a_successful_run(db, flow) -> None:
    fl = flow(chain({"type": "function", "call": "FNS:infinite"}), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.FALLBACK_COMPLETED


async def test_primary_and_fallback_both_refused_is_not_final_never_failed(
    db, flow, store_url
) -> None:
    """Both completion writes refused: a completed run is never recorded as failed. The
    row keeps its status (running), a note on it says what the engine reached and why it
    could not be stored, and the report says the record is not final."""
    fl = flow(chain(SUMMARY), CODE)
    await add_reject_trigger(store_url, "ft_no_completed", "NEW.status = 'completed'")
    report = await Runner(Settings(finalize_retry_seconds=0), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    assert not report.record_final
    assert "injected by ft_no_completed" in (report.completion_failure or "")
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.RUNNING
    assert rec.finalization_path is None and rec.error_message is None
    (note,) = rec.notes
    assert note["kind"] == "unrecorded_result" and note["status"] == "completed"
    assert "injected by ft_no_completed" in note["reason"]


async def test_output_with_a_nul_character_stays_a_success(db, flow) -> None:
    """U+0000 cannot be stored (PostgreSQL refuses it in text and jsonb): the full record
    and the fallback are both refused, and the successful run must still end completed."""
    fl = flow(chain({"type": "function", "call": "FNS:nul"}), CODE)
    report = await Runner(Settings(), db).run(fl.workflow)
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path in (
        FinalizationPath.COMPLETED,
        FinalizationPath.FALLBACK_COMPLETED,
    )
    assert rec.output is not None and rec.output["result"].startswith("before")
