-- Per-minute sums of calls that carry the probability their router drew the model with
-- (route_probability): what off-policy estimates of other rules read (worker/routing/counterfactual.py).
-- Only calls with a propensity create rows; the key is the task type first, as every read is per task
-- and from a rule's publication on.
CREATE TABLE route_propensity_minutes (
    task_type text NOT NULL,
    minute timestamptz NOT NULL,
    model_id text NOT NULL,
    calls bigint NOT NULL DEFAULT 0,
    unweighted bigint NOT NULL DEFAULT 0,
    weight float8 NOT NULL DEFAULT 0,
    weight_sq float8 NOT NULL DEFAULT 0,
    success_w float8 NOT NULL DEFAULT 0,
    success_w_sq float8 NOT NULL DEFAULT 0,
    cost_w float8 NOT NULL DEFAULT 0,
    cost_w_sq float8 NOT NULL DEFAULT 0,
    cost_sq_w_sq float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (task_type, minute, model_id)
);

-- The feedback join keeps each call's propensity: quality, which arrives after the flush that counted the
-- call, is estimated off-policy at read time from the judged calls (call_feedback joined to call_index).
ALTER TABLE call_index ADD COLUMN route_probability float8;
