"""OpenTelemetry export with the SDK's in-memory exporter, on both backends: one trace per
run (its id is the run id), the recorded nesting (container → iteration → block, child
workflows under their block), the ``flowtrail.*`` attributes, ERROR for what failed, a
pause and its resume as two segments that never export a span twice, the run span of a
run the sweeper ended, and the ``traceparent`` an ``http`` block sends naming its span."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flowtrail import otel
from flowtrail.engine.events import Frame, position_of
from flowtrail.liveness.sweeper import Sweeper
from flowtrail.otel.ids import position
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import NewRun, SqlStore, Worker
from flowtrail.store.common import utcnow
from tests.integration.diagnostics.support import count_spans, make_yaml_flow, trace_of

CODE = """
from flowtrail.engine.blocks import Reported
from flowtrail.engine.events import Tokens

def echo(x):
    return x

def paid(x):
    return Reported({"x": x}, cost=0.25, tokens=Tokens(7, 3), model="m-1")

def boom(x):
    raise ValueError(f"boom {x}")
"""

PARENT = """
name: parent
blocks:
  start: {type: start}
  before:
    type: function
    call: FNS:paid
    with: {x: 1}
  sub:
    type: workflow
    path: child.yaml
    with: {n: 1}
  par:
    type: parallel
    collection: "{{ ['a', 'b'] }}"
    blocks:
      leaf:
        type: function
        call: FNS:echo
        with: {x: "{{ parallel.item }}"}
connections:
  - start -> before
  - before -> sub
  - sub -> par
"""

CHILD = """
name: child
inputs:
  n: {type: integer}
blocks:
  start: {type: start}
  lp:
    type: loop
    count: 2
    blocks:
      deep:
        type: function
        call: FNS:echo
        with: {x: "{{ loop.index }}"}
connections:
  - start -> lp
