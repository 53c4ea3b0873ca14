"""The LiteLLM Proxy, configured in YAML only: the telemetry callback and the routing plugin as ready
instances, set up from the environment.

    # config.yaml
    litellm_settings:
      callbacks: ["worker.gateway.litellm_proxy.telemetry"]
    router_settings:
      plugins: ["worker.gateway.litellm_proxy.routing"]

    # the proxy's environment (the worker's names, and these)
    KAFKA_BOOTSTRAP_SERVERS=kafka:9092
    GATEWAY_LAYERS='{"openai/gpt-4o-mini": "fast", "openai/gpt-4o": "balanced"}'

The proxy imports this module while it reads its config, before its event loop runs; the emitter and
the heuristics subscriber start on the first call that reaches either instance, on the loop of the
process serving it. Each of the proxy's worker processes (`--num_workers`) thus has its own, and
reports its own calls once; a process forked after a start starts its own again.

Kafka away: requests are served as without the callback (the emitter's bounded buffer, counted drops,
a warning at most every 10 s), and without rules yet the plugin leaves the choice to LiteLLM. While
Kafka answers, each callback waits (up to GATEWAY_ACK_TIMEOUT_S) for its event's acknowledgement: the
proxy drains its callbacks on SIGTERM, so a request it answered before stopping is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.helpers import create_ssl_context

from worker.calls.events import Layer
from worker.gateway.emitter import CallEmitter
from worker.gateway.litellm import HeuristicsRoutingPlugin, TelemetryLogger
from worker.gateway.router import HeuristicsSubscriber
from worker.gateway.table import RoutingTable

log = logging.getLogger(__name__)

__all__ = ["ProxyConfig", "routing", "telemetry"]


@dataclass(frozen=True)
class ProxyConfig:
    """What the proxy's environment says (documented in the README's LiteLLM Proxy section)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    kafka_options: dict[str, Any] = field(default_factory=dict)  # TLS and SASL, as the worker reads them
    topic_completed: str = "gateway.calls.completed"
    topic_failed: str = "gateway.calls.failed"
    topic_feedback: str = "gateway.calls.feedback"
    topic_heuristics: str = "gateway.routing.heuristics"
    layers: dict[str, str] = field(default_factory=dict)
    default_layer: str = "balanced"
    task_type_key: str = "task_type"
    default_task_type: str = "default"
    buffer_size: int = 10_000
    ack_timeout_s: float = 5.0
    public_keys: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ProxyConfig:
        """Raises ValueError naming the variable: a typo stops the proxy at start, not a call later."""
        env = dict(os.environ if env is None else env)
        layers = _json_object(env, "GATEWAY_LAYERS")
        known = {layer.value for layer in Layer}
        wrong = {m: v for m, v in layers.items() if v not in known}
        default_layer = env.get("GATEWAY_DEFAULT_LAYER", "balanced")
        if wrong or default_layer not in known:
            raise ValueError(
                f"GATEWAY_LAYERS / GATEWAY_DEFAULT_LAYER: unknown layers {wrong or default_layer!r}; "
                f"a layer is one of {sorted(known)}"
            )
        return cls(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            kafka_options=_kafka_options(env),
            topic_completed=env.get("TOPIC_CALLS_COMPLETED", cls.topic_completed),
            topic_failed=env.get("TOPIC_CALLS_FAILED", cls.topic_failed),
            topic_feedback=env.get("TOPIC_CALLS_FEEDBACK", cls.topic_feedback),
            topic_heuristics=env.get("TOPIC_HEURISTICS", cls.topic_heuristics),
            layers={str(k): str(v) for k, v in layers.items()},
            default_layer=default_layer,
            task_type_key=env.get("GATEWAY_TASK_TYPE_KEY", cls.task_type_key),
            default_task_type=env.get("GATEWAY_DEFAULT_TASK_TYPE", cls.default_task_type),
            buffer_size=_number(env, "GATEWAY_BUFFER_SIZE", cls.buffer_size, int),
            ack_timeout_s=_number(env, "GATEWAY_ACK_TIMEOUT_S", cls.ack_timeout_s, float),
            public_keys=tuple(k.strip() for k in env.get("ROUTING_PUBLIC_KEYS", "").split(",") if k.strip()),
        )


