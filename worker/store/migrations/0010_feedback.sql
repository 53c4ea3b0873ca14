-- Quality feedback on calls: what the join keeps of each call (FEEDBACK_WINDOW_S), the score that
-- counts per call, name and source (a later one replaces it), feedback waiting for its call, the
-- bounded set of feedback names, the quality sums (exact: numeric), and an outbox of dead letters
-- decided inside a flush transaction (produced after it commits, at least once).
CREATE TABLE call_index (
    event_id uuid PRIMARY KEY,
    request_id text,
    occurred_at timestamptz NOT NULL,
    minute timestamptz NOT NULL,
    model_id text NOT NULL,
    task_type text NOT NULL,
    layer text NOT NULL,
    ok boolean NOT NULL,
    experiment_id text,
    arm text,
    routing_rule_id text
);
CREATE INDEX call_index_request ON call_index (request_id, ok, occurred_at) WHERE request_id IS NOT NULL;
CREATE INDEX call_index_age ON call_index (occurred_at);

CREATE TABLE call_feedback (
    call_event_id uuid NOT NULL,
    name text NOT NULL,
    source text NOT NULL,
    score_micro integer NOT NULL CHECK (score_micro BETWEEN 0 AND 1000000),
    occurred_at timestamptz NOT NULL,
    event_id uuid NOT NULL,
    updates integer NOT NULL,
    call_occurred_at timestamptz NOT NULL,
    comment text,
    PRIMARY KEY (call_event_id, name, source)
);
CREATE INDEX call_feedback_age ON call_feedback (call_occurred_at);

CREATE TABLE feedback_pending (
    event_id uuid PRIMARY KEY,
    call_event_id uuid,
    request_id text,
    name text NOT NULL,
    source text NOT NULL,
    score_micro integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    comment text,
    arrived_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_pending_call ON feedback_pending (call_event_id) WHERE call_event_id IS NOT NULL;
CREATE INDEX feedback_pending_request ON feedback_pending (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX feedback_pending_age ON feedback_pending (arrived_at);

CREATE TABLE feedback_names (
    name text PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_quality (
    model_id text NOT NULL,
    task_type text NOT NULL,
    name text NOT NULL,
    feedback_count bigint NOT NULL DEFAULT 0,
    score_sum numeric NOT NULL DEFAULT 0,
    score_squares numeric NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, task_type, name)
);

CREATE TABLE model_quality_minutes (
    minute timestamptz NOT NULL,
    model_id text NOT NULL,
    task_type text NOT NULL,
    layer text NOT NULL,
    name text NOT NULL,
    feedback_count bigint NOT NULL DEFAULT 0,
    score_sum numeric NOT NULL DEFAULT 0,
    score_squares numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, model_id, task_type, layer, name)
);

CREATE TABLE experiment_arm_quality (
    experiment_id text NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    arm text NOT NULL,
    name text NOT NULL,
    feedback_count bigint NOT NULL DEFAULT 0,
    score_sum numeric NOT NULL DEFAULT 0,
    score_squares numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, arm, name)
);

CREATE TABLE dead_letter_outbox (
    id bigserial PRIMARY KEY,
    source_topic text NOT NULL,
    reason text NOT NULL,
    detail text NOT NULL,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