"""


def _by_parent(spans: list[ReadableSpan]) -> dict[int | None, list[ReadableSpan]]:
    found: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        key = span.parent.span_id if span.parent is not None else None
        found.setdefault(key, []).append(span)
    return found


def _attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def _near(a: int | None, b: int | None) -> bool:
    """Equal to the microsecond (what the store keeps)."""
    return a is not None and b is not None and abs(a - b) <= 1000


def _finished(memory: InMemorySpanExporter) -> list[ReadableSpan]:
    assert otel.flush(10)
    return list(memory.get_finished_spans())


async def test_one_trace_per_run_with_the_nesting_and_attributes_kept(
    db: SqlStore, tmp_path: Any, memory: InMemorySpanExporter
) -> None:
    fl = make_yaml_flow(
        tmp_path / "wf", {"parent.yaml": PARENT, "child.yaml": CHILD}, CODE, "parent.yaml"
    )
    runner = Runner(Settings(), db)
    report = await runner.run(fl.workflow)
    assert report.status is RunStatus.COMPLETED, report.error
    other = await runner.run(fl.workflow)
    spans = _finished(memory)

    rec = await db.get_run(report.run_id)
    ours = [s for s in spans if _attr(s, "flowtrail.run.id") == report.run_id]
    theirs = [s for s in spans if _attr(s, "flowtrail.run.id") == other.run_id]
    # one trace per run, whose id is the run id; every recorded span exported once
    assert {f"{s.context.trace_id:032x}" for s in ours} == {report.run_id}
    assert {f"{s.context.trace_id:032x}" for s in theirs} == {other.run_id}
    assert len(ours) == len({s.context.span_id for s in ours}) == rec.trace_span_count
    assert len(ours) == count_spans(trace_of(rec)) == 15

    children = _by_parent(ours)
    (run,) = children[None]
    assert run.name == "parent" and run.kind is SpanKind.INTERNAL
    assert run.status.status_code is StatusCode.UNSET
    assert run.resource.attributes["service.name"] == "flowtrail"
    assert run.instrumentation_scope is not None and run.instrumentation_scope.name == "flowtrail"
    attributes = dict(run.attributes or {})
    assert attributes == {
        "flowtrail.run.id": report.run_id,
        "flowtrail.workflow.name": "parent",
        "flowtrail.run.status": "completed",
        "flowtrail.run.finalization_path": "completed",
        "flowtrail.run.finalized_by": "engine",
        "flowtrail.run.trigger": "python",
        "flowtrail.run.attempt": 1,
        "flowtrail.run.cost_total": 0.25,
        "flowtrail.run.tokens.prompt": 7,
        "flowtrail.run.tokens.completion": 3,
        "flowtrail.run.tokens.total": 10,
        "flowtrail.run.models": ("m-1",),
        "flowtrail.run.last_started_block": rec.last_started_block.block_id,  # type: ignore[union-attr]
        "flowtrail.run.last_completed_block": rec.last_completed_block.block_id,  # type: ignore[union-attr]
        "flowtrail.run.span_count": 15,
        "flowtrail.run.lease_epoch": 1,
    }
    # real times: the run span covers the record's start to end
    assert _near(run.start_time, int(rec.started_at.timestamp() * 1e9))
    assert rec.ended_at is not None
    assert _near(run.end_time, int(rec.ended_at.timestamp() * 1e9))

    top = {_attr(s, "flowtrail.block.id"): s for s in children[run.context.span_id]}
    assert sorted(top) == ["before", "par", "start", "sub"]
    before = top["before"]
    assert _attr(before, "flowtrail.block.type") == "function"
    assert _attr(before, "flowtrail.block.status") == "success"
    assert _attr(before, "flowtrail.block.cost") == 0.25
    assert _attr(before, "flowtrail.block.model") == "m-1"
    assert _attr(before, "gen_ai.request.model") == "m-1"
    assert (
        _attr(before, "flowtrail.block.tokens.prompt"),
        _attr(before, "gen_ai.usage.output_tokens"),
    ) == (7, 3)

    # child workflow: its blocks under its block, the loop's iterations under the loop
    sub = top["sub"]
    assert _attr(sub, "flowtrail.block.type") == "workflow"
    inner = {_attr(s, "flowtrail.block.id"): s for s in children[sub.context.span_id]}
    assert sorted(inner) == ["lp", "start"]
    loop = inner["lp"]
    assert _attr(loop, "flowtrail.block.position") == "sub[0]"
    assert _attr(loop, "flowtrail.block.iterations") == 2
    iterations = sorted(
        children[loop.context.span_id], key=lambda s: _attr(s, "flowtrail.iteration.index")
    )
    assert [
        (_attr(s, "flowtrail.block.type"), _attr(s, "flowtrail.iteration.index"))
        for s in iterations
    ] == [
        ("iteration", 0),
        ("iteration", 1),
    ]
    for index, iteration in enumerate(iterations):
        (deep,) = children[iteration.context.span_id]
        assert _attr(deep, "flowtrail.block.id") == "deep"
        assert _attr(deep, "flowtrail.block.position") == f"sub[0]/lp[{index}]"
        assert deep.context.span_id not in children  # a leaf
    branches = children[top["par"].context.span_id]
    assert len(branches) == 2
    assert all(
        [_attr(c, "flowtrail.block.id") for c in children[b.context.span_id]] == ["leaf"]
        for b in branches
    )

    # every span inside its parent's time
    by_id = {s.context.span_id: s for s in ours}
    for span in ours:
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
        if span.parent is not None:
            parent = by_id[span.parent.span_id]
            assert parent.start_time <= span.start_time  # type: ignore[operator]
            assert span.end_time <= parent.end_time  # type: ignore[operator]


def test_the_tree_positions_are_the_engines() -> None:
    path = (Frame("sub", "workflow", 0), Frame("lp", "loop", 3), Frame("par", "parallel", 1))
    assert position([("sub", 0), ("lp", 3), ("par", 1)]) == position_of(path)
    assert position([]) == position_of(())


FAILING = """
name: failing
blocks:
  start: {type: start}
  lp:
    type: loop
    count: 1
    blocks:
      bad:
        type: function
        call: FNS:boom
        with: {x: 7}
connections:
  - start -> lp
"""


async def test_a_failed_block_and_its_run_are_errors(
    db: SqlStore, tmp_path: Any, memory: InMemorySpanExporter
) -> None:
    fl = make_yaml_flow(tmp_path / "wf", {"failing.yaml": FAILING}, CODE, "failing.yaml")
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.FAILED
    spans = {
        (_attr(s, "flowtrail.block.id") or _attr(s, "flowtrail.block.type") or "run"): s
        for s in _finished(memory)
    }
    run, bad, loop = spans["run"], spans["bad"], spans["lp"]
    assert run.status.status_code is StatusCode.ERROR
    assert "boom 7" in (run.status.description or "")
    assert _attr(run, "flowtrail.run.status") == "failed"
    assert _attr(run, "flowtrail.run.finalization_path") == "force_failed"
    assert _attr(run, "flowtrail.run.error.block_id") == "bad"
    assert "boom 7" in _attr(run, "flowtrail.run.error.message")
    assert bad.status.status_code is StatusCode.ERROR
    assert "boom 7" in (bad.status.description or "")
    assert _attr(bad, "flowtrail.block.status") == "error"
    assert _attr(bad, "flowtrail.block.error_handled") is False
    assert loop.status.status_code is StatusCode.ERROR
    assert spans["start"].status.status_code is StatusCode.UNSET


APPROVAL = """
name: approval
blocks:
  start: {type: start}
  prep:
    type: function
    call: FNS:echo
    with: {x: 1}
  ask: {type: wait, for: input, message: "approve?"}
  after:
    type: function
    call: FNS:echo
    with: {x: "{{ ask.input.x }}"}
