-- Ingestion: exact per-model aggregates, per-minute series, consumed offsets and the dedupe log.

-- Where each partition resumes. Written in the same transaction as the aggregates it produced:
-- this row, not Kafka's committed offset, is the truth on restart. -1: assigned, nothing stored yet.
CREATE TABLE consumer_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- event_ids counted recently: a producer's re-send within the dedupe window counts once.
CREATE TABLE seen_events (
    event_id uuid PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX seen_events_seen_at ON seen_events USING brin (seen_at);

-- Latency histograms: jsonb {bucket: count}, buckets as in worker/histogram.py
-- (bucket i covers (GAMMA^(i-1), GAMMA^i], GAMMA = 1.01/0.99; bucket -100000 holds values < 0.001).
CREATE FUNCTION hist_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL AND b IS NULL THEN NULL ELSE (
        SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
        FROM (
            SELECT k, sum(v::bigint) AS n
            FROM (
                SELECT key, value FROM jsonb_each_text(coalesce(a, '{}'::jsonb))
                UNION ALL
                SELECT key, value FROM jsonb_each_text(coalesce(b, '{}'::jsonb))
            ) AS u(k, v)
            GROUP BY k
        ) AS t
    ) END
$$;

CREATE AGGREGATE hist_sum(jsonb) (SFUNC = hist_merge, STYPE = jsonb);

-- The value at rank q*(n-1), as worker.histogram.quantile computes it.
CREATE FUNCTION hist_quantile(h jsonb, q double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH buckets AS (
        SELECT key::integer AS k, value::bigint AS n FROM jsonb_each_text(h)
    ), ranked AS (
        SELECT k, sum(n) OVER (ORDER BY k) AS seen, sum(n) OVER () AS total FROM buckets
    )
    SELECT CASE WHEN k = -100000 THEN 0.0
                ELSE 2.0 * power(1.01::float8 / 0.99::float8, k) / (1.01::float8 / 0.99::float8 + 1.0) END
    FROM ranked WHERE seen > q * (total - 1) ORDER BY k LIMIT 1
$$;

-- The gateway's table (model_id, task_type, success_rate, avg_latency_ms, avg_cost, total_calls),
-- kept as sums so that every pod adds into it; the averages and percentiles derive from the sums.
CREATE TABLE model_performance (
    model_id text NOT NULL,
    task_type text NOT NULL,
    total_calls bigint NOT NULL DEFAULT 0,
    success_count bigint NOT NULL DEFAULT 0,
    failure_count bigint GENERATED ALWAYS AS (total_calls - success_count) STORED,
    success_rate double precision GENERATED ALWAYS AS
        (CASE WHEN total_calls > 0 THEN 100.0 * success_count / total_calls END) STORED,
    latency_sum_ms double precision NOT NULL DEFAULT 0,
    avg_latency_ms double precision GENERATED ALWAYS AS
        (CASE WHEN total_calls > 0 THEN latency_sum_ms / total_calls END) STORED,
    cost_sum_usd double precision NOT NULL DEFAULT 0,
    avg_cost double precision GENERATED ALWAYS AS
        (CASE WHEN total_calls > 0 THEN cost_sum_usd / total_calls END) STORED,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    latency_histogram jsonb NOT NULL DEFAULT '{}'::jsonb,
    latency_p50_ms double precision GENERATED ALWAYS AS (hist_quantile(latency_histogram, 0.5)) STORED,
    latency_p95_ms double precision GENERATED ALWAYS AS (hist_quantile(latency_histogram, 0.95)) STORED,
    latency_p99_ms double precision GENERATED ALWAYS AS (hist_quantile(latency_histogram, 0.99)) STORED,
    first_seen timestamptz,
    last_seen timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, task_type)
);

-- The same sums per minute of occurred_at and per layer: recent-window queries add these up.
CREATE TABLE model_performance_minutes (
    minute timestamptz NOT NULL,
    model_id text NOT NULL,
    task_type text NOT NULL,
    layer text NOT NULL CHECK (layer IN ('fast', 'balanced', 'deep')),
    total_calls bigint NOT NULL DEFAULT 0,
    success_count bigint NOT NULL DEFAULT 0,
    latency_sum_ms double precision NOT NULL DEFAULT 0,
    cost_sum_usd double precision NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    latency_histogram jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (minute, model_id, task_type, layer)
);
CREATE INDEX model_performance_minutes_task ON model_performance_minutes (task_type, minute);

-- The gateway's metric log. Rows with a series_key are the worker's per-minute series, one row per
-- (metric, minute, series), added into by every flush; percentile rows carry the merged histogram
-- their value is computed from. Rows without a series_key are free-form (record_metric).
CREATE TABLE performance_metrics (
    id bigserial PRIMARY KEY,
    metric_name text NOT NULL,
    metric_value double precision NOT NULL,
    metric_unit text NOT NULL,
    context jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    series_key text,
    histogram jsonb,
    quantile double precision
);
CREATE UNIQUE INDEX performance_metrics_series
    ON performance_metrics (metric_name, recorded_at, series_key) WHERE series_key IS NOT NULL;
CREATE INDEX performance_metrics_name_time ON performance_metrics (metric_name, recorded_at);
