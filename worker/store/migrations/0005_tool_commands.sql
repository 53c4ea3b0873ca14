-- Hand-recorded bug patterns (record_bug_pattern, through the commands topic) are keyed by
-- (category, pattern): recording the same one again adds an occurrence, as in the gateway.
CREATE UNIQUE INDEX bug_patterns_recorded ON bug_patterns (category, pattern) WHERE fingerprint IS NULL;
CREATE INDEX performance_metrics_free_form ON performance_metrics (recorded_at) WHERE series_key IS NULL;
