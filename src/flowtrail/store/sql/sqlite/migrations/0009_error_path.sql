-- flowtrail 0009: a failure's path through child workflows gets a column of its own.
-- It was only inside the trace (execution_data.error_path), so the run list, to show a
-- failed run's error as the record does, had to read and parse the whole trace of every
-- failed run on the page (megabytes each). The finalization writes both; old rows are
-- filled from their trace once, here.
ALTER TABLE workflow_execution_logs ADD COLUMN error_path TEXT;
UPDATE workflow_execution_logs
SET error_path = json_extract(execution_data, '$.error_path')
WHERE (error_message IS NOT NULL OR error_block_id IS NOT NULL)
  AND json_valid(execution_data)
  AND json_type(execution_data, '$.error_path') = 'array';
