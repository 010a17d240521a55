-- flowtrail 0005: container progress on steps.
--
-- A loop or parallel is recorded as a step too (at its own position, like a block), so
-- that a run still going can show how far each container got: iterations_total is
-- known when the container starts (NULL for while/do_while loops), iterations_done
-- counts the iterations or branches that ended. Both stay NULL on a block's step.

ALTER TABLE workflow_steps
    ADD COLUMN iterations_total integer,
    ADD COLUMN iterations_done integer;