def _json_object(env: dict[str, str], name: str) -> dict:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        example = '{"openai/gpt-4o": "balanced"}'
        raise ValueError(f"{name} is not JSON ({error}); expected an object such as {example}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object (model -> layer), not {type(value).__name__}")
    return value


def _number(env: dict[str, str], name: str, default, kind):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be above 0")
    return value


def _kafka_options(env: dict[str, str]) -> dict[str, Any]:
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol!r}: one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=env.get("KAFKA_SSL_CAFILE") or None,
            certfile=env.get("KAFKA_SSL_CERTFILE") or None,
            keyfile=env.get("KAFKA_SSL_KEYFILE") or None,
            password=env.get("KAFKA_SSL_KEY_PASSWORD") or None,
        )
    if protocol.startswith("SASL_"):
        user, password = env.get("KAFKA_SASL_USERNAME"), env.get("KAFKA_SASL_PASSWORD")
        if not (user and password):
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        options |= {
            "sasl_mechanism": env.get("KAFKA_SASL_MECHANISM", "PLAIN"),
            "sasl_plain_username": user,
            "sasl_plain_password": password,
        }
    return options


class _Runtime:
    """The emitter and the subscriber of this process, started once on the loop that first needs them."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.table = RoutingTable(public_keys=config.public_keys or None)
        self.emitter = self._emitter()
        self.subscriber: HeuristicsSubscriber | None = None
        self._started_in: tuple[int, asyncio.AbstractEventLoop] | None = None

    def _emitter(self) -> CallEmitter:
        c = self.config
        return CallEmitter(
            c.bootstrap_servers,
            topic_completed=c.topic_completed,
            topic_failed=c.topic_failed,
            topic_feedback=c.topic_feedback,
            buffer_size=c.buffer_size,
            **c.kafka_options,
        )

    async def ensure_started(self) -> None:
        here = (os.getpid(), asyncio.get_running_loop())
        if self._started_in == here:
            return
        if self._started_in is not None:  # forked, or a new loop: the old clients belong to another
            self.table = RoutingTable(public_keys=self.config.public_keys or None)
            self.emitter = self._emitter()
            telemetry.emitter = self.emitter
            routing.table = self.table
        self._started_in = here
        await self.emitter.start()
        self.subscriber = HeuristicsSubscriber(
            self.config.bootstrap_servers,
            self.table,
            topic=self.config.topic_heuristics,
            **self.config.kafka_options,
        )
        await self.subscriber.start()
        log.info("gateway telemetry: reporting to %s (pid %d)", self.config.bootstrap_servers, here[0])


class ProxyTelemetryLogger(TelemetryLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        await _runtime.ensure_started()
        await super().async_log_success_event(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        await _runtime.ensure_started()
        await super().async_log_failure_event(kwargs, response_obj, start_time, end_time)


class ProxyRoutingPlugin(HeuristicsRoutingPlugin):
    async def run(self, context):
        await _runtime.ensure_started()
        if self.router is None:  # the proxy's own router: its cooldowns count, as with attach() on the SDK
            from litellm.proxy import proxy_server

            if proxy_server.llm_router is not None:
                self.attach(proxy_server.llm_router)
        return await super().run(context)


_config = ProxyConfig.from_env()
_runtime = _Runtime(_config)
telemetry = ProxyTelemetryLogger(
    _runtime.emitter,
    layers=_config.layers,
    default_layer=_config.default_layer,
    task_type_key=_config.task_type_key,
    default_task_type=_config.default_task_type,
    ack_timeout_s=_config.ack_timeout_s,
)
routing = ProxyRoutingPlugin(
    _runtime.table, task_type_key=_config.task_type_key, default_task_type=_config.default_task_type
)
