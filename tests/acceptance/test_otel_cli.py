"""``flowtrail run`` with OpenTelemetry export, as a user runs it: a real subprocess, the
standard ``OTEL_*`` variables, and a real OTLP/HTTP receiver on 127.0.0.1 that decodes
what it gets. An ``http`` block calls a service on 127.0.0.1 that records the
``traceparent`` it was sent: it names the exported span of that block. A collector that
is down or never answers, and a missing extra, never fail a run."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.clitools import Cli, write_workflow
from tests.acceptance.otlp import OtlpReceiver
from tests.acceptance.queuetools import (
    POSTGRES_ONLY,
    QUEUE_BLOCKS,
    enqueue,
    wait_for_status,
    worker,
)
from tests.integration.otel.test_otel_export import Downstream

ERROR, CLIENT = 2, 3  # Status.STATUS_CODE_ERROR, Span.SPAN_KIND_CLIENT in the proto

WORKFLOW = """
name: traced
blocks:
  start: {{type: start}}
  lp:
    type: loop
    count: 2
    blocks:
      call:
        type: http
        url: "{url}/item/{{{{ loop.index }}}}"
  after:
    type: function
    call: acc_blocks:quick
    with: {{x: 3}}
connections:
  - start -> lp
  - lp -> after
"""


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = Downstream()
    try:
        yield server
    finally:
        server.close()


def _run(cli: Cli, wf: Path, **env: str) -> tuple[dict[str, Any], str, float]:
    cli.env.update(env)
    t0 = time.perf_counter()
    result = cli.run("run", str(wf), "--json", "--quiet")
    elapsed = time.perf_counter() - t0
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr, elapsed


def test_a_cli_run_sends_its_trace_to_a_real_otlp_receiver(
    cli: Cli, receiver: OtlpReceiver, downstream: Downstream
) -> None:
    wf = write_workflow(cli.cwd, "traced", WORKFLOW.format(url=downstream.url))
    record, _stderr, elapsed = _run(
        cli,
        wf,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme,authorization=Bearer%20s3cret",
        OTEL_SERVICE_NAME="billing",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
    )
    print(f"run with export: {elapsed * 1000:.0f} ms")
    assert record["status"] == "completed"
    run_id = record["id"]
    expected = cli.show(run_id)["trace_span_count"]
    spans = receiver.wait_for(expected)
    # exported at the process's exit, everything in one trace: the run's id
    assert len(spans) == expected == 8
    assert {s.trace_id for s in spans} == {run_id}
    assert set(receiver.paths) == {"/v1/traces"}
    assert all(h.get("x-tenant") == "acme" for h in receiver.headers)
    assert all(h.get("authorization") == "Bearer s3cret" for h in receiver.headers)
    assert all(h.get("content-type") == "application/x-protobuf" for h in receiver.headers)
    (run,) = [s for s in spans if not s.parent_span_id]
    assert run.resource["service.name"] == "billing"
    assert run.resource["deployment.environment"] == "test"
    assert run.scope == "flowtrail"
    assert run.name == "traced"
    assert run.attributes["flowtrail.run.status"] == "completed"
    assert run.attributes["flowtrail.run.finalization_path"] == "completed"
    assert run.attributes["flowtrail.run.finalized_by"] == "engine"
    assert run.attributes["flowtrail.run.trigger"] == "cli"
    assert run.attributes["flowtrail.run.last_completed_block"] == "after"

    by_id = {s.span_id: s for s in spans}
    calls = sorted(
        (s for s in spans if s.attributes.get("flowtrail.block.id") == "call"),
        key=lambda s: s.attributes["flowtrail.block.position"],
    )
    assert [c.attributes["flowtrail.block.position"] for c in calls] == ["lp[0]", "lp[1]"]
    for index, call in enumerate(calls):
        assert call.kind == CLIENT
        assert call.attributes["url.full"] == f"{downstream.url}/item/{index}"
        iteration = by_id[call.parent_span_id]
        assert iteration.attributes["flowtrail.iteration.index"] == index
        loop = by_id[iteration.parent_span_id]
        assert loop.attributes["flowtrail.block.id"] == "lp"
        assert loop.parent_span_id == run.span_id
        assert run.start_ns <= call.start_ns <= call.end_ns <= run.end_ns
    # the downstream service joined the run's trace, as the child of each http span
    sent = sorted(h["traceparent"] or "" for h in downstream.seen)
    assert sent == sorted(f"00-{run_id}-{c.span_id}-01" for c in calls)


FAILING = """
name: failing
blocks:
  start: {type: start}
  bad:
    type: http
    url: "http://127.0.0.1:9/unreachable"
