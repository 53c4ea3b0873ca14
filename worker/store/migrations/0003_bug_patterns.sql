-- Bug patterns keyed by fingerprint (error_type + category + normalised message), counted exactly
-- in the same flush transaction as the aggregates. Rows without a fingerprint are the gateway's
-- hand-recorded patterns (record_bug_pattern).
ALTER TABLE bug_patterns
    ADD COLUMN fingerprint text,
    ADD COLUMN error_type text,
    ADD COLUMN first_seen timestamptz,
    ADD COLUMN last_seen timestamptz,
    ADD COLUMN models jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN layers jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN retryable_occurrences bigint NOT NULL DEFAULT 0,
    ADD COLUMN example_event_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN example_request jsonb,
    ADD COLUMN solution_source text NOT NULL DEFAULT 'catalogue'
        CHECK (solution_source IN ('catalogue', 'operator'));
CREATE UNIQUE INDEX bug_patterns_fingerprint ON bug_patterns (fingerprint);
CREATE INDEX bug_patterns_category ON bug_patterns (category);
CREATE INDEX regression_tests_category ON regression_tests (category);
