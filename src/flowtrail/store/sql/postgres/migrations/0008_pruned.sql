-- flowtrail 0008: retention. `flowtrail prune` drops an old ended run's trace, steps and
-- output and keeps its summary row; pruned_at says when, so a reader can tell "pruned"
-- from "never had one". The partial index is what prune walks (oldest first, keyset on
-- started_at, id): rows already pruned leave it, so a second prune reads only new work.
ALTER TABLE workflow_execution_logs ADD COLUMN pruned_at timestamptz;
CREATE INDEX workflow_execution_logs_unpruned_idx
    ON workflow_execution_logs (started_at, id) WHERE pruned_at IS NULL;
