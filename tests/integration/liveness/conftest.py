"""Fixtures for the liveness tests: the durable-record fixtures (``db``, ``db2``,
``flow``), shared, on both backends."""

from tests.integration.diagnostics.conftest import db, db2, flow

__all__ = ["db", "db2", "flow"]
