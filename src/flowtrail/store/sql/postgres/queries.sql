-- Named queries for the PostgreSQL backend, loaded by flowtrail.store.queries.
-- Parameters are pyformat-named; the names match the SQLite file. Status lists arrive as
-- text arrays built from flowtrail.status. Comment lines are stripped by the loader.

-- name: fold_progress
-- A fragment: every right-hand side sees the row as it was before the UPDATE, so all
-- columns of a marker are replaced together or not at all. An equal timestamp replaces
-- (the last writer of the same instant wins). GREATEST ignores a NULL argument.
    last_started_block_id = CASE WHEN %(started_at)s::timestamptz IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= %(started_at)s::timestamptz)
        THEN %(started_block_id)s::text ELSE last_started_block_id END,
    last_started_block_name = CASE WHEN %(started_at)s::timestamptz IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= %(started_at)s::timestamptz)
        THEN %(started_block_name)s::text ELSE last_started_block_name END,
    last_started_block_type = CASE WHEN %(started_at)s::timestamptz IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= %(started_at)s::timestamptz)
        THEN %(started_block_type)s::text ELSE last_started_block_type END,
    last_started_at = CASE WHEN %(started_at)s::timestamptz IS NOT NULL
        AND (last_started_at IS NULL OR last_started_at <= %(started_at)s::timestamptz)
        THEN %(started_at)s::timestamptz ELSE last_started_at END,
    last_completed_block_id = CASE WHEN %(completed_at)s::timestamptz IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= %(completed_at)s::timestamptz)
        THEN %(completed_block_id)s::text ELSE last_completed_block_id END,
    last_completed_block_name = CASE WHEN %(completed_at)s::timestamptz IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= %(completed_at)s::timestamptz)
        THEN %(completed_block_name)s::text ELSE last_completed_block_name END,
    last_completed_block_type = CASE WHEN %(completed_at)s::timestamptz IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= %(completed_at)s::timestamptz)
        THEN %(completed_block_type)s::text ELSE last_completed_block_type END,
    last_completed_success = CASE WHEN %(completed_at)s::timestamptz IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= %(completed_at)s::timestamptz)
        THEN %(completed_success)s::boolean ELSE last_completed_success END,
    last_completed_at = CASE WHEN %(completed_at)s::timestamptz IS NOT NULL
        AND (last_completed_at IS NULL OR last_completed_at <= %(completed_at)s::timestamptz)
        THEN %(completed_at)s::timestamptz ELSE last_completed_at END,
    cost_total = GREATEST(cost_total, %(cost_total)s::double precision),
    marker_write_failures = GREATEST(marker_write_failures,
        %(marker_write_failures)s::integer),

-- name: write_progress
UPDATE workflow_execution_logs SET
-- include: fold_progress
    updated_at = %(now)s::timestamptz
WHERE id = %(id)s::text AND status = 'running'
RETURNING cancel_requested_at

-- name: finalize
UPDATE workflow_execution_logs SET
-- include: fold_progress
    status = %(status)s::text,
    finalization_path = %(path)s::text,
    finalized_by = %(finalized_by)s::text,
    ended_at = %(ended_at)s::timestamptz,
    duration_ms = %(duration_ms)s::bigint,
    output = %(output)s::json,
    error_message = %(error_message)s::text,
    error_block_id = %(error_block_id)s::text,
    completion_failure = %(completion_failure)s::text,
    execution_data = %(execution_data)s::json,
    has_trace_spans = %(has_trace_spans)s::boolean,
    trace_span_count = %(trace_span_count)s::integer,
    tokens_prompt = %(tokens_prompt)s::bigint,
    tokens_completion = %(tokens_completion)s::bigint,
    tokens_total = %(tokens_total)s::bigint,
    models = %(models)s::jsonb,
    level = %(level)s::text,
    pause_state = CASE WHEN %(keep_pause_state)s::boolean THEN pause_state
        ELSE %(pause_state)s::json END,
    updated_at = %(now)s::timestamptz
WHERE id = %(id)s::text AND status = ANY(%(sources)s::text[])
RETURNING status

-- name: append_note
UPDATE workflow_execution_logs SET
    notes = notes || jsonb_build_array(%(note)s::jsonb),
    updated_at = %(now)s::timestamptz
WHERE id = %(id)s::text
RETURNING status, finalization_path

