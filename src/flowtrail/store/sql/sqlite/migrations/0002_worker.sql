-- flowtrail 0002: which process executes a run.
--
-- worker_host / worker_pid name the process that created or last resumed the run, and
-- claimed_at when it took it (ISO-8601 UTC text, like every timestamp here). A cancel
-- uses them to say truthfully when no process is executing a running run; the liveness
-- sweeper will use them to find such runs. Rows from before this migration have NULLs.

ALTER TABLE workflow_execution_logs ADD COLUMN worker_host TEXT;
ALTER TABLE workflow_execution_logs ADD COLUMN worker_pid INTEGER;
ALTER TABLE workflow_execution_logs ADD COLUMN claimed_at TEXT;
