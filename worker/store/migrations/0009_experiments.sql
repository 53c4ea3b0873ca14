-- Experiments on routing strategies: the record routers follow (one row per experiment, its latest
-- version), the sums per arm that the flush adds to exactly once, and scoring weights promoted from a
-- `weights` arm (they win over ROUTING_WEIGHTS for their task type).
CREATE TABLE experiments (
    experiment_id text PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('running', 'completed', 'stopped', 'promoted')),
    arms text[] NOT NULL,
    version bigint NOT NULL,
    published_version bigint NOT NULL DEFAULT 0,
    record jsonb NOT NULL,
    spec jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiments_running ON experiments (experiment_id) WHERE status = 'running';

CREATE TABLE experiment_arms (
    experiment_id text NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    arm text NOT NULL,
    calls bigint NOT NULL DEFAULT 0,
    successes bigint NOT NULL DEFAULT 0,
    cost_sum float8 NOT NULL DEFAULT 0,
    cost_squares float8 NOT NULL DEFAULT 0,
    utility_sum float8 NOT NULL DEFAULT 0,
    utility_squares float8 NOT NULL DEFAULT 0,
    latency_histogram jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, arm)
);

CREATE TABLE routing_weights (
    task_type text PRIMARY KEY,  -- '*': every task type
    weights jsonb NOT NULL,
    source text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