-- name: request_cancel
-- One statement so that a queued/paused run is flagged and finalized atomically; a run
-- in request_from but not in finalize_from (running) is only flagged.
UPDATE workflow_execution_logs SET
    cancel_requested_at = COALESCE(cancel_requested_at, %(now)s::timestamptz),
    cancel_requested_by = CASE WHEN cancel_requested_at IS NULL
        THEN %(by)s::text ELSE cancel_requested_by END,
    status = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN %(cancelled)s::text ELSE status END,
    finalization_path = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN %(path)s::text ELSE finalization_path END,
    finalized_by = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN %(finalized_by)s::text ELSE finalized_by END,
    ended_at = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN %(now)s::timestamptz ELSE ended_at END,
    duration_ms = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN GREATEST(1, LEAST(%(max_duration_ms)s::bigint, floor(
            extract(epoch FROM (%(now)s::timestamptz - started_at)) * 1000)::bigint))
        ELSE duration_ms END,
    output = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN %(output)s::json ELSE output END,
    pause_state = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN NULL ELSE pause_state END,
    level = CASE WHEN status = ANY(%(finalize_from)s::text[])
        THEN %(level)s::text ELSE level END,
    updated_at = %(now)s::timestamptz
WHERE id = %(id)s::text AND status = ANY(%(request_from)s::text[])
RETURNING status, worker_host, worker_pid

-- name: claim_resume
UPDATE workflow_execution_logs SET
    status = %(target)s::text,
    finalization_path = NULL,
    finalized_by = NULL,
    ended_at = NULL,
    duration_ms = NULL,
    worker_host = %(worker_host)s::text,
    worker_pid = %(worker_pid)s::integer,
    claimed_at = %(now)s::timestamptz,
    updated_at = %(now)s::timestamptz
WHERE id = %(id)s::text AND status = %(source)s::text AND cancel_requested_at IS NULL
RETURNING *

-- name: cancel_requested
SELECT cancel_requested_at IS NOT NULL AS cancel_requested
FROM workflow_execution_logs WHERE id = %(id)s::text

-- name: get_status
SELECT status, finalization_path, worker_host, worker_pid
FROM workflow_execution_logs WHERE id = %(id)s::text

-- name: get_run
SELECT * FROM workflow_execution_logs WHERE id = %(id)s::text

-- name: run_ids_with_prefix
-- A unique prefix names a run, as git does with commits (the CLI resolves it).
SELECT id FROM workflow_execution_logs
WHERE substr(id, 1, length(%(prefix)s::text)) = %(prefix)s::text
ORDER BY id
LIMIT %(limit)s

-- name: run_id_neighbours
-- The ids just before and after one in id order: how long a prefix must be to be unique.
SELECT (SELECT max(id) FROM workflow_execution_logs WHERE id < %(id)s::text) AS before,
       (SELECT min(id) FROM workflow_execution_logs WHERE id > %(id)s::text) AS after

-- name: list_runs
SELECT * FROM workflow_execution_logs
WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(workflow_name)s::text IS NULL OR workflow_name = %(workflow_name)s::text)
ORDER BY started_at DESC, id DESC
LIMIT %(limit)s::bigint

-- name: create_run
INSERT INTO workflow_execution_logs (
    id, workflow_name, snapshot_hash, status, "trigger", started_at, deadline_at,
    input, parent_run_id, updated_at, worker_host, worker_pid, claimed_at
) VALUES (
    %(id)s::text, %(workflow_name)s::text, %(snapshot_hash)s::text, %(status)s::text,
    %(trigger)s::text, %(started_at)s::timestamptz, %(deadline_at)s::timestamptz,
    %(input)s::json, %(parent_run_id)s::text, %(now)s::timestamptz,
    %(worker_host)s::text, %(worker_pid)s::integer, %(now)s::timestamptz
)

-- name: put_snapshot
INSERT INTO workflow_snapshots (definition_hash, workflow_name, definition, created_at)
VALUES (%(definition_hash)s::text, %(workflow_name)s::text, %(definition)s::json,
        %(now)s::timestamptz)
ON CONFLICT (definition_hash) DO NOTHING

-- name: get_snapshot
SELECT definition FROM workflow_snapshots WHERE definition_hash = %(definition_hash)s::text

-- name: migration_lock
-- Serializes concurrent migrators until their transaction ends. The key only has to be
-- fixed and unlikely to collide: the first eight bytes of "flowtrail" as an integer.
SELECT pg_advisory_xact_lock(7380396448198844777)

-- name: migrations_table_exists
SELECT count(*) AS present FROM information_schema.tables
WHERE table_schema = current_schema() AND table_name = 'flowtrail_migrations'

-- name: applied_versions
SELECT version FROM flowtrail_migrations ORDER BY version

-- name: record_migration
INSERT INTO flowtrail_migrations (version, applied_at)
VALUES (%(version)s::text, %(now)s::timestamptz)

-- name: describe_schema
SELECT table_name::text AS table_name, column_name::text AS column_name,
       data_type::text AS data_type, is_nullable = 'NO' AS not_null
FROM information_schema.columns
WHERE table_schema = current_schema()
ORDER BY table_name, ordinal_position
