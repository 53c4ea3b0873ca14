-- An ended experiment's record is removed from the compacted heuristics topic (a tombstone) after
-- EXPERIMENT_RETENTION_S, so that routers do not keep every experiment ever run; the row stays here
-- for the tools and the report.
ALTER TABLE experiments ADD COLUMN removed_from_topic_at timestamptz;
CREATE INDEX experiments_ended_on_topic ON experiments (updated_at)
    WHERE status <> 'running' AND removed_from_topic_at IS NULL;
