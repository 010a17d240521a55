-- flowtrail 0006: the same index as the PostgreSQL 0006 (SQLite has no job queue; the
-- index keeps both schemas alike).
CREATE INDEX workflow_execution_logs_job_idx
    ON workflow_execution_logs (job_id) WHERE job_id IS NOT NULL;
