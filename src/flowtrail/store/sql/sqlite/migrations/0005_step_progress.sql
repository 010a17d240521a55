-- flowtrail 0005: container progress on steps (see the PostgreSQL 0005), and the steps
-- table rebuilt WITHOUT ROWID: a step is found and upserted by its primary key on every
-- progress write, and without a rowid that key is the table's only b-tree (one insert
-- per step instead of two). Rows written since 0004 are copied over.

CREATE TABLE workflow_steps_0005 (
    run_id           TEXT NOT NULL REFERENCES workflow_execution_logs (id) ON DELETE CASCADE,
    position         TEXT NOT NULL,
    block_id         TEXT NOT NULL,
    block_type       TEXT NOT NULL,
    epoch            INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    tries            INTEGER NOT NULL DEFAULT 0,
    cost             REAL,
    handle           TEXT,
    output           TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0 CHECK (output_truncated IN (0, 1)),
    error            TEXT,
    iterations_total INTEGER,
    iterations_done  INTEGER,
    PRIMARY KEY (run_id, position, block_id)
) WITHOUT ROWID;

INSERT INTO workflow_steps_0005 (
    run_id, position, block_id, block_type, epoch, status, started_at, ended_at, tries,
    cost, handle, output, output_truncated, error)
SELECT run_id, position, block_id, block_type, epoch, status, started_at, ended_at, tries,
    cost, handle, output, output_truncated, error
FROM workflow_steps;

DROP TABLE workflow_steps;
ALTER TABLE workflow_steps_0005 RENAME TO workflow_steps;
