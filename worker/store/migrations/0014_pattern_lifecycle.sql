-- Bug patterns with a lifecycle: open -> resolved (an operator resolves it, or its stub passed in enough
-- consecutive CI runs with no occurrence for a while) -> regressed (occurrences come back, or its stub
-- fails after passing) -> resolved again. Every transition is a row, written in the same transaction
-- as what caused it (a flush, a recorded CI run, an operator's call), so each happens exactly once.
ALTER TABLE bug_patterns
    ADD COLUMN status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'regressed')),
    ADD COLUMN status_changed_at timestamptz,
    ADD COLUMN status_by text,
    ADD COLUMN status_reason text;

CREATE TABLE bug_pattern_transitions (
    id bigserial PRIMARY KEY,
    pattern_id bigint NOT NULL REFERENCES bug_patterns (id) ON DELETE CASCADE,
    from_status text NOT NULL,
    to_status text NOT NULL,
    changed_by text NOT NULL,
    reason text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bug_pattern_transitions_pattern ON bug_pattern_transitions (pattern_id, at);

-- A pattern's stub, and a stub's pattern, are found by the fingerprint in the stub's metadata.
CREATE INDEX regression_tests_fingerprint ON regression_tests ((metadata ->> 'fingerprint'));
