"""Secret values reach the blocks that use them, and never the stored record."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from flowtrail.diagnostics.view import record_json
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization
from tests.integration.diagnostics.support import one_span, record_text, trace_of, wait_started

SECRET = "s3cr3t-value"

CODE = """
from pathlib import Path

HERE = Path(__file__).parent

def use(token, label):
    (HERE / "received.txt").write_text(token)
    return {"echo": token, "note": f"called with {token}", label: [token]}

def leak(token):
    raise RuntimeError(f"the server refused token {token}")

def echo(x):
    return x
"""


def _assert_clean(rec) -> None:
    text = record_text(rec) + json.dumps(record_json(rec), default=str)
    assert SECRET not in text
    assert "***" in text


def _received(fl) -> str:
    return (fl.folder / "received.txt").read_text()


async def test_secret_is_used_but_never_stored(db, flow) -> None:
    fl = flow(
        {
            "name": "uses-secret",
            "inputs": {"given": {"type": "string"}},
            "blocks": {
                "start": {"type": "start"},
                "call": {
                    "type": "function",
                    "call": "FNS:use",
                    "with": {"token": "{{ secrets.API_TOKEN }}", "label": SECRET},
                },
                "out": {
                    "type": "function",
                    "call": "FNS:echo",
                    "with": {"x": "{{ [call.result, start.given] }}"},
                },
            },
            "connections": ["start -> call", "call -> out"],
        },
        CODE,
    )
    runner = Runner(Settings(secrets={"API_TOKEN": SECRET}), db)
    report = await runner.run(fl.workflow, {"given": f"input with {SECRET} inside"})

    assert report.status is RunStatus.COMPLETED
    assert _received(fl) == SECRET  # the function really got it
    assert SECRET not in json.dumps(report.output)
    rec = await db.get_run(report.run_id)
    assert rec.finalization_path is FinalizationPath.COMPLETED
    _assert_clean(rec)
    span = one_span(trace_of(rec), block_id="call")
    assert span["input"]["token"] == "***"
    assert span["output"]["result"]["echo"] == "***"
    assert rec.input == {"given": "input with *** inside"}


async def test_secret_in_an_error_is_masked(db, flow) -> None:
    fl = flow(
        {
            "name": "leaks-secret",
            "blocks": {
                "start": {"type": "start"},
                "lp": {
                    "type": "loop",
                    "count": 1,
                    "blocks": {
                        "leak": {
                            "type": "function",
                            "call": "FNS:leak",
                            "with": {"token": "{{ secrets.API_TOKEN }}"},
                        }
                    },
                },
            },
            "connections": ["start -> lp"],
        },
        CODE,
    )
    report = await Runner(Settings(secrets={"API_TOKEN": SECRET}), db).run(fl.workflow)

    assert report.status is RunStatus.FAILED
    assert report.error is not None and SECRET not in report.error
    rec = await db.get_run(report.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.FAILED, FinalizationPath.FORCE_FAILED)
    assert "the server refused token ***" in (rec.error_message or "")
    assert rec.error_block_id == "leak"
    _assert_clean(rec)
    assert "***" in one_span(trace_of(rec), block_id="lp")["error"]


async def test_secret_in_a_late_result_note_is_masked(db, db2, flow) -> None:
    fl = flow(
        {
            "name": "late-secret",
            "blocks": {
                "start": {"type": "start"},
                "wait": {"type": "wait", "seconds": 0.3},
                "call": {
                    "type": "function",
                    "call": "FNS:use",
                    "with": {"token": "{{ secrets.API_TOKEN }}", "label": "k"},
                },
            },
            # both are exits, so the late result's output carries the (masked) secret; no
            # block starts after the outside finalize, which would make the engine stop
            "connections": ["start -> wait", "start -> call"],
        },
        CODE,
    )
    handle = await Runner(Settings(secrets={"API_TOKEN": SECRET}), db).start(fl.workflow)
    await wait_started(db2, handle.run_id, "call")
    await db2.finalize(
        handle.run_id,
        Finalization(
            status=RunStatus.CANCELLED,
            path=FinalizationPath.CANCELLED,
            finalized_by=FinalizedBy.API,
            ended_at=datetime.now(UTC),
            duration_ms=1,
        ),
    )
    report = await asyncio.wait_for(handle.result(), 5)
    assert report.status is RunStatus.CANCELLED
    rec = await db.get_run(handle.run_id)
    assert rec.notes and rec.notes[0]["kind"] == "late_result"
    _assert_clean(rec)


async def test_secret_never_reaches_the_pause_snapshot(db, flow) -> None:
    fl = flow(
        {
            "name": "pauses-with-secret",
            "blocks": {
                "start": {"type": "start"},
                "call": {
                    "type": "function",
                    "call": "FNS:use",
                    "with": {"token": "{{ secrets.API_TOKEN }}", "label": "k"},
                },
                "ask": {"type": "wait", "for": "input"},
            },
            "connections": ["start -> call", "call -> ask"],
        },
        CODE,
    )
    report = await Runner(Settings(secrets={"API_TOKEN": SECRET}), db).run(fl.workflow)
    assert report.status is RunStatus.PAUSED
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.PAUSED
    assert SECRET not in json.dumps(rec.pause_state)
