-- Routing heuristics: per-model health in 1-second buckets (the degradation fast path), learned and
-- manual rules with monotonically increasing versions, their history, and current exclusions.
CREATE TABLE model_health (
    bucket timestamptz NOT NULL,
    model_id text NOT NULL,
    layer text NOT NULL,
    total_calls bigint NOT NULL DEFAULT 0,
    failure_count bigint NOT NULL DEFAULT 0,
    latency_histogram jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (bucket, model_id, layer)
);

ALTER TABLE routing_rules
    ADD COLUMN source text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'learned')),
    ADD COLUMN task_type text,
    ADD COLUMN version bigint NOT NULL DEFAULT 1,
    ADD COLUMN published_version bigint NOT NULL DEFAULT 0,
    ADD COLUMN heuristic jsonb,
    ADD COLUMN reasoning text;
CREATE UNIQUE INDEX routing_rules_learned_task ON routing_rules (task_type) WHERE source = 'learned';

-- Every version of every rule, and which worker published it: why routing changed, and when.
CREATE TABLE routing_rule_versions (
    rule_id bigint NOT NULL REFERENCES routing_rules (id) ON DELETE CASCADE,
    version bigint NOT NULL,
    heuristic jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    published_by text,
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE model_exclusions (
    model_id text PRIMARY KEY,
    reason text NOT NULL,
    excluded_at timestamptz NOT NULL DEFAULT now()
);

-- When each model was last given back, so that its long windows do not exclude it again at once.
CREATE TABLE model_restorations (
    model_id text PRIMARY KEY,
    restored_at timestamptz NOT NULL DEFAULT now()
);
