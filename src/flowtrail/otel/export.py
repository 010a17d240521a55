"""Builds a run's OpenTelemetry spans from its recorded span tree and hands them to the SDK.

Only imported when export is on (it imports the SDK). Everything happens on one
background thread: the run that asked has already ended, nothing here can fail it or
make it wait, and the SDK's ``BatchSpanProcessor`` sends the spans from its own thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from flowtrail.otel import RunInfo
from flowtrail.otel.ids import (
    RUN_KEY,
    block_key,
    iteration_key,
    paused_key,
    position,
    span_id,
    trace_id,
)

log = logging.getLogger("flowtrail.otel")

MAX_TEXT = 4096  # an error message longer than this is cut (an attribute is not a log)
_RUN_ERRORS = {"failed", "crashed"}
Span = dict[str, Any]
Frames = tuple[tuple[str, int], ...]


class _Ids(IdGenerator):
    """Hands the SDK the ids the builder chose for the span it is about to start (set per
    thread just before ``start_span``); random ones for anything else."""

    def __init__(self) -> None:
        self.next = threading.local()

    def generate_span_id(self) -> int:
        value: int | None = getattr(self.next, "span", None)
        return value if value else random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        value: int | None = getattr(self.next, "trace", None)
        return value if value else random.getrandbits(128) or 1


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _resource() -> Resource:
    """The SDK's resource (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``), with
    ``service.name`` = ``flowtrail`` unless one was given."""
    resource = Resource.create({})
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "flowtrail"}))
    return resource


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flowtrail")
    except PackageNotFoundError:
        return "0"


class Exporter:
    def __init__(self, processor: SpanProcessor, otlp: SpanExporter | None = None) -> None:
        self._ids = _Ids()
        self.provider = TracerProvider(resource=_resource(), id_generator=self._ids)
        self.provider.add_span_processor(processor)
        self._otlp = otlp
        self.tracer = self.provider.get_tracer("flowtrail", _version())
        # One daemon thread builds the spans: it never keeps a process alive at exit
        # (``close`` flushes, bounded, before that).
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._closed = False
        threading.Thread(target=self._work, name="flowtrail-otel", daemon=True).start()

    @classmethod
    def from_env(cls) -> Exporter:
        """OTLP over HTTP (protobuf), configured by the SDK from the ``OTEL_*`` variables,
        behind a batch processor (``OTEL_BSP_*``)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter()
        return cls(BatchSpanProcessor(otlp), otlp)

    # -- what runs hand over -------------------------------------------------------------
    def trace(self, info: RunInfo, root: Span, *, paused: bool) -> None:
        """Export a run segment's spans: the run span and what the tree holds that an
        earlier segment did not export. Returns at once; the work happens on the
        exporter's thread."""
        self._submit(lambda: self._build(info, root, paused))

    def run_span(self, info: RunInfo) -> None:
        """Export the run span alone (a run ended from outside its engine)."""
        self._submit(lambda: self._build(info, None, False))

    def _submit(self, job: Callable[[], None]) -> None:
        if self._closed:
            return
        with self._idle:
            self._pending += 1
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:
                log.exception("a run's spans could not be exported; they are left out")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    # -- lifecycle -----------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending == 0, timeout):
                return False
        left = max(0.001, deadline - time.monotonic())
        return bool(self.provider.force_flush(max(1, int(left * 1000))))

    def close(self, timeout: float) -> None:
        """Send what is queued, for at most ``timeout`` seconds, then stop: a collector
        that is down or never answers costs at most that, never a hang. (The SDK's flush
        exports in the calling thread and retries with backoff, so it runs in a thread of
        its own, waited for with the bound.)"""
        if self._closed:
            return
        self._closed = True
        flusher = threading.Thread(
            target=self.flush, args=(timeout,), name="flowtrail-otel-flush", daemon=True
        )
        flusher.start()
        flusher.join(timeout)
        if flusher.is_alive() and self._otlp is not None:  # stops a retry's backoff wait
            with contextlib.suppress(Exception):
                self._otlp.shutdown()
        stopper = threading.Thread(
            target=self._shutdown_provider, name="flowtrail-otel-stop", daemon=True
        )
        stopper.start()
        stopper.join(min(timeout, 0.5))

    def _shutdown_provider(self) -> None:
        with contextlib.suppress(Exception):
            self.provider.shutdown()

    # -- building --------------------------------------------------------------------------
    def _start(
        self,
        name: str,
        tid: int,
        sid: int,
        parent: trace_api.Span | None,
        start: float,
        attributes: dict[str, Any],
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> trace_api.Span:
        self._ids.next.trace, self._ids.next.span = tid, sid
        try:
            context = trace_api_context(parent)
            return self.tracer.start_span(
                name, context=context, kind=kind, attributes=attributes, start_time=_ns(start)
            )
        finally:
            self._ids.next.trace = self._ids.next.span = None

    def _build(self, info: RunInfo, root: Span | None, paused: bool) -> None:
        run = info.run_id
        tid = trace_id(run)

        def sid(key: str, is_paused: bool) -> int:
            return span_id(run, paused_key(key, info.epoch) if is_paused else key)

        started = root.get("_t0") if root is not None else None
        ended = root.get("_t1") if root is not None else None
        run_span = self._start(
            info.workflow,
            tid,
            sid(RUN_KEY, paused),
            None,
            started if isinstance(started, int | float) and started else info.started_at,
            run_attributes(info),
        )
        if root is not None:
            self._children(root, (), run_span, info, sid)
        if info.status in _RUN_ERRORS:
            run_span.set_status(Status(StatusCode.ERROR, _text(info.error_message or info.status)))
        run_span.end(_ns(ended if isinstance(ended, int | float) else info.ended_at))

    def _children(
        self,
        span: Span,
        frames: Frames,
        parent: trace_api.Span,
        info: RunInfo,
        sid: Callable[[str, bool], int],
    ) -> None:
        for child in _list(span.get("children")):
            if not isinstance(child, dict) or child.get("_seeded"):
                continue  # exported with the segment it ended in
            kind = child.get("type")
            if kind == "iteration":
                index = int(child.get("index") or 0)
                inner: Frames = (*frames, (str(span.get("block_id", "")), index))
                key = iteration_key(position(inner))
                attributes = iteration_attributes(info.run_id, span, child, index)
            elif "block_id" in child:
                block = str(child["block_id"])
                key = block_key(position(frames), block)
                inner = (*frames, (block, 0)) if kind == "workflow" else frames
                attributes = block_attributes(info.run_id, child, position(frames))
            else:
                continue
            status = str(child.get("status", ""))
            t0 = child.get("_t0")
            t1 = child.get("_t1")
            otel_span = self._start(
                str(child.get("name") or child.get("block_id") or kind),
                trace_id(info.run_id),
                sid(key, status == "paused"),
                parent,
                t0 if isinstance(t0, int | float) else info.started_at,
                attributes,
                SpanKind.CLIENT if kind == "http" else SpanKind.INTERNAL,
            )
            self._children(child, inner, otel_span, info, sid)
            if status == "error":
                message = child.get("error")
                otel_span.set_status(Status(StatusCode.ERROR, _text(message or "error")))
            otel_span.end(_ns(t1 if isinstance(t1, int | float) else info.ended_at))


def trace_api_context(parent: trace_api.Span | None) -> Any:
    """The context a span starts in: its parent's, or an empty one (a new root: the
    ``_Ids`` generator then gives it the run's trace id)."""
    from opentelemetry.context import Context

    return trace_api.set_span_in_context(parent) if parent is not None else Context()


def _list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else ()


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == "":
        return
    attributes[key] = value


def run_attributes(info: RunInfo) -> dict[str, Any]:
    a: dict[str, Any] = {
        "flowtrail.run.id": info.run_id,
        "flowtrail.workflow.name": info.workflow,
        "flowtrail.run.status": info.status,
        "flowtrail.run.attempt": info.attempt,
        "flowtrail.run.cost_total": float(info.cost_total),
        "flowtrail.run.tokens.prompt": info.tokens_prompt,
        "flowtrail.run.tokens.completion": info.tokens_completion,
        "flowtrail.run.tokens.total": info.tokens_prompt + info.tokens_completion,
    }
    _put(a, "flowtrail.run.finalization_path", info.path)
    _put(a, "flowtrail.run.finalized_by", info.finalized_by)
    _put(a, "flowtrail.run.trigger", info.trigger)
    _put(a, "flowtrail.run.retry_of", info.retry_of)
    if info.models:
        a["flowtrail.run.models"] = list(info.models)
    if info.error_message:
        a["flowtrail.run.error.message"] = _text(info.error_message)
    _put(a, "flowtrail.run.error.block_id", info.error_block_id)
    if info.completion_failure:
        a["flowtrail.run.completion_failure"] = _text(info.completion_failure)
    _put(a, "flowtrail.run.crash_cause", info.crash_cause)
    _put(a, "flowtrail.run.last_started_block", info.last_started_block)
    _put(a, "flowtrail.run.last_completed_block", info.last_completed_block)
    _put(a, "flowtrail.run.span_count", info.span_count)
    if info.spans_elided:
        a["flowtrail.run.spans_elided"] = info.spans_elided
    if info.epoch:
        a["flowtrail.run.lease_epoch"] = info.epoch
    return a


def iteration_attributes(run_id: str, container: Span, span: Span, index: int) -> dict[str, Any]:
    a: dict[str, Any] = {
        "flowtrail.run.id": run_id,
        "flowtrail.block.type": "iteration",
        "flowtrail.block.status": str(span.get("status", "")),
        "flowtrail.iteration.index": index,
    }
    _put(a, "flowtrail.iteration.container_id", container.get("block_id"))
    return a


def block_attributes(run_id: str, span: Span, where: str) -> dict[str, Any]:
    a: dict[str, Any] = {
        "flowtrail.run.id": run_id,
        "flowtrail.block.id": str(span.get("block_id")),
        "flowtrail.block.type": str(span.get("type", "")),
        "flowtrail.block.status": str(span.get("status", "")),
        "flowtrail.block.position": where,
    }
    if span.get("error"):
        a["flowtrail.block.error"] = _text(span["error"])
        a["flowtrail.block.error_handled"] = bool(span.get("error_handled"))
    for key in ("tries", "iterations", "total"):
        if isinstance(span.get(key), int):
            a[f"flowtrail.block.{key}"] = span[key]
    if span.get("reused"):
        a["flowtrail.block.reused"] = True
    if isinstance(span.get("cost"), int | float):
        a["flowtrail.block.cost"] = float(span["cost"])
    model = span.get("model")
    if isinstance(model, str) and model:
        a["flowtrail.block.model"] = model
        a["gen_ai.request.model"] = model
    tokens = span.get("tokens")
    if isinstance(tokens, dict):
        for part in ("prompt", "completion", "total"):
            if isinstance(tokens.get(part), int):
                a[f"flowtrail.block.tokens.{part}"] = tokens[part]
        if isinstance(tokens.get("prompt"), int):
            a["gen_ai.usage.input_tokens"] = tokens["prompt"]
        if isinstance(tokens.get("completion"), int):
            a["gen_ai.usage.output_tokens"] = tokens["completion"]
    if span.get("type") == "http":
        inputs, output = span.get("input"), span.get("output")
        if isinstance(inputs, dict):
            _put(a, "http.request.method", str(inputs.get("method") or "").upper() or None)
            _put(a, "url.full", inputs.get("url") if isinstance(inputs.get("url"), str) else None)
        if isinstance(output, dict) and isinstance(output.get("status"), int):
            a["http.response.status_code"] = output["status"]
    return a
