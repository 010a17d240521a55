"""The queue's names and defaults, importable without Procrastinate (every CLI command
loads these; only the commands that use the queue pay for importing Procrastinate)."""

from __future__ import annotations

from flowtrail.errors import QueueError

TASK_NAME = "flowtrail.execute_run"
DEFAULT_QUEUE = "flowtrail"
DEFAULT_GRACE_SECONDS = 30.0


def require_postgres(url: str) -> None:
    """Queued runs and workers need PostgreSQL: say so for any other database."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise QueueError(
            "queued runs and workers need PostgreSQL (the job queue lives in it); this "
            "database is not PostgreSQL. Use --db postgresql://… (or "
            "FLOWTRAIL_DATABASE_URL), or run the workflow in this process without --queue"
        )
