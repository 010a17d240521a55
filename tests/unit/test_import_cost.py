"""A SQLite user never pays for the PostgreSQL driver or the queue: importing flowtrail
loads neither (their modules are imported when a PostgreSQL store or the queue is used)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_flowtrail_loads_no_postgresql_driver_and_no_queue() -> None:
    probe = (
        "import sys, flowtrail, flowtrail.runner, flowtrail.liveness.sweeper;"
        "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'procrastinate') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
