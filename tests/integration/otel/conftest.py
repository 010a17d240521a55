"""Fixtures for the OpenTelemetry tests: the durable-record fixtures (``db``, ``flow``) on
both backends, and the SDK's in-memory exporter installed for the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowtrail import otel
from tests.integration.diagnostics.conftest import db, db2, flow

__all__ = ["db", "db2", "flow", "memory"]


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    """Every run of the test is exported here (``flowtrail.otel.install``)."""
    exporter = InMemorySpanExporter()
    otel.install(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        otel.uninstall()
