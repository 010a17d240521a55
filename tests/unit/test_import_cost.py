"""A SQLite user never pays for the PostgreSQL driver, the queue or OpenTelemetry:
importing flowtrail loads none of them (their modules are imported when a PostgreSQL
store, the queue or trace export is used)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_flowtrail_loads_no_postgresql_driver_no_queue_no_opentelemetry() -> None:
    probe = (
        "import sys, flowtrail, flowtrail.runner, flowtrail.liveness.sweeper, flowtrail.otel;"
        "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'procrastinate', 'opentelemetry')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