connections:
  - start -> bad
"""


def test_a_failed_block_is_an_error_span_at_the_receiver(cli: Cli, receiver: OtlpReceiver) -> None:
    wf = write_workflow(cli.cwd, "failing", FAILING)
    cli.env.update(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.url}/v1/traces")
    result = cli.run("run", str(wf), "--json", "--quiet")
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "failed"
    spans = receiver.wait_for(3)
    assert len(spans) == 3
    by_block = {s.attributes.get("flowtrail.block.id", "run"): s for s in spans}
    assert by_block["bad"].status_code == ERROR
    assert "failed" in by_block["bad"].status_message
    assert by_block["run"].status_code == ERROR
    assert by_block["run"].attributes["flowtrail.run.error.block_id"] == "bad"
    assert by_block["run"].attributes["flowtrail.run.status"] == "failed"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_collector_that_is_down_never_fails_a_run(cli: Cli, downstream: Downstream) -> None:
    wf = write_workflow(cli.cwd, "traced", WORKFLOW.format(url=downstream.url))
    record, _stderr, elapsed = _run(
        cli, wf, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_closed_port()}"
    )
    print(f"run with the collector down: {elapsed * 1000:.0f} ms")
    assert record["status"] == "completed"
    assert cli.show(record["id"])["status"] == "completed"
    assert len(downstream.seen) == 2  # the blocks ran, traceparent or not


def test_a_collector_that_never_answers_never_holds_a_run(cli: Cli, downstream: Downstream) -> None:
    silent = OtlpReceiver(hang=True)
    try:
        wf = write_workflow(cli.cwd, "traced", WORKFLOW.format(url=downstream.url))
        record, _stderr, elapsed = _run(cli, wf, OTEL_EXPORTER_OTLP_ENDPOINT=silent.url)
        print(f"run with a silent collector: {elapsed * 1000:.0f} ms")
        assert record["status"] == "completed"
    finally:
        silent.close()


BLOCKER = """
import sys

class _NoOtel:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, _NoOtel())
"""


def test_without_the_extra_a_run_works_and_says_why_nothing_is_exported(
    cli: Cli, receiver: OtlpReceiver, downstream: Downstream, tmp_path: Path
) -> None:
    blocker = tmp_path / "no_otel"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    path = cli.env.get("PYTHONPATH", "")
    cli.env["PYTHONPATH"] = f"{blocker}:{path}" if path else str(blocker)
    wf = write_workflow(cli.cwd, "traced", WORKFLOW.format(url=downstream.url))
    record, stderr, _elapsed = _run(
        cli, wf, FLOWTRAIL_OTEL="1", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url
    )
    assert record["status"] == "completed"
    assert "pip install 'flowtrail[otel]'" in stderr
    assert [h["traceparent"] for h in downstream.seen] == [None, None]
    time.sleep(0.5)
    assert receiver.spans == []


@POSTGRES_ONLY
def test_a_worker_exports_the_runs_it_executes_while_it_lives(
    cli: Cli, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    (tmp_path / "queue_blocks.py").write_text(QUEUE_BLOCKS)
    marks = tmp_path / "worked.marks"
    wf = write_workflow(
        tmp_path,
        "worked",
        f"""
        name: worked
        blocks:
          start: {{type: start}}
          mark: {{type: function, call: "queue_blocks:mark", with: {{path: "{marks}"}}}}
        connections: [start -> mark]
        """,
    )
    cli.env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100")
    record = enqueue(cli, wf)
    with worker(cli):
        done = wait_for_status(cli, record["id"], {"completed", "failed", "crashed"})
        spans = receiver.wait_for(done["trace_span_count"])  # sent before the worker stops
    assert done["status"] == "completed"
    assert len(spans) == done["trace_span_count"] == 3
    assert {s.trace_id for s in spans} == {record["id"]}
    (run,) = [s for s in spans if not s.parent_span_id]
    assert run.attributes["flowtrail.run.trigger"] == "cli"  # what enqueued it
    assert run.attributes["flowtrail.run.status"] == "completed"
    assert run.attributes["flowtrail.run.lease_epoch"] == 1
