-- flowtrail 0001: snapshots and the run log.
--
-- Timestamps are ISO-8601 UTC text with microseconds and a '+00:00' suffix, always the
-- same width, so that comparing two of them as strings compares them as times (the
-- monotonic marker folding relies on it). JSON documents are TEXT. Booleans are 0/1.
-- The vocabularies in the CHECK constraints are flowtrail.status; a new word needs a new
-- migration.

CREATE TABLE IF NOT EXISTS flowtrail_migrations (
    version    TEXT PRIMARY KEY NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')
);

CREATE TABLE workflow_snapshots (
    definition_hash TEXT PRIMARY KEY NOT NULL,
    workflow_name   TEXT NOT NULL,
    definition      TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')
);

CREATE TABLE workflow_execution_logs (
    id                      TEXT PRIMARY KEY NOT NULL,
    workflow_name           TEXT NOT NULL,
    snapshot_hash           TEXT NOT NULL REFERENCES workflow_snapshots (definition_hash),
    status                  TEXT NOT NULL CHECK (status IN (
                                'queued', 'running', 'paused', 'completed', 'failed',
                                'cancelled', 'crashed')),
    level                   TEXT NOT NULL DEFAULT 'info',
    "trigger"               TEXT NOT NULL,
    started_at              TEXT NOT NULL,
    ended_at                TEXT,
    duration_ms             INTEGER,
    deadline_at             TEXT,
    last_started_block_id   TEXT,
    last_started_block_name TEXT,
    last_started_block_type TEXT,
    last_started_at         TEXT,
    last_completed_block_id   TEXT,
    last_completed_block_name TEXT,
    last_completed_block_type TEXT,
    last_completed_at         TEXT,
    last_completed_success    INTEGER CHECK (last_completed_success IN (0, 1)),
    finalization_path       TEXT CHECK (finalization_path IN (
                                'completed', 'fallback_completed', 'force_failed',
                                'cancelled', 'paused', 'crashed', 'expired')),
    finalized_by            TEXT CHECK (finalized_by IN (
                                'engine', 'sweeper', 'api', 'reconciler')),
    completion_failure      TEXT,
    error_message           TEXT,
    error_block_id          TEXT,
    has_trace_spans         INTEGER NOT NULL DEFAULT 0 CHECK (has_trace_spans IN (0, 1)),
    trace_span_count        INTEGER NOT NULL DEFAULT 0,
    cost_total              REAL NOT NULL DEFAULT 0,
    tokens_prompt           INTEGER NOT NULL DEFAULT 0,
    tokens_completion       INTEGER NOT NULL DEFAULT 0,
    tokens_total            INTEGER NOT NULL DEFAULT 0,
    models                  TEXT NOT NULL DEFAULT '[]',
    execution_data          TEXT,
    output                  TEXT,
    input                   TEXT,
    marker_write_failures   INTEGER NOT NULL DEFAULT 0,
    cancel_requested_at     TEXT,
    cancel_requested_by     TEXT,
    pause_state             TEXT,
    notes                   TEXT NOT NULL DEFAULT '[]',
    parent_run_id           TEXT,
    updated_at              TEXT NOT NULL
                                DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')
);

CREATE INDEX workflow_execution_logs_status_idx
    ON workflow_execution_logs (status);
CREATE INDEX workflow_execution_logs_workflow_started_idx
    ON workflow_execution_logs (workflow_name, started_at);
CREATE INDEX workflow_execution_logs_started_idx
    ON workflow_execution_logs (started_at);