connections:
  - start -> prep
  - prep -> ask
  - ask -> after
"""


async def test_a_pause_and_its_resume_export_two_segments_without_a_span_twice(
    db: SqlStore, tmp_path: Any, memory: InMemorySpanExporter
) -> None:
    fl = make_yaml_flow(tmp_path / "wf", {"approval.yaml": APPROVAL}, CODE, "approval.yaml")
    runner = Runner(Settings(), db)
    paused = await runner.run(fl.workflow)
    assert paused.status is RunStatus.PAUSED
    first = _finished(memory)
    names = {(_attr(s, "flowtrail.block.id") or "run"): s for s in first}
    assert sorted(names) == ["ask", "prep", "run", "start"]
    assert _attr(names["run"], "flowtrail.run.status") == "paused"
    assert _attr(names["run"], "flowtrail.run.finalization_path") == "paused"
    assert _attr(names["ask"], "flowtrail.block.status") == "paused"
    memory.clear()

    handle = await runner.resume(fl.workflow, paused.run_id, {"x": 5})
    done = await handle.result()
    assert done.status is RunStatus.COMPLETED, done.error
    second = _finished(memory)
    again = {(_attr(s, "flowtrail.block.id") or "run"): s for s in second}
    # the blocks that ended before the pause are not sent again; the paused ones end now
    assert sorted(again) == ["after", "ask", "run"]
    assert _attr(again["run"], "flowtrail.run.status") == "completed"
    assert _attr(again["run"], "flowtrail.run.lease_epoch") == 2
    assert _attr(again["ask"], "flowtrail.block.status") == "success"
    ids = [s.context.span_id for s in first + second]
    assert len(ids) == len(set(ids))
    assert {s.context.trace_id for s in first + second} == {int(paused.run_id, 16)}
    # the final run span covers the whole run, the waiting block its whole wait
    # (the same instants, read back from the stored trace at microsecond precision)
    assert _near(again["run"].start_time, names["run"].start_time)
    assert _near(again["ask"].start_time, names["ask"].start_time)
    assert again["ask"].end_time > names["ask"].end_time  # type: ignore[operator]
    assert again["ask"].parent is not None
    assert again["ask"].parent.span_id == again["run"].context.span_id


async def test_a_run_the_sweeper_ends_leaves_its_run_span(
    db: SqlStore, memory: InMemorySpanExporter
) -> None:
    run_id = uuid.uuid4().hex
    await db.put_snapshot("hash-wf", "wf", {"name": "wf"})
    await db.create_run(
        NewRun(
            run_id, "wf", "hash-wf", RunStatus.RUNNING, "test", utcnow(), {"n": 1},
            worker=Worker("another-host", 4242, "remote-worker"), lease_seconds=0.05,
        )
    )  # fmt: skip
    await asyncio.sleep(0.1)
    report = await Sweeper(db, Settings(lease_seconds=30)).sweep_once()
    assert [a.run_id for a in report.actions] == [run_id]
    (span,) = _finished(memory)
    assert f"{span.context.trace_id:032x}" == run_id
    assert span.name == "wf" and span.parent is None
    assert span.status.status_code is StatusCode.ERROR
    assert _attr(span, "flowtrail.run.status") == "crashed"
    assert _attr(span, "flowtrail.run.finalized_by") == "sweeper"
    assert _attr(span, "flowtrail.run.crash_cause") == "lease_expired"
    assert _attr(span, "flowtrail.run.trigger") == "test"


class Downstream:
    """A service on 127.0.0.1 that records the trace-context headers it was sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                owner.seen.append(
                    {k: self.headers.get(k) for k in ("traceparent", "tracestate", "x-mine")}
                )
                body = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = Downstream()
    try:
        yield server
    finally:
        server.close()


def calling(url: str, headers: dict[str, str] | None = None) -> str:
    return f"""
name: calling
blocks:
  start: {{type: start}}
  lp:
    type: loop
    count: 2
    blocks:
      call:
        type: http
        url: "{url}/x"
        headers: {json.dumps(headers or {})}
connections:
  - start -> lp
"""


