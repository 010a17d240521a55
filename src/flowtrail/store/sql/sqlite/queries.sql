-- Named queries for the SQLite backend, loaded by flowtrail.store.queries.
-- Parameters are :named; the same names are used by the PostgreSQL file.
-- Status lists arrive as JSON arrays (built from flowtrail.status, never spelled here).

-- name: fold_progress
-- A fragment: every right-hand side sees the row as it was before the UPDATE, so all
-- four columns of a marker are replaced together or not at all. An equal timestamp
-- replaces (the last writer of the same instant wins).
    last_started_block_id = CASE WHEN :started_at IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= :started_at)
        THEN :started_block_id ELSE last_started_block_id END,
    last_started_block_name = CASE WHEN :started_at IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= :started_at)
        THEN :started_block_name ELSE last_started_block_name END,
    last_started_block_type = CASE WHEN :started_at IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= :started_at)
        THEN :started_block_type ELSE last_started_block_type END,
    last_started_at = CASE WHEN :started_at IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= :started_at)
        THEN :started_at ELSE last_started_at END,
    last_completed_block_id = CASE WHEN :completed_at IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= :completed_at)
        THEN :completed_block_id ELSE last_completed_block_id END,
    last_completed_block_name = CASE WHEN :completed_at IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= :completed_at)
        THEN :completed_block_name ELSE last_completed_block_name END,
    last_completed_block_type = CASE WHEN :completed_at IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= :completed_at)
        THEN :completed_block_type ELSE last_completed_block_type END,
    last_completed_success = CASE WHEN :completed_at IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= :completed_at)
        THEN :completed_success ELSE last_completed_success END,
    last_completed_at = CASE WHEN :completed_at IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= :completed_at)
        THEN :completed_at ELSE last_completed_at END,
    cost_total = CASE WHEN :cost_total IS NULL THEN cost_total
        ELSE MAX(cost_total, :cost_total) END,
    marker_write_failures = CASE WHEN :marker_write_failures IS NULL
        THEN marker_write_failures
        ELSE MAX(marker_write_failures, :marker_write_failures) END,

-- name: write_progress
UPDATE workflow_execution_logs SET
-- include: fold_progress
    updated_at = :now
WHERE id = :id AND status = 'running'
-- The bare column, tested in Python: SQLite 3.40 evaluates "x IS NOT NULL" in a RETURNING
-- clause as true for every nullable column of a table whose TEXT primary key is NOT NULL.
RETURNING cancel_requested_at

-- name: finalize
UPDATE workflow_execution_logs SET
-- include: fold_progress
    status = :status,
    finalization_path = :path,
    finalized_by = :finalized_by,
    ended_at = :ended_at,
    duration_ms = :duration_ms,
    output = :output,
    error_message = :error_message,
    error_block_id = :error_block_id,
    completion_failure = :completion_failure,
    execution_data = :execution_data,
    has_trace_spans = :has_trace_spans,
    trace_span_count = :trace_span_count,
    tokens_prompt = :tokens_prompt,
    tokens_completion = :tokens_completion,
    tokens_total = :tokens_total,
    models = :models,
    level = :level,
    pause_state = CASE WHEN :keep_pause_state THEN pause_state ELSE :pause_state END,
    updated_at = :now
WHERE id = :id AND status IN (SELECT value FROM json_each(:sources))
RETURNING status

-- name: append_note
UPDATE workflow_execution_logs SET
    notes = json_insert(notes, '$[#]', json(:note)),
    updated_at = :now
WHERE id = :id
RETURNING status, finalization_path

-- name: request_cancel
-- One statement so that a queued/paused run is flagged and finalized atomically; a run
-- in :request_from but not in :finalize_from (running) is only flagged.
UPDATE workflow_execution_logs SET
    cancel_requested_at = COALESCE(cancel_requested_at, :now),
    cancel_requested_by = CASE WHEN cancel_requested_at IS NULL
        THEN :by ELSE cancel_requested_by END,
    status = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN :cancelled ELSE status END,
    finalization_path = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN :path ELSE finalization_path END,
    finalized_by = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN :finalized_by ELSE finalized_by END,
    ended_at = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN :now ELSE ended_at END,
    duration_ms = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN MAX(1, MIN(:max_duration_ms, CAST(
            (julianday(:now) - julianday(started_at)) * 86400000.0 AS INTEGER)))
        ELSE duration_ms END,
    output = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN :output ELSE output END,
    pause_state = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN NULL ELSE pause_state END,
    level = CASE WHEN status IN (SELECT value FROM json_each(:finalize_from))
        THEN :level ELSE level END,
    updated_at = :now
WHERE id = :id AND status IN (SELECT value FROM json_each(:request_from))
RETURNING status, worker_host, worker_pid

-- name: claim_resume
UPDATE workflow_execution_logs SET
    status = :target,
    finalization_path = NULL,
    finalized_by = NULL,
    ended_at = NULL,
    duration_ms = NULL,
    worker_host = :worker_host,
    worker_pid = :worker_pid,
    claimed_at = :now,
    updated_at = :now
WHERE id = :id AND status = :source AND cancel_requested_at IS NULL
RETURNING *

-- name: cancel_requested
SELECT cancel_requested_at IS NOT NULL AS cancel_requested
FROM workflow_execution_logs WHERE id = :id

-- name: get_status
SELECT status, finalization_path, worker_host, worker_pid
FROM workflow_execution_logs WHERE id = :id

-- name: get_run
SELECT * FROM workflow_execution_logs WHERE id = :id

-- name: run_ids_with_prefix
-- A unique prefix names a run, as git does with commits (the CLI resolves it).
SELECT id FROM workflow_execution_logs
WHERE substr(id, 1, length(:prefix)) = :prefix
ORDER BY id
LIMIT :limit

-- name: run_id_neighbours
-- The ids just before and after one in id order: how long a prefix must be to be unique.
SELECT (SELECT max(id) FROM workflow_execution_logs WHERE id < :id) AS before,
       (SELECT min(id) FROM workflow_execution_logs WHERE id > :id) AS after

-- name: list_runs
SELECT * FROM workflow_execution_logs
WHERE (:status IS NULL OR status = :status)
  AND (:workflow_name IS NULL OR workflow_name = :workflow_name)
ORDER BY started_at DESC, id DESC
LIMIT :limit

-- name: create_run
INSERT INTO workflow_execution_logs (
    id, workflow_name, snapshot_hash, status, "trigger", started_at, deadline_at,
    input, parent_run_id, updated_at, worker_host, worker_pid, claimed_at
) VALUES (
    :id, :workflow_name, :snapshot_hash, :status, :trigger, :started_at, :deadline_at,
    :input, :parent_run_id, :now, :worker_host, :worker_pid, :now
)

-- name: put_snapshot
INSERT INTO workflow_snapshots (definition_hash, workflow_name, definition, created_at)
VALUES (:definition_hash, :workflow_name, :definition, :now)
ON CONFLICT (definition_hash) DO NOTHING

-- name: get_snapshot
SELECT definition FROM workflow_snapshots WHERE definition_hash = :definition_hash

-- name: migrations_table_exists
SELECT count(*) AS present FROM sqlite_master
WHERE type = 'table' AND name = 'flowtrail_migrations'

-- name: applied_versions
SELECT version FROM flowtrail_migrations ORDER BY version

-- name: record_migration
INSERT INTO flowtrail_migrations (version, applied_at) VALUES (:version, :now)

-- name: describe_schema
SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type,
       p."notnull" AS not_null
FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
ORDER BY m.name, p.cid
