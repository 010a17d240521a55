-- flowtrail 0004: runs that outlive their process.
--
-- The same columns and table as the PostgreSQL 0004 (its comment explains each);
-- timestamps are ISO-8601 UTC text as everywhere here, booleans 0/1.

ALTER TABLE workflow_execution_logs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflow_execution_logs ADD COLUMN lease_expires_at TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN heartbeat_at TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN worker_id TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN worker_started_at TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN loop_lag_ms INTEGER;
ALTER TABLE workflow_execution_logs ADD COLUMN loop_blocked_since TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN queue_name TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN job_id INTEGER;
ALTER TABLE workflow_execution_logs ADD COLUMN queued_at TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN expires_at TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN crash_cause TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN retry_of TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN retried_by TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN retry_from_block TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;

CREATE INDEX workflow_execution_logs_lease_idx
    ON workflow_execution_logs (lease_expires_at) WHERE status = 'running';
CREATE INDEX workflow_execution_logs_expiry_idx
    ON workflow_execution_logs (expires_at) WHERE status = 'queued';
CREATE INDEX workflow_execution_logs_cancel_idx
    ON workflow_execution_logs (cancel_requested_at)
    WHERE status IN ('queued', 'running', 'paused') AND cancel_requested_at IS NOT NULL;

CREATE TABLE workflow_steps (
    run_id           TEXT NOT NULL REFERENCES workflow_execution_logs (id) ON DELETE CASCADE,
    position         TEXT NOT NULL,
    block_id         TEXT NOT NULL,
    block_type       TEXT NOT NULL,
    epoch            INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    tries            INTEGER NOT NULL DEFAULT 0,
    cost             REAL,
    handle           TEXT,
    output           TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0 CHECK (output_truncated IN (0, 1)),
    error            TEXT,
    PRIMARY KEY (run_id, position, block_id)
);
