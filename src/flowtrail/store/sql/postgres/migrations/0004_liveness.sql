-- flowtrail 0004: runs that outlive their process.
--
-- Leases: every claim of a run (the in-process runner's, a queue worker's, a resume's)
-- takes a new lease_epoch; every progress write, lease renewal and terminal write of the
-- engine that holds it names that epoch, so an engine whose lease was taken away can no
-- longer change the run. lease_expires_at is renewed by the engine's heartbeat thread;
-- the sweeper ends a running run whose lease expired as crashed (crash_cause says why).
-- loop_lag_ms / loop_blocked_since are the heartbeat's evidence of an unresponsive event
-- loop. worker_id names the worker (a queue worker's id, or host:pid for an in-process
-- run); worker_started_at is when that process started (a reused pid is not the same
-- process).
--
-- Queue: queue_name and job_id link a queued run to its Procrastinate job; queued_at is
-- when it was enqueued and expires_at when it expires unclaimed.
--
-- Recovery: a retry is a new run linked both ways (retry_of / retried_by), attempt
-- counting from 1; retry_from_block is the block a `--from` retry re-ran from.
--
-- Steps: one row per block execution at a position (the loop iterations, parallel
-- branches and child workflows around it, '' at the top level), written on the same
-- round trip as the progress markers, by the epoch that ran it.

ALTER TABLE workflow_execution_logs
    ADD COLUMN lease_epoch integer NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN worker_id text,
    ADD COLUMN worker_started_at timestamptz,
    ADD COLUMN loop_lag_ms integer,
    ADD COLUMN loop_blocked_since timestamptz,
    ADD COLUMN queue_name text,
    ADD COLUMN job_id bigint,
    ADD COLUMN queued_at timestamptz,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN crash_cause text,
    ADD COLUMN retry_of text,
    ADD COLUMN retried_by text,
    ADD COLUMN retry_from_block text,
    ADD COLUMN attempt integer NOT NULL DEFAULT 1;

-- What the sweeper scans, each an index scan over the few non-terminal rows.
CREATE INDEX workflow_execution_logs_lease_idx
    ON workflow_execution_logs (lease_expires_at) WHERE status = 'running';
CREATE INDEX workflow_execution_logs_expiry_idx
    ON workflow_execution_logs (expires_at) WHERE status = 'queued';
CREATE INDEX workflow_execution_logs_cancel_idx
    ON workflow_execution_logs (cancel_requested_at)
    WHERE status IN ('queued', 'running', 'paused') AND cancel_requested_at IS NOT NULL;

CREATE TABLE workflow_steps (
    run_id           text NOT NULL REFERENCES workflow_execution_logs (id) ON DELETE CASCADE,
    position         text NOT NULL,
    block_id         text NOT NULL,
    block_type       text NOT NULL,
    epoch            integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    tries            integer NOT NULL DEFAULT 0,
    cost             double precision,
    handle           text,
    output           json,
    output_truncated boolean NOT NULL DEFAULT false,
    error            text,
    PRIMARY KEY (run_id, position, block_id)
);
