-- flowtrail 0005: the same index as the PostgreSQL 0005 (SQLite has no job queue; the
-- index keeps both schemas alike).
CREATE INDEX workflow_execution_logs_job_idx
    ON workflow_execution_logs (job_id) WHERE job_id IS NOT NULL;
