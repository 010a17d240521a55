-- flowtrail 0007: the run list (Store.list_summaries) pages newest first by
-- (started_at DESC, id DESC) with a keyset cursor. Its indexes end in (started_at, id)
-- so a page is read in order from the index and stops after `limit` rows, with no sort
-- and no ties left unordered: the whole list, one status, one workflow, and the runs
-- with an error (a partial index: they are few, and "has error" must not scan the rest).
-- They replace the 0001 indexes on (status), (workflow_name, started_at) and
-- (started_at), which each is a prefix-compatible extension of.
CREATE INDEX workflow_execution_logs_list_idx
    ON workflow_execution_logs (started_at DESC, id DESC);
CREATE INDEX workflow_execution_logs_status_list_idx
    ON workflow_execution_logs (status, started_at DESC, id DESC);
CREATE INDEX workflow_execution_logs_workflow_list_idx
    ON workflow_execution_logs (workflow_name, started_at DESC, id DESC);
CREATE INDEX workflow_execution_logs_error_list_idx
    ON workflow_execution_logs (started_at DESC, id DESC)
    WHERE error_message IS NOT NULL OR error_block_id IS NOT NULL;
DROP INDEX workflow_execution_logs_status_idx;
DROP INDEX workflow_execution_logs_workflow_started_idx;
DROP INDEX workflow_execution_logs_started_idx;