async def test_an_http_block_sends_the_traceparent_of_its_exported_span(
    db: SqlStore, tmp_path: Any, memory: InMemorySpanExporter, downstream: Downstream
) -> None:
    fl = make_yaml_flow(
        tmp_path / "wf", {"calling.yaml": calling(downstream.url)}, CODE, "calling.yaml"
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED, report.error
    calls = sorted(
        (s for s in _finished(memory) if _attr(s, "flowtrail.block.id") == "call"),
        key=lambda s: _attr(s, "flowtrail.block.position"),
    )
    assert [_attr(s, "flowtrail.block.position") for s in calls] == ["lp[0]", "lp[1]"]
    expected = [f"00-{s.context.trace_id:032x}-{s.context.span_id:016x}-01" for s in calls]
    assert sorted(h["traceparent"] or "" for h in downstream.seen) == sorted(expected)
    assert all(h["tracestate"] is None for h in downstream.seen)
    for span in calls:
        assert span.kind is SpanKind.CLIENT
        assert _attr(span, "http.request.method") == "GET"
        assert _attr(span, "url.full") == f"{downstream.url}/x"
        assert _attr(span, "http.response.status_code") == 200


async def test_a_traceparent_the_workflow_sets_itself_is_kept(
    db: SqlStore, tmp_path: Any, memory: InMemorySpanExporter, downstream: Downstream
) -> None:
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    text = calling(downstream.url, {"Traceparent": mine, "x-mine": "1"})
    fl = make_yaml_flow(tmp_path / "wf", {"calling.yaml": text}, CODE, "calling.yaml")
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED, report.error
    assert [h["traceparent"] for h in downstream.seen] == [mine, mine]


async def test_with_export_off_nothing_is_exported_and_no_traceparent_is_sent(
    db: SqlStore, tmp_path: Any, memory: InMemorySpanExporter, downstream: Downstream
) -> None:
    fl = make_yaml_flow(
        tmp_path / "wf", {"calling.yaml": calling(downstream.url)}, CODE, "calling.yaml"
    )
    report = await Runner(Settings(otel=False), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED, report.error
    assert _finished(memory) == []
    assert [h["traceparent"] for h in downstream.seen] == [None, None]


async def test_a_paused_run_cancelled_by_request_leaves_its_final_run_span(
    db: SqlStore, tmp_path: Any, memory: InMemorySpanExporter
) -> None:
    import flowtrail

    fl = make_yaml_flow(tmp_path / "wf", {"approval.yaml": APPROVAL}, CODE, "approval.yaml")
    paused = await Runner(Settings(), db).run(fl.workflow)
    assert paused.status is RunStatus.PAUSED
    (paused_run,) = [s for s in _finished(memory) if s.parent is None]
    memory.clear()

    outcome = await flowtrail.cancel_async(paused.run_id, settings=Settings(database_url=db.url))
    assert outcome.finalized
    (span,) = _finished(memory)
    assert span.parent is None and span.context.trace_id == int(paused.run_id, 16)
    assert span.context.span_id != paused_run.context.span_id  # the final run span
    assert _attr(span, "flowtrail.run.status") == "cancelled"
    assert _attr(span, "flowtrail.run.finalization_path") == "cancelled"
    assert _attr(span, "flowtrail.run.last_started_block") == "ask"
    assert _near(span.start_time, paused_run.start_time)


async def test_a_running_run_whose_process_is_gone_cancelled_leaves_its_run_span(
    db: SqlStore, memory: InMemorySpanExporter
) -> None:
    import socket

    import flowtrail
    from tests.integration.liveness.test_sweeper import dead_pid

    run_id = uuid.uuid4().hex
    await db.put_snapshot("hash-wf", "wf", {"name": "wf"})
    await db.create_run(
        NewRun(
            run_id, "wf", "hash-wf", RunStatus.RUNNING, "test", utcnow(), {"n": 1},
            worker=Worker(socket.gethostname(), dead_pid(), "gone"), lease_seconds=30,
        )
    )  # fmt: skip
    outcome = await flowtrail.cancel_async(run_id, settings=Settings(database_url=db.url))
    assert outcome.status is RunStatus.CANCELLED
    (span,) = _finished(memory)
    assert f"{span.context.trace_id:032x}" == run_id
    assert _attr(span, "flowtrail.run.status") == "cancelled"
    assert _attr(span, "flowtrail.run.finalized_by") == "api"
