"""The schema the migrations are expected to build, declared once for both backends.

A contract test builds a database from the migrations and compares its introspected
columns with :func:`expected_schema`, so a migration that drifts from what the code reads
and writes fails loudly.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

# "document": JSON read back exactly as written, key order included (PostgreSQL json,
# since 0003); "json": JSON the database may normalise (PostgreSQL jsonb).
CoarseType = Literal["text", "integer", "bigint", "real", "bool", "timestamp", "json", "document"]


class Column(NamedTuple):
    type: CoarseType
    nullable: bool = True


def _required(type_: CoarseType) -> Column:
    return Column(type_, nullable=False)


TABLES: dict[str, dict[str, Column]] = {
    "flowtrail_migrations": {
        "version": _required("text"),
        "applied_at": _required("timestamp"),
    },
    "workflow_snapshots": {
        "definition_hash": _required("text"),
        "workflow_name": _required("text"),
        "definition": _required("document"),
        "created_at": _required("timestamp"),
    },
    "workflow_execution_logs": {
        "id": _required("text"),
        "workflow_name": _required("text"),
        "snapshot_hash": _required("text"),
        "status": _required("text"),
        "level": _required("text"),
        "trigger": _required("text"),
        "started_at": _required("timestamp"),
        "ended_at": Column("timestamp"),
        "duration_ms": Column("bigint"),
        "deadline_at": Column("timestamp"),
        "last_started_block_id": Column("text"),
        "last_started_block_name": Column("text"),
        "last_started_block_type": Column("text"),
        "last_started_at": Column("timestamp"),
        "last_completed_block_id": Column("text"),
        "last_completed_block_name": Column("text"),
        "last_completed_block_type": Column("text"),
        "last_completed_at": Column("timestamp"),
        "last_completed_success": Column("bool"),
        "finalization_path": Column("text"),
        "finalized_by": Column("text"),
        "completion_failure": Column("text"),
        "error_message": Column("text"),
        "error_block_id": Column("text"),
        "has_trace_spans": _required("bool"),
        "trace_span_count": _required("integer"),
        "cost_total": _required("real"),
        "tokens_prompt": _required("bigint"),
        "tokens_completion": _required("bigint"),
        "tokens_total": _required("bigint"),
        "models": _required("json"),
        "execution_data": Column("document"),
        "output": Column("document"),
        "input": Column("document"),
        "marker_write_failures": _required("integer"),
        "cancel_requested_at": Column("timestamp"),
        "cancel_requested_by": Column("text"),
        "pause_state": Column("document"),
        "notes": _required("json"),
        "parent_run_id": Column("text"),
        "updated_at": _required("timestamp"),
        # 0002: the process executing the run (created it or last resumed it)
        "worker_host": Column("text"),
        "worker_pid": Column("integer"),
        "claimed_at": Column("timestamp"),
        # 0004: leases, the queue and recovery
        "lease_epoch": _required("integer"),
        "lease_expires_at": Column("timestamp"),
        "heartbeat_at": Column("timestamp"),
        "worker_id": Column("text"),
        "worker_started_at": Column("timestamp"),
        "loop_lag_ms": Column("integer"),
        "loop_blocked_since": Column("timestamp"),
        "queue_name": Column("text"),
        "job_id": Column("bigint"),
        "queued_at": Column("timestamp"),
        "expires_at": Column("timestamp"),
        "crash_cause": Column("text"),
        "retry_of": Column("text"),
        "retried_by": Column("text"),
        "retry_from_block": Column("text"),
        "attempt": _required("integer"),
        # 0008: when `flowtrail prune` dropped the run's trace, steps and output
        "pruned_at": Column("timestamp"),
        # 0009: a failure's path through child workflows, for the list (no trace read)
        "error_path": Column("document"),
    },
    # 0004: one row per block execution at a position
    "workflow_steps": {
        "run_id": _required("text"),
        "position": _required("text"),
        "block_id": _required("text"),
        "block_type": _required("text"),
        "epoch": _required("integer"),
        "status": _required("text"),
        "started_at": _required("timestamp"),
        "ended_at": Column("timestamp"),
        "tries": _required("integer"),
        "cost": Column("real"),
        "handle": Column("text"),
        "output": Column("document"),
        "output_truncated": _required("bool"),
        "error": Column("text"),
        # 0005: a container's progress (a block's step leaves both NULL)
        "iterations_total": Column("integer"),
        "iterations_done": Column("integer"),
    },
}

# How each coarse type is spelled in each backend's introspection output. SQLite keeps
# timestamps and JSON as TEXT and booleans as INTEGER (see its 0001 migration).
PHYSICAL: dict[str, dict[CoarseType, str]] = {
    "sqlite": {
        "text": "text",
        "integer": "integer",
        "bigint": "integer",
        "real": "real",
        "bool": "integer",
        "timestamp": "text",
        "json": "text",
        "document": "text",
    },
    "postgres": {
        "text": "text",
        "integer": "integer",
        "bigint": "bigint",
        "real": "double precision",
        "bool": "boolean",
        "timestamp": "timestamp with time zone",
        "json": "jsonb",
        "document": "json",
    },
}

# table -> column -> (physical type, nullable): what ``describe_schema()`` returns.
SchemaDescription = dict[str, dict[str, tuple[str, bool]]]


def expected_schema(backend: str) -> SchemaDescription:
    physical = PHYSICAL[backend]
    return {
        table: {name: (physical[col.type], col.nullable) for name, col in columns.items()}
        for table, columns in TABLES.items()
    }
