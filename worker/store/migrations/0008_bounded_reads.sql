-- Reads that stay cheap however many distinct ids arrive: the catalogue looks up a model's latest
-- layer by (model, task type) instead of scanning its task type's minutes, and the catalogue's
-- "seen lately" scan reads the newest rows first.
CREATE INDEX model_performance_minutes_model ON model_performance_minutes (model_id, task_type, minute DESC);
CREATE INDEX model_performance_last_seen ON model_performance (last_seen DESC);
