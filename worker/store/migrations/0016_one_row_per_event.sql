-- The dedupe log and the feedback join's call index become one table: every flush wrote one row per
-- event to each, and the second insert (with its indexes) cost more than the first. A call's row now
-- carries what the join needs; feedback and tool commands leave those columns empty.
--
-- keep_until decides when a row is forgotten, set by the flush that writes it: the dedupe window
-- (DEDUPE_WINDOW_S) after it was seen, and for a call at least the feedback window (FEEDBACK_WINDOW_S)
-- after it occurred. Rows from before this migration get the default windows (6 h, 7 days).
ALTER TABLE seen_events
    ADD COLUMN keep_until timestamptz,
    ADD COLUMN request_id text,
    ADD COLUMN occurred_at timestamptz,
    ADD COLUMN minute timestamptz,
    ADD COLUMN model_id text,
    ADD COLUMN task_type text,
    ADD COLUMN layer text,
    ADD COLUMN ok boolean,
    ADD COLUMN experiment_id text,
    ADD COLUMN arm text,
    ADD COLUMN routing_rule_id text,
    ADD COLUMN route_probability float8;

INSERT INTO seen_events AS s (event_id, seen_at, request_id, occurred_at, minute, model_id, task_type, layer, ok,
    experiment_id, arm, routing_rule_id, route_probability)
SELECT event_id, now(), request_id, occurred_at, minute, model_id, task_type, layer, ok, experiment_id, arm,
    routing_rule_id, route_probability
FROM call_index
ON CONFLICT (event_id) DO UPDATE SET request_id = EXCLUDED.request_id, occurred_at = EXCLUDED.occurred_at,
    minute = EXCLUDED.minute, model_id = EXCLUDED.model_id, task_type = EXCLUDED.task_type, layer = EXCLUDED.layer,
    ok = EXCLUDED.ok, experiment_id = EXCLUDED.experiment_id, arm = EXCLUDED.arm,
    routing_rule_id = EXCLUDED.routing_rule_id, route_probability = EXCLUDED.route_probability;
UPDATE seen_events SET keep_until = greatest(seen_at + interval '6 hours', occurred_at + interval '7 days');
ALTER TABLE seen_events ALTER COLUMN keep_until SET NOT NULL;

DROP TABLE call_index;
DROP INDEX seen_events_seen_at;
CREATE INDEX seen_events_keep_until ON seen_events USING brin (keep_until);
CREATE INDEX seen_events_request ON seen_events (request_id, ok, occurred_at)
    WHERE request_id IS NOT NULL AND model_id IS NOT NULL;

-- the calls the join can find, under the name the reports and operators know
CREATE VIEW call_index AS
SELECT event_id, request_id, occurred_at, minute, model_id, task_type, layer, ok, experiment_id, arm,
    routing_rule_id, route_probability
FROM seen_events WHERE model_id IS NOT NULL;
