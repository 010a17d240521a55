-- flowtrail 0001: snapshots and the run log.
--
-- The vocabularies in the CHECK constraints are flowtrail.status; a new word needs a new
-- migration.

CREATE TABLE IF NOT EXISTS flowtrail_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workflow_snapshots (
    definition_hash text PRIMARY KEY,
    workflow_name   text NOT NULL,
    definition      jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workflow_execution_logs (
    id                      text PRIMARY KEY,
    workflow_name           text NOT NULL,
    snapshot_hash           text NOT NULL REFERENCES workflow_snapshots (definition_hash),
    status                  text NOT NULL CHECK (status IN (
                                'queued', 'running', 'paused', 'completed', 'failed',
                                'cancelled', 'crashed')),
    level                   text NOT NULL DEFAULT 'info',
    "trigger"               text NOT NULL,
    started_at              timestamptz NOT NULL,
    ended_at                timestamptz,
    duration_ms             bigint,
    deadline_at             timestamptz,
    last_started_block_id   text,
    last_started_block_name text,
    last_started_block_type text,
    last_started_at         timestamptz,
    last_completed_block_id   text,
    last_completed_block_name text,
    last_completed_block_type text,
    last_completed_at         timestamptz,
    last_completed_success    boolean,
    finalization_path       text CHECK (finalization_path IN (
                                'completed', 'fallback_completed', 'force_failed',
                                'cancelled', 'paused', 'crashed', 'expired')),
    finalized_by            text CHECK (finalized_by IN (
                                'engine', 'sweeper', 'api', 'reconciler')),
    completion_failure      text,
    error_message           text,
    error_block_id          text,
    has_trace_spans         boolean NOT NULL DEFAULT false,
    trace_span_count        integer NOT NULL DEFAULT 0,
    cost_total              double precision NOT NULL DEFAULT 0,
    tokens_prompt           bigint NOT NULL DEFAULT 0,
    tokens_completion       bigint NOT NULL DEFAULT 0,
    tokens_total            bigint NOT NULL DEFAULT 0,
    models                  jsonb NOT NULL DEFAULT '[]'::jsonb,
    execution_data          jsonb,
    output                  jsonb,
    input                   jsonb,
    marker_write_failures   integer NOT NULL DEFAULT 0,
    cancel_requested_at     timestamptz,
    cancel_requested_by     text,
    pause_state             jsonb,
    notes                   jsonb NOT NULL DEFAULT '[]'::jsonb,
    parent_run_id           text,
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workflow_execution_logs_status_idx
    ON workflow_execution_logs (status);
CREATE INDEX workflow_execution_logs_workflow_started_idx
    ON workflow_execution_logs (workflow_name, started_at);
CREATE INDEX workflow_execution_logs_started_idx
    ON workflow_execution_logs (started_at);
