"""Cost, tokens and models on the row: summed over blocks, priced from a real
OpenAI-compatible HTTP server's ``usage``, and never lowered by a later write."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flowtrail.engine.blocks import Prices
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization, ProgressWrite
from tests.integration.diagnostics.support import bare_run, one_span, spans_of, trace_of

CODE = """
from flowtrail.engine.blocks import Reported

def paid(x):
    return Reported({"x": x}, cost=0.25)

def free(x):
    return x
"""

PROMPT_TOKENS, COMPLETION_TOKENS = 120, 30


class _Completions(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body})
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "yes"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def llm_server() -> Iterator[str]:
    handler = type("Handler", (_Completions,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_reported_costs_are_summed(db, flow) -> None:
    fl = flow(
        {
            "name": "paid",
            "blocks": {
                "start": {"type": "start"},
                "one": {"type": "function", "call": "FNS:paid", "with": {"x": 1}},
                "two": {"type": "function", "call": "FNS:paid", "with": {"x": 2}},
                "three": {"type": "function", "call": "FNS:free", "with": {"x": 3}},
            },
            "connections": ["start -> one", "one -> two", "two -> three"],
        },
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    assert rec.cost_total == pytest.approx(0.5)
    trace = trace_of(rec)
    assert [one_span(trace, block_id=b).get("cost") for b in ("one", "two")] == [0.25, 0.25]
    assert "cost" not in one_span(trace, block_id="three")


async def test_agent_tokens_models_and_cost_from_a_real_http_server(db, flow, llm_server) -> None:
    fl = flow(
        {
            "name": "agent",
            "blocks": {
                "start": {"type": "start"},
                "ask": {
                    "type": "agent",
                    "model": "m",
                    "prompt": "Is it done?",
                    "base_url": llm_server,
                },
                "paid": {
                    "type": "function",
                    "call": "FNS:paid",
                    "with": {"x": "{{ ask.content }}"},
                },
            },
            "connections": ["start -> ask", "ask -> paid"],
        },
        CODE,
    )
    settings = Settings(prices=Prices({"m": (1.0, 2.0)}))
    report = await Runner(settings, db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    agent_cost = (PROMPT_TOKENS * 1.0 + COMPLETION_TOKENS * 2.0) / 1000
    assert rec.cost_total == pytest.approx(agent_cost + 0.25)
    assert (rec.tokens_prompt, rec.tokens_completion, rec.tokens_total) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        PROMPT_TOKENS + COMPLETION_TOKENS,
    )
    assert rec.models == ["m"]
    span = one_span(trace_of(rec), block_id="ask")
    assert span["model"] == "m"
    assert span["cost"] == pytest.approx(agent_cost)
    assert span["tokens"] == {
        "prompt": PROMPT_TOKENS,
        "completion": COMPLETION_TOKENS,
        "total": PROMPT_TOKENS + COMPLETION_TOKENS,
    }
    assert span["output"]["content"] == "yes"


async def test_cost_survives_a_pause_and_resume(db, flow) -> None:
    fl = flow(
        {
            "name": "paid-pause",
            "blocks": {
                "start": {"type": "start"},
                "one": {"type": "function", "call": "FNS:paid", "with": {"x": 1}},
                "ask": {"type": "wait", "for": "input"},
                "two": {"type": "function", "call": "FNS:paid", "with": {"x": 2}},
            },
            "connections": ["start -> one", "one -> ask", "ask -> two"],
        },
        CODE,
    )
    runner = Runner(Settings(), db)
    paused = await runner.run(fl.workflow)
    assert paused.status is RunStatus.PAUSED
    assert (await db.get_run(paused.run_id)).cost_total == pytest.approx(0.25)
    done = await (await runner.resume(fl.workflow, paused.run_id, {})).result()
    assert done.status is RunStatus.COMPLETED
    rec = await db.get_run(paused.run_id)
    assert rec.cost_total == pytest.approx(0.5)
    assert len(spans_of(trace_of(rec), block_id="one")) == 1


async def test_cost_is_never_lowered_by_a_later_write(db) -> None:
    run = await bare_run(db)
    await db.write_progress(run.run_id, ProgressWrite(cost_total=1.5))
    await db.write_progress(run.run_id, ProgressWrite(cost_total=0.5))
    assert (await db.get_run(run.run_id)).cost_total == pytest.approx(1.5)
    await db.write_progress(run.run_id, ProgressWrite(cost_total=2.0))
    assert (await db.get_run(run.run_id)).cost_total == pytest.approx(2.0)
    fin = Finalization(
        status=RunStatus.COMPLETED,
        path=FinalizationPath.COMPLETED,
        finalized_by=FinalizedBy.ENGINE,
        ended_at=datetime.now(UTC),
        duration_ms=10,
        cost_total=0.75,
    )
    assert (await db.finalize(run.run_id, fin)).persisted
    rec = await db.get_run(run.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.cost_total == pytest.approx(2.0)
