-- Routing that stays right when the router obeys it: 1-second health per (model, task type),
-- circuit breakers with half-open probes per (model, scope), and the catalogue of models the
-- gateway declares it can route to (models seen in events come from model_performance).
TRUNCATE model_health;  -- fast-path buckets only; refilled within a minute of traffic
ALTER TABLE model_health ADD COLUMN task_type text NOT NULL DEFAULT '';
ALTER TABLE model_health DROP CONSTRAINT model_health_pkey;
ALTER TABLE model_health ADD PRIMARY KEY (bucket, model_id, task_type, layer);
ALTER TABLE model_health ALTER COLUMN task_type DROP DEFAULT;

-- One circuit breaker per model and scope (a task type, or '*' for every task type). A closed
-- breaker is kept for a while: its `since` is the restore time, before which no window may judge it.
CREATE TABLE model_breakers (
    model_id text NOT NULL,
    scope text NOT NULL,
    state text NOT NULL CHECK (state IN ('open', 'half_open', 'closed')),
    reason text NOT NULL,
    since timestamptz NOT NULL,
    cooldown_s double precision NOT NULL,
    baseline_p95_ms double precision,
    trips integer NOT NULL DEFAULT 1,
    opened_at timestamptz,  -- when the current or last incident began
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, scope)
);
INSERT INTO model_breakers (model_id, scope, state, reason, since, cooldown_s, opened_at)
SELECT model_id, '*', 'open', reason, excluded_at, 15, excluded_at FROM model_exclusions;
DROP TABLE model_exclusions;
DROP TABLE model_restorations;

CREATE TABLE model_catalogue (
    model_id text NOT NULL,
    task_type text NOT NULL,  -- '*': every task type
    layer text NOT NULL CHECK (layer IN ('fast', 'balanced', 'deep')),
    provider text,
    declared_by text NOT NULL,
    declared_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, task_type)
);
