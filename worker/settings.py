"""Every setting the worker reads, from environment variables, with its default.

One module, so that the README's configuration table can be checked against it by a test; one
class per concern (Kafka, PostgreSQL, the pipeline, routing, the web and tools), combined into
`Settings`. The environment variable of a setting is its name in capitals, whatever its class.
"""

from __future__ import annotations

from dataclasses import fields, replace
from functools import lru_cache
from typing import Any, Literal, Self, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.routing.contract import ModelDeclaration
from worker.routing.degradation import Rules
from worker.routing.heuristics import Policy
from worker.routing.scoring import Weights
from worker.routing.signing import InvalidKey, Signer

T = TypeVar("T", Policy, Rules)


class KafkaSettings(BaseSettings):
    """Brokers, credentials, topics and consumer groups."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(
        None, description="CA bundle that signs the brokers' certificates (SSL, SASL_SSL)."
    )
    kafka_ssl_certfile: str | None = Field(None, description="Client certificate, for brokers that require mutual TLS.")
    kafka_ssl_keyfile: str | None = Field(None, description="Private key of the client certificate.")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="Password of the client key, if it has one.")

    # --- topics (wire contract v1)
    topic_calls_completed: str = Field("gateway.calls.completed", description="Input: call-completed events.")
    topic_calls_failed: str = Field("gateway.calls.failed", description="Input: call-failed events.")
    topic_calls_feedback: str = Field(
        "gateway.calls.feedback", description="Input: quality feedback on calls (user votes, evals, judges)."
    )
    topic_heuristics: str = Field("gateway.routing.heuristics", description="Output: routing heuristics (compacted).")
    topic_dlq: str = Field("gateway.telemetry.dlq", description="Output: dead letters, with the reason in headers.")
    topic_alerts: str = Field("gateway.routing.alerts", description="Output: model degraded / recovered alerts.")
    topic_tool_commands: str = Field(
        "gateway.tools.commands", description="Writes of the HTTP/MCP tools that change aggregates (in and out)."
    )
    tool_commands_partitions: int = Field(
        3, ge=1, description="Partitions of the commands topic when the worker creates it."
    )

    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of output topics the worker creates when they are missing."
    )

    # --- consumption
    consumer_group: str = Field("gateway-telemetry-worker", description="Kafka consumer group of the ingest pipeline.")
    app_id: str = Field("gateway-telemetry", description="Faust application id (its own group and internal topics).")
    start_offset_when_unstored: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a partition starts when PostgreSQL holds no offset for it yet."
    )
    kafka_session_timeout_s: float = Field(
        10.0,
        ge=1,
        description="How long a silent worker keeps its partitions before the group moves them "
        "(a crashed pod's partitions wait this long). The broker allows 6 s to 30 min by default.",
    )
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed", description="Skip events of aborted producer transactions."
    )

    @property
    def consumed_topics(self) -> dict[str, str]:
        """Every topic the ingest pipeline reads, with what it carries (an EventKind value)."""
        return {
            self.topic_calls_completed: "completed",
            self.topic_calls_failed: "failed",
            self.topic_calls_feedback: "feedback",
            self.topic_tool_commands: "command",
        }

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _groups_differ(self) -> Self:
        if self.consumer_group == self.app_id:
            raise ValueError(
                "CONSUMER_GROUP and APP_ID must differ: Faust joins its own group named after APP_ID "
                "with a different assignment protocol"
            )
        return self


class DatabaseSettings(BaseSettings):
    """PostgreSQL."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field("postgresql://postgres:postgres@127.0.0.1:5432/telemetry", description="PostgreSQL DSN.")


