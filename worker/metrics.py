"""Every Prometheus metric the worker exports, declared in one place (served at /metrics).

Names follow Prometheus conventions: `_total` for counters, base units (seconds). Consumer lag is
measured against the offsets stored in PostgreSQL, the ones that count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

EVENTS_CONSUMED = Counter(
    "telemetry_events_consumed_total", "Valid call events read (before dedupe).", registry=REGISTRY
)
EVENTS_COUNTED = Counter(
    "telemetry_events_counted_total", "Events added to the aggregates (after dedupe).", registry=REGISTRY
)
EVENTS_DUPLICATE = Counter(
    "telemetry_events_duplicate_total", "Re-sent events skipped by the dedupe log.", registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "telemetry_dead_letters_total", "Inputs sent to the dead-letter topic, by reason.", ["reason"], registry=REGISTRY
)
CALLS = Counter(
    "telemetry_calls_total",
    "Calls added to the aggregates, per model and outcome (success rate per "
    'model: rate of outcome="success" over all). The first 200 model ids a pod sees get a label of '
    'their own; later ones are counted under model_id="other".',
    ["model_id", "outcome"],
    registry=REGISTRY,
)
MAX_MODEL_LABELS = 200
_model_labels: set[str] = set()


def model_label(model_id: str) -> str:
    """A bounded label set: every series costs memory and scrape time, and model ids come from strangers."""
    if model_id in _model_labels:
        return model_id
    if len(_model_labels) < MAX_MODEL_LABELS:
        _model_labels.add(model_id)
        return model_id
    return "other"


FLUSH_SECONDS = Histogram(
    "telemetry_flush_seconds",
    "Duration of a successful flush transaction.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "telemetry_batch_events",
    "Events and dead letters per flush.",
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000),
    registry=REGISTRY,
)
FLUSH_ERRORS = Counter(
    "telemetry_flush_errors_total", "Failed flush attempts (database or broker errors).", registry=REGISTRY
)
FENCED = Counter(
    "telemetry_flushes_fenced_total", "Flushes refused because another consumer moved the offsets.", registry=REGISTRY
)
CONSUMER_LAG = Gauge(
    "telemetry_consumer_lag_messages",
    "Kafka high watermark minus the stored offset.",
    ["topic", "partition"],
    registry=REGISTRY,
)
HEURISTICS_PUBLISHED = Counter(
    "telemetry_heuristics_published_total", "Routing heuristic versions published.", registry=REGISTRY
)
EXPERIMENT_ARM_CALLS = Gauge(
    "telemetry_experiment_arm_calls",
    "Calls counted per arm of each running experiment (at most 50 running, 10 arms each).",
    ["experiment_id", "arm"],
    registry=REGISTRY,
)
EXPERIMENT_ARM_METRIC = Gauge(
    "telemetry_experiment_arm_metric",
    "Each running arm's primary metric: its estimate and the ends of its always-valid 95 % interval "
    '(bound="estimate", "low", "high"; an end is absent while unbounded).',
    ["experiment_id", "arm", "bound"],
    registry=REGISTRY,
)
EXPERIMENTS_ENDED = Counter(
    "telemetry_experiments_ended_total",
    "Experiments that ended by themselves: completed (a winner, or the maximum duration) or stopped.",
    ["status"],
    registry=REGISTRY,
)
EXPERIMENT_ARMS_STOPPED = Counter(
    "telemetry_experiment_arms_stopped_total",
    "Arms of running experiments stopped by a guardrail (the reason is on the experiment).",
    ["experiment_id", "arm"],
    registry=REGISTRY,
)
EXPERIMENT_EVALUATION_ERRORS = Counter(
    "telemetry_experiment_evaluation_errors_total",
    "Looks at a running experiment that failed (logged); the other experiments are evaluated regardless.",
    ["experiment_id"],
    registry=REGISTRY,
)
EXPERIMENT_CALLS_IGNORED = Counter(
    "telemetry_experiment_calls_ignored_total",
    "Calls tagged with an experiment arm that is not running; counted everywhere but in an arm.",
    registry=REGISTRY,
)
FEEDBACK = Counter(
    "telemetry_feedback_total",
    "Feedback on calls by what the flush did with it: applied (set or replaced a score), superseded (older "
    "than the score that counts), waiting (its call is not known yet), released (its call came), or refused "
    "(dead-lettered; the reason in the dead letter).",
    ["outcome"],
    registry=REGISTRY,
)
MODEL_QUALITY = Gauge(
    "telemetry_model_quality",
    "Quality of each model's answers per task type over the routing window (leader only; the "
    "MODEL_QUALITY_SERIES most judged): bound=mean, low, high (Wilson 95 %: right for 0/1 scores, "
    "wider than needed for graded ones) and feedback (the count).",
    ["model_id", "task_type", "name", "bound"],
    registry=REGISTRY,
)
MODEL_QUALITY_SERIES = 200
FEEDBACK_DEAD_LETTERS = Counter(
    "telemetry_feedback_dead_letters_total",
    "Feedback dead-lettered after the join, by reason (unknown_call, feedback_flood, feedback_name_limit, "
    "feedback_pending_full).",
    ["reason"],
    registry=REGISTRY,
)
ROUTING_ALERTS = Counter(
    "telemetry_routing_alerts_total",
    "Breaker transitions published as alerts: model_degraded, model_probing, model_recovered.",
    ["kind"],
    registry=REGISTRY,
)
NEW_BUG_PATTERNS = Counter(
    "telemetry_bug_patterns_new_total", "Bug patterns seen for the first time.", registry=REGISTRY
)
CRITICAL_BUG_PATTERNS = Counter(
    "telemetry_bug_patterns_critical_total",
    "Bug patterns that became critical: new at that severity, or raised to it (each once).",
    registry=REGISTRY,
)
REGRESSED_BUG_PATTERNS = Counter(
    "telemetry_bug_patterns_regressed_total",
    "Resolved bug patterns that regressed: their occurrences came back, or their stub failed after passing.",
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "telemetry_notifications_total",
    "Webhook notifications by outcome: sent, failed (retried later), rejected (a 4xx: given up), discarded "
    "(no ALERT_WEBHOOK_URL).",
    ["outcome"],
    registry=REGISTRY,
)
NOTIFICATIONS_WAITING = Gauge(
    "telemetry_notifications_waiting",
    "Webhook notifications in the outbox not sent yet (leader only).",
    registry=REGISTRY,
)
MODELS_HELD_BACK = Gauge(
    "telemetry_models_held_back",
    "Breakers of each model not closed at the leader's last check, by state (open: excluded; half_open: "
    "probed), in a task type or model-wide. Only the leader's series are current: join on "
    "telemetry_routing_checked_timestamp_seconds. The first 200 model ids get a label of their own.",
    ["model_id", "state"],
    registry=REGISTRY,
)
ROUTING_CHECKED = Gauge(
    "telemetry_routing_checked_timestamp_seconds",
    "When this pod last checked the breakers as the group's leader (Unix time; absent on a pod never leader).",
    registry=REGISTRY,
)
ROUTING_LEFT_OUT = Gauge(
    "telemetry_routing_left_out",
    "What the routing bounds leave out at the last recompute: "
    'kind="task_types" past ROUTING_MAX_TASK_TYPES, kind="models" past ROUTING_MAX_MODELS '
    "in the widest task type.",
    ["kind"],
    registry=REGISTRY,
)
PATTERNS_FOLDED = Counter(
    "telemetry_bug_patterns_folded_total",
    "Failures of new fingerprints folded into their "
    "category's overflow pattern because PATTERNS_MAX_NEW_PER_HOUR was reached.",
    registry=REGISTRY,
)
LOG_SUPPRESSED = Counter(
    "telemetry_log_lines_suppressed_total", "Repeated log lines held back by the rate limit.", registry=REGISTRY
)
OFFSETS_AHEAD = Gauge(
    "telemetry_partitions_offset_ahead",
    "Partitions held paused because the stored offset is past "
    "the log's end (topic recreated or offsets reset): re-anchor with `telemetry-worker offsets "
    "reanchor`.",
    registry=REGISTRY,
)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
