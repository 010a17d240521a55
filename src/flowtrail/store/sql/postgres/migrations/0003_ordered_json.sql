-- flowtrail 0003: documents keep the order they were written in.
--
-- jsonb stores objects with their keys sorted (by length, then bytes), so an output
-- written as {"total": 3, "items": []} came back as {"items": [], "total": 3}. json
-- stores the text as given: outputs, inputs, traces, pause snapshots and workflow
-- definitions now read back exactly as written, as on SQLite. notes and models stay
-- jsonb (notes is appended to with jsonb operators; models is a sorted list anyway).
-- Rows written before this migration keep the order jsonb gave them.

ALTER TABLE workflow_execution_logs
    ALTER COLUMN output TYPE json USING output::json,
    ALTER COLUMN input TYPE json USING input::json,
    ALTER COLUMN execution_data TYPE json USING execution_data::json,
    ALTER COLUMN pause_state TYPE json USING pause_state::json;

ALTER TABLE workflow_snapshots
    ALTER COLUMN definition TYPE json USING definition::json;
