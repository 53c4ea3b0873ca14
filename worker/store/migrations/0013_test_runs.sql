-- Results of the regression stubs run in a gateway's CI (record_test_results): one row per run and per
-- stub and run, so a run sent twice is recorded once (its run_id is the key), and each stub's history
-- (last result, passes, failures, flaky) is read from its rows, never from counters that a retry
-- could double.
CREATE TABLE regression_test_runs (
    run_id text PRIMARY KEY,
    commit_sha text NOT NULL,
    environment text NOT NULL,
    cases integer NOT NULL,
    not_stubs integer NOT NULL,
    unknown_stubs integer NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE regression_test_results (
    test_id bigint NOT NULL REFERENCES regression_tests (id) ON DELETE CASCADE,
    run_id text NOT NULL REFERENCES regression_test_runs (run_id) ON DELETE CASCADE,
    outcome text NOT NULL CHECK (outcome IN ('passed', 'failed', 'skipped')),
    message text NOT NULL DEFAULT '',
    commit_sha text NOT NULL,
    environment text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (test_id, run_id)
);
CREATE INDEX regression_test_results_latest ON regression_test_results (test_id, recorded_at DESC);
