"""OpenTelemetry export of run traces (the optional ``flowtrail[otel]`` extra).

Switched on by ``FLOWTRAIL_OTEL=1`` (``Settings.otel``), or, when that is not set, by the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
variables; ``FLOWTRAIL_OTEL=0``, ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``
keep it off. The SDK reads every ``OTEL_*`` variable itself (endpoint, headers, timeout,
compression, certificates, batch sizes, sampler, resource attributes).

A run's trace is exported when its record is finalized (and at each pause), built from
the span tree the recorder kept, with the real start and end times of every span: see
``docs/howto/send-traces-to-opentelemetry.md`` for why, and for the attribute reference.

Importing this package imports no OpenTelemetry module: the SDK is loaded by the first
run that exports (``flowtrail.otel.export``), so flowtrail works without the extra.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowtrail.otel.ids import trace_id, traceparent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

    from flowtrail.otel.export import Exporter

log = logging.getLogger("flowtrail.otel")

EXIT_FLUSH_SECONDS = 2.0
"""At process exit, how long the spans still queued may take to reach the collector;
past it (a collector that is down or slow) they are dropped, so a command never hangs."""

_lock = threading.Lock()
_exporter: Exporter | None = None
_installed = False  # by install(): on for every run unless a run's settings say off
_unavailable = False  # the extra is missing (or the exporter could not be made): said once


@dataclass(frozen=True)
class RunInfo:
    """What the run span says: plain values, filled by the runner (from its finalization)
    or by whoever ended the run from outside (the sweeper)."""

    run_id: str
    workflow: str
    status: str
    started_at: float
    ended_at: float
    path: str | None = None
    finalized_by: str | None = None
    trigger: str | None = None
    attempt: int = 1
    retry_of: str | None = None
    cost_total: float = 0.0
    tokens_prompt: int = 0
    tokens_completion: int = 0
    models: tuple[str, ...] = ()
    error_message: str | None = None
    error_block_id: str | None = None
    completion_failure: str | None = None
    crash_cause: str | None = None
    last_started_block: str | None = None
    last_completed_block: str | None = None
    span_count: int | None = None
    spans_elided: int = 0
    epoch: int = 0
    """The lease epoch of the segment being exported (each resume claims a new one)."""


def wanted(flag: bool | None, env: Mapping[str, str]) -> bool:
    """Whether runs should be exported: ``flag`` (``Settings.otel``) when set, else when
    ``install`` was called, else when an OTLP endpoint is configured in ``env``."""
    if flag is not None:
        return flag
    if _installed:
        return True
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return any(env.get(name) for name in endpoints)


def exporter(flag: bool | None, env: Mapping[str, str]) -> Exporter | None:
    """The process's exporter when export is wanted (made on first use), else None.
    Without the extra installed: None, with one warning per process."""
    global _exporter, _unavailable
    if not wanted(flag, env):
        return None
    with _lock:
        if _exporter is None and not _unavailable:
            try:
                from flowtrail.otel.export import Exporter

                _exporter = Exporter.from_env()
                atexit.register(_at_exit)
            except ImportError as exc:
                _unavailable = True
                log.warning(
                    "OpenTelemetry export is on but the extra is not installed (%s): "
                    "runs are not exported; pip install 'flowtrail[otel]'",
                    exc,
                )
            except Exception:
                _unavailable = True
                log.exception("the OpenTelemetry exporter could not be set up; runs not exported")
        return _exporter


def install(processor: SpanProcessor) -> Exporter:
    """Export every run of this process through ``processor`` (for example the SDK's
    ``SimpleSpanProcessor(InMemorySpanExporter())`` in a test, or a processor of your
    own), unless a run's settings say ``otel=False``. Replaces any exporter made before."""
    global _exporter, _installed, _unavailable
    from flowtrail.otel.export import Exporter

    uninstall()
    with _lock:
        _exporter = Exporter(processor)
        _installed, _unavailable = True, False
        return _exporter


def uninstall() -> None:
    """Flush and shut the process's exporter down; the next run decides afresh."""
    global _exporter, _installed, _unavailable
    with _lock:
        current, _exporter = _exporter, None
        _installed = _unavailable = False
    if current is not None:
        current.close(EXIT_FLUSH_SECONDS)


def flush(timeout: float = 10.0) -> bool:
    """Wait until every run handed to the exporter so far is built and exported (or
    ``timeout`` passes). True when everything went out."""
    current = _exporter
    return True if current is None else current.flush(timeout)


def close() -> None:
    """Send what is queued (for at most ``EXIT_FLUSH_SECONDS``) and stop exporting: done
    at process exit (``atexit``); a command that leaves by ``os._exit`` calls it first."""
    current = _exporter
    if current is not None:
        current.close(EXIT_FLUSH_SECONDS)


_at_exit = close


def http_headers(run_id: str, position: str, block_id: str) -> dict[str, str]:
    """The trace-context headers an ``http`` block sends (W3C Trace Context)."""
    return {"traceparent": traceparent(run_id, position, block_id)}


__all__ = [
    "EXIT_FLUSH_SECONDS",
    "RunInfo",
    "close",
    "exporter",
    "flush",
    "http_headers",
    "install",
    "trace_id",
    "traceparent",
    "uninstall",
    "wanted",
]