class PipelineSettings(BaseSettings):
    """Micro-batching, dedupe, bug patterns and the limits on input."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- micro-batching
    flush_max_events: int = Field(
        5000, ge=1, description="Flush when the batch holds this many events (dead letters included)."
    )
    flush_interval_ms: int = Field(1000, ge=10, description="Flush at least this often while events arrive.")
    flush_timeout_s: float = Field(30.0, gt=0, description="Give up one flush attempt after this long and retry.")
    retry_backoff_max_s: float = Field(10.0, gt=0, description="Longest wait between retries of a failed flush.")
    idle_in_transaction_timeout_s: float = Field(
        15.0,
        gt=0,
        description="PostgreSQL ends a worker's transaction left idle this long (a frozen or partitioned pod), "
        "releasing the offset locks the pod that took over its partitions waits on.",
    )
    revoke_flush_timeout_s: float = Field(
        10.0, gt=0, description="On a rebalance, how long to try the final flush before handing the batch back."
    )
    dedupe_window_s: int = Field(
        6 * 3600, ge=0, description="A re-sent event (same event_id) arriving within this window counts once."
    )

    pattern_window_s: int = Field(
        900, ge=60, description="Recent window over which a bug pattern's failure share sets its severity."
    )
    pattern_resolve_passes: int = Field(
        3,
        ge=1,
        le=100,
        description="A bug pattern is resolved once its stub passed this many CI runs in a row "
        "(record_test_results) and it has not occurred for PATTERN_RESOLVE_QUIET_S.",
    )
    pattern_resolve_quiet_s: int = Field(
        86_400, ge=0, description="How long a bug pattern must not have occurred before its passing stub resolves it."
    )
    patterns_max_new_per_hour: int = Field(
        500,
        ge=1,
        le=1_000_000,
        description="New bug patterns (and stubs) created per hour at most; failures of "
        "further new fingerprints are counted in one overflow pattern (error type pattern_limit_reached).",
    )

    # --- feedback on calls (worker/feedback)
    feedback_window_s: int = Field(
        604_800,
        ge=0,
        description="How long calls are kept for the feedback join, and how long feedback waits for a call it "
        "names before it is dead-lettered (unknown_call). 0: no join (every feedback is dead-lettered).",
    )
    feedback_max_names: int = Field(
        20, ge=1, le=1000, description="Distinct feedback names at most; feedback with a further name is dead-lettered."
    )
    feedback_max_updates: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Feedback accepted per call, name and source (each replaces the last); more is dead-lettered.",
    )
    feedback_pending_max: int = Field(
        1_000_000,
        ge=0,
        description="Feedback waiting for its call at most (PostgreSQL's row estimate); past it, dead-lettered.",
    )

    # --- input limits (beyond these an input goes to the dead-letter topic)
    max_message_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted message value.")
    max_events_per_envelope: int = Field(10_000, ge=1, description="Largest accepted batch envelope.")
    max_nesting_depth: int = Field(32, ge=2, description="Deepest accepted JSON nesting inside one event.")
    event_max_ahead_s: float = Field(
        300.0, ge=0, description="An event dated more than this after its message's broker timestamp is dead-lettered."
    )
    dlq_max_value_bytes: int = Field(
        262_144, ge=1024, description="Dead-letter values are cut to this size (header dlq.truncated says so)."
    )


class RoutingSettings(BaseSettings):
    """Learned rules, the catalogue and the breakers (computed on the group leader)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- routing heuristics (computed on the group leader)
    heuristics_interval_s: float = Field(60.0, gt=0, description="How often learned routing rules are recomputed.")
    heuristics_window_s: int = Field(3600, ge=60, description="Evidence window of the learned rules.")
    heuristics_min_calls: int = Field(
        20, ge=1, description="Age-weighted calls a model needs to be preferred; below it, it is explored."
    )
    heuristics_half_life_s: float = Field(
        900.0, gt=0, description="Evidence is weighted by age, halving every this many seconds (recency)."
    )
    heuristics_exploration: float = Field(
        0.03,
        ge=0,
        le=0.5,
        description="Traffic share for models with little or no recent data (catalogue models included).",
    )
    heuristics_weight_change: float = Field(
        0.05, ge=0, le=1, description="Publish a new version when a model's traffic share moves by more than this."
    )
    heuristics_smoothing: float = Field(
        1.0, gt=0, le=1, description="Fraction of the way to the new split that each version moves (1: all the way)."
    )
    heuristics_catalogue_seen_s: int = Field(
        604_800,
        ge=60,
        description="A model seen in events this recently is in the catalogue (explored when it lacks data).",
    )
    routing_max_models: int = Field(
        100,
        ge=2,
        le=10_000,
        description="Models a task type's rule weighs at most: those with the most calls in the "
        "window (the others, and catalogue models past this, are left out; a metric counts them).",
    )
    routing_max_task_types: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Task types that get a learned rule at most: those with the most calls in the "
        "window (the others keep their last rule or none).",
    )
    routing_weights: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Per task type scoring overrides, JSON: {"chat": {"latency": 0.3}}. '
        "Keys: latency, cost, latency_ref_ms, cost_ref_usd, value_usd (numbers >= 0) and quality_name (the feedback "
        "name to weigh). Weights promoted from an experiment win over these.",
    )
    routing_value_usd: float = Field(
        0.1,
        gt=0,
        le=1_000_000,
        description="V: what a good answer is worth in USD, in the value objective of task types with "
        "feedback (value = V x P(good answer) - cost - latency term); per task type: ROUTING_WEIGHTS value_usd.",
    )
    routing_quality_prior_calls: float = Field(
        40.0,
        ge=0,
        le=10_000,
        description="How much feedback the prior of a model's quality on a task type is worth: the prior is what "
        "the model's feedback on the other task types says.",
    )
    routing_signing_key: SecretStr | None = Field(
        None,
        description="Base64 of the 32-byte Ed25519 private key the worker signs routing records with "
        "(telemetry-worker keys generate); routers given the public key skip records not signed by it. "
        "Unset: records are unsigned (a warning at start).",
    )
    experiment_retention_s: int = Field(
        604_800,
        ge=0,
        description="An ended experiment's record is removed from the heuristics topic (a tombstone) this long "
        "after it ended, so that routers forget it; the experiment stays in PostgreSQL for the tools.",
    )
    experiments_interval_s: float = Field(
        10.0, gt=0, description="How often running experiments are evaluated (guardrails, winner, duration)."
    )
    routing_catalogue: list[ModelDeclaration] = Field(
        default_factory=list,
        description="Models the gateway can route to, declared at start, JSON: "
        '[{"model_id": "gpt-5", "layer": "balanced", "task_types": ["coding"]}] (task_types omitted: all).',
    )
    degradation_check_s: float = Field(2.0, gt=0, description="How often the degradation fast path runs.")
    degradation_failure_rate: float = Field(
        0.2, gt=0, le=1, description="A window whose failure rate is above this with 95 % confidence (Wilson) excludes."
    )
    degradation_recover_rate: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Probes must fail less often than this to restore (more, with confidence: reopen).",
    )
    degradation_latency_factor: float = Field(
        2.0, gt=1, description="p95 latency this many times the model's usual p95 (incident excluded) excludes it."
    )
    degradation_latency_floor_ms: float = Field(
        250.0,
        ge=0,
        description="A latency limit lies at least this far above the usual p95 (slow first calls after a cold start exclude nobody).",
    )
    degradation_min_calls: int = Field(20, ge=1, description="Calls a short window needs before it can exclude.")
    degradation_cooldown_s: float = Field(
        15.0, gt=0, description="How long an excluded model gets no traffic before it is probed (half-open)."
    )
    degradation_cooldown_max_s: float = Field(
        60.0, gt=0, description="The cooldown doubles after every failed probe, up to this."
    )
    degradation_probe_calls: int = Field(10, ge=1, description="Good probe calls that restore a half-open model.")
    degradation_probe_share: float = Field(
        0.05, gt=0, le=0.25, description="Traffic share of a half-open model per task type while it is probed."
    )

    @field_validator("routing_signing_key", mode="before")
    @classmethod
    def _a_usable_signing_key(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        secret = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        try:
            Signer(secret)
        except InvalidKey as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("routing_weights")
    @classmethod
    def _known_weights(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Refuse at start-up what would otherwise fail on every heuristics tick."""
        known = {f.name for f in fields(Weights)}
        for task_type, overrides in value.items():
            unknown = set(overrides) - known
            if unknown:
                raise ValueError(
                    f"ROUTING_WEIGHTS[{task_type!r}]: unknown keys {sorted(unknown)}; known: {sorted(known)}"
                )
            for key, weight in overrides.items():
                if key == "quality_name":
                    if not isinstance(weight, str) or not weight:
                        raise ValueError(f"ROUTING_WEIGHTS[{task_type!r}]['quality_name'] must be a feedback name")
                    continue
                if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                    raise ValueError(f"ROUTING_WEIGHTS[{task_type!r}][{key!r}] must be a number >= 0, got {weight!r}")
        return value

    @property
    def routing_policy(self) -> Policy:
        return self._derived(Policy, ("heuristics_", "degradation_", "routing_"))

    @property
    def breaker_rules(self) -> Rules:
        rules = self._derived(Rules, ("degradation_",))
        return replace(rules, cooldown_max_s=max(rules.cooldown_s, rules.cooldown_max_s))

    def _derived(self, cls: type[T], prefixes: tuple[str, ...]) -> T:
        """`cls` with each field from the setting <prefix><field>, the first prefix that names one: a field
        added to Policy or Rules without its setting fails here, at start-up, not silently at its default."""
        values = {}
        for f in fields(cls):
            named = next((p + f.name for p in prefixes if p + f.name in type(self).model_fields), None)
            if named is None:
                raise TypeError(
                    f"{cls.__name__}.{f.name} has no setting named {' or '.join(p + f.name for p in prefixes)}"
                )
            values[f.name] = getattr(self, named)
        return cls(**values)


class ToolsSettings(BaseSettings):
    """The HTTP server and the tools on it (and on MCP)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- web
    web_host: str = Field("127.0.0.1", description="Address of the HTTP server (health, readiness, metrics, tools).")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the HTTP server.")
    tools_token: SecretStr | None = Field(
        None,
        description="Bearer token for every /tools path and the MCP write tools. Unset: reads are open "
        "and write tools answer 403.",
    )
    tools_page_size: int = Field(
        50, ge=1, le=1000, description="Default page size of the list tools (limit caps at 500)."
    )
    tools_db_connections: int = Field(
        2, ge=1, le=50, description="Connections of the tools' own pool: reads never take ingestion's connections."
    )
    tools_query_timeout_s: float = Field(
        10.0, gt=0, description="A tool's query is cancelled by PostgreSQL after this long (statement_timeout)."
    )
    tools_body_timeout_s: float = Field(
        10.0, gt=0, description="A tool request whose body has not arrived in full after this long answers 408."
    )

    @field_validator("tools_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        return None if value == "" else value  # TOOLS_TOKEN= (empty) means unset, never "the empty token"


class OtlpSettings(BaseSettings):
    """`telemetry-worker otlp`: the receiver of OpenTelemetry GenAI spans (docs/otlp.md)."""

    otlp_host: str = Field("0.0.0.0", description="Address the OTLP/HTTP receiver listens on.")
    otlp_port: int = Field(4318, ge=0, le=65535, description="Port of the OTLP/HTTP receiver (OTLP's own default).")
    otlp_max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body, compressed and decompressed alike (413 past it)."
    )
    otlp_max_spans: int = Field(10_000, ge=1, description="Most spans in one export request (400 past it).")
    otlp_max_attributes: int = Field(
        256, ge=8, description="Most attributes on one span or resource: a GenAI span with more is rejected."
    )
    otlp_task_type_attributes: str = Field(
        "gateway.task_type,task_type",
        description="Span (then resource) attributes that name the task type, first found wins; else the "
        "span's gen_ai.operation.name.",
    )
    otlp_layer_attributes: str = Field(
        "gateway.layer,layer", description="Span (then resource) attributes that name the layer."
    )
    otlp_layers: dict[str, str] = Field(
        default_factory=dict, description='JSON model -> layer for spans naming none, e.g. {"gpt-4o-mini": "fast"}.'
    )
    otlp_default_layer: Literal["fast", "balanced", "deep"] = Field(
        "balanced", description="The layer of a span that names none and whose model is not in OTLP_LAYERS."
    )
    otlp_cost_attributes: str = Field(
        "gen_ai.usage.cost,gateway.cost_usd", description="Span (then resource) attributes carrying the cost in USD."
    )
    otlp_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="JSON model -> [USD per million input tokens, per million output tokens], for spans without "
        'a cost attribute, e.g. {"gpt-4o-mini": [0.15, 0.6]}. Neither: cost 0.',
    )
    otlp_kafka_topic: str | None = Field(
        None,
        description="A topic the OpenTelemetry Collector's Kafka exporter writes traces to (encoding otlp_proto): "
        "the receiver also maps those. Unset: HTTP only.",
    )
    otlp_produce_timeout_s: float = Field(
        10.0, gt=0, description="An export waits this long for Kafka's acknowledgement, then answers 503."
    )

    @field_validator("otlp_layers")
    @classmethod
    def _known_layers(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = {m: layer for m, layer in value.items() if layer not in ("fast", "balanced", "deep")}
        if wrong:
            raise ValueError(f"unknown layers {wrong}: a layer is one of fast, balanced, deep")
        return value


class AlertSettings(BaseSettings):
    """Webhook notifications (worker/notifications): for teams without Prometheus."""

    alert_webhook_url: str | None = Field(
        None,
        description="Where the group leader POSTs notifications: a model excluded or restored, a bug pattern "
        "turned critical or regressed, an experiment ended or an arm stopped. Unset: none are sent (the alerts "
        "topic and /metrics still tell).",
    )
    alert_webhook_format: Literal["json", "slack"] = Field(
        "json", description="json: the notification as JSON; slack: a Slack-compatible {text} body."
    )
    alert_webhook_secret: SecretStr | None = Field(
        None,
        description="Signs each body: X-Telemetry-Signature: sha256=HMAC-SHA256(secret, '<X-Telemetry-Timestamp>.<body>').",
    )
    alert_webhook_timeout_s: float = Field(
        5.0, gt=0, le=10, description="A POST waits this long for the receiver; then it is retried with back-off."
    )
    alert_webhook_max_per_minute: int = Field(
        30, ge=1, le=10_000, description="Notifications sent per minute at most; the rest wait in the outbox."
    )
    alert_webhook_interval_s: float = Field(
        2.0, gt=0, description="How often the leader sends what waits in the outbox."
    )

    @field_validator("alert_webhook_url", "alert_webhook_secret", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class Settings(
    KafkaSettings, DatabaseSettings, PipelineSettings, RoutingSettings, ToolsSettings, OtlpSettings, AlertSettings
):
    """Every setting; what the rest of the worker receives."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    log_level: str = Field("info", description="Log level: debug, info, warning, error.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
