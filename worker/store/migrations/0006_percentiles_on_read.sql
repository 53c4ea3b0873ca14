-- Latency percentiles of model_performance are computed when read, not on every upsert: the three
-- generated columns re-ran hist_quantile over the merged histogram for every row of every flush,
-- a third of the upsert's time (docs/benchmarks.md). The view carries them under the same names.
ALTER TABLE model_performance
    DROP COLUMN latency_p50_ms,
    DROP COLUMN latency_p95_ms,
    DROP COLUMN latency_p99_ms;

CREATE VIEW model_performance_latency AS
SELECT *,
       hist_quantile(latency_histogram, 0.5) AS latency_p50_ms,
       hist_quantile(latency_histogram, 0.95) AS latency_p95_ms,
       hist_quantile(latency_histogram, 0.99) AS latency_p99_ms
FROM model_performance;
