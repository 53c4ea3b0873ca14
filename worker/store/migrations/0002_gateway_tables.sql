-- The gateway's self-improvement tables, with its column names, so that its tools and this
-- worker's report read the same rows. Bug patterns, regression stubs and routing heuristics
-- are filled by their own pipelines; here they start empty.

CREATE TABLE regression_tests (
    id bigserial PRIMARY KEY,
    test_name text NOT NULL UNIQUE,
    category text NOT NULL,
    description text NOT NULL,
    test_code text NOT NULL,
    expected_behavior text NOT NULL,
    discovered_from text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bug_patterns (
    id bigserial PRIMARY KEY,
    category text NOT NULL,
    pattern text NOT NULL,
    description text NOT NULL,
    solution text NOT NULL,
    occurrences bigint NOT NULL DEFAULT 0,
    severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE routing_rules (
    id bigserial PRIMARY KEY,
    pattern text,
    preferred_layer text NOT NULL CHECK (preferred_layer IN ('fast', 'balanced', 'deep')),
    preferred_model text,
    priority integer NOT NULL DEFAULT 0,
    active boolean NOT NULL DEFAULT true,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
