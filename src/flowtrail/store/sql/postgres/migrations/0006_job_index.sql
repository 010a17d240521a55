-- flowtrail 0006: the reconciler matches queue jobs with their runs in both directions;
-- from a job still waiting or running to its run, it looks the run up by job_id.
CREATE INDEX workflow_execution_logs_job_idx
    ON workflow_execution_logs (job_id) WHERE job_id IS NOT NULL;
