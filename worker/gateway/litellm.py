"""LiteLLM, plugged into the loop: a callback that reports every call, a routing plugin that obeys the rules.

    emitter = CallEmitter("kafka:9092")
    await emitter.start()
    litellm.callbacks = [TelemetryLogger(emitter, layers={"openai/gpt-4o": "balanced"})]
    router = litellm.Router(model_list=..., plugins=[HeuristicsRoutingPlugin(table)])
    await router.acompletion(model="chat", messages=..., metadata={"task_type": "coding", "request_id": rid})

Model ids are the deployments' `litellm_params.model` strings (what `candidate_models` holds and
what the events report), so the rules name the same models the router picks from. The task type
is `metadata["task_type"]` (the key is configurable), else the model group (`model="chat"`), else
`default_task_type`. Neither class ever raises into LiteLLM: a call that cannot become a valid
event is counted in `rejected` and logged (at most every 10 s).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from collections.abc import Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from worker.calls.events import Layer
from worker.gateway.emitter import CallEmitter, EventRejected, completed, failed
from worker.gateway.table import EXPLORE_SHARE, RoutingTable, hash_unit
from worker.throttle import Throttle

log = logging.getLogger(__name__)

SIGNAL = "gateway-telemetry"  # our entry in the plugin signals LiteLLM carries to the callbacks (and to retries)
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
CATEGORIES = {
    "RateLimitError": "api",
    "APIError": "api",
    "APIConnectionError": "api",
    "ServiceUnavailableError": "api",
    "InternalServerError": "api",
    "BadGatewayError": "api",
    "AuthenticationError": "api",
    "Timeout": "routing",
    "ContextWindowExceededError": "context",
    "JSONSchemaValidationError": "parsing",
}


TASK_TAG = "task:"


def task_type_of(metadata: Mapping[str, Any], key: str, default: str) -> str:
    """`metadata[key]` (on the LiteLLM Proxy, the request body's `metadata`, which the proxy keeps as
    `requester_metadata`), else a `task:<name>` tag, else the model group, else `default`."""
    requester = metadata.get("requester_metadata")
    value = metadata.get(key) or (requester.get(key) if isinstance(requester, Mapping) else None)
    if not value:
        tags = metadata.get("tags")
        if isinstance(tags, list):
            value = next((t[len(TASK_TAG) :] for t in tags if isinstance(t, str) and t.startswith(TASK_TAG)), None)
    return str(value or metadata.get("model_group") or default)


def _millis(start: Any, end: Any) -> float:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return max(0.0, (end - start).total_seconds() * 1000.0)
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        return max(0.0, (end - start) * 1000.0)
    return 0.0


class TelemetryLogger(CustomLogger):
    """LiteLLM's callback interface: each success and failure becomes a v1 call event."""

    def __init__(
        self,
        emitter: CallEmitter,
        *,
        layers: Mapping[str, str] | None = None,
        default_layer: str = "balanced",
        task_type_key: str = "task_type",
        default_task_type: str = "default",
        ack_timeout_s: float = 0.0,
    ):
        """`ack_timeout_s` > 0: each callback waits (up to that long, only while Kafka answers) until its
        event is acknowledged, so that a host draining its callbacks on shutdown (the LiteLLM Proxy)
        has delivered every event of the requests it answered."""
        super().__init__()
        known = {layer.value for layer in Layer}
        wrong = {m: v for m, v in {**(layers or {}), "(default_layer)": default_layer}.items() if v not in known}
        if wrong:  # refused here, not on every event later
            raise ValueError(f"unknown layers {wrong}: a layer is one of {sorted(known)}")
        # LiteLLM keeps one logger per class and public settings; a new logger (a new emitter) must not be
        # mistaken for an old one, or its events would go to the old emitter
        self.instance_id = uuid.uuid4().hex
        self.emitter, self.layers, self.default_layer = emitter, dict(layers or {}), default_layer
        self.task_type_key, self.default_task_type = task_type_key, default_task_type
        self.ack_timeout_s = ack_timeout_s
        self.rejected = 0
        self._warning = Throttle()

    def _common(self, kwargs: dict, start_time: Any, end_time: Any) -> dict[str, Any]:
        slo = kwargs.get("standard_logging_object") or {}
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        model = slo.get("model") or kwargs.get("model") or "unknown"
        signals = metadata.get("routing_plugin_signals") or {}
        fields = {
            "model_id": str(model),
            "provider": slo.get("custom_llm_provider") or None,
            "layer": metadata.get("layer") or self.layers.get(str(model), self.default_layer),
            "task_type": task_type_of(metadata, self.task_type_key, self.default_task_type),
            "latency_ms": round(_millis(start_time, end_time), 3),
            "input_tokens": int(slo.get("prompt_tokens") or 0),
            "output_tokens": int(slo.get("completion_tokens") or 0),
            "cost_usd": float(slo.get("response_cost") or kwargs.get("response_cost") or 0.0),
            "request_id": str(metadata.get("request_id") or slo.get("id") or "")[:200] or None,
        }
        ours = (signals.get(SIGNAL) or {}) if isinstance(signals, Mapping) else {}
        for field, signal in (("routing_rule_id", "rule"), ("experiment_id", "experiment_id"), ("arm", "arm")):
            if ours.get(signal):
                fields[field] = str(ours[signal])
        probability = ours.get("probability")
        if isinstance(probability, float | int) and not isinstance(probability, bool):
            fields["route_probability"] = float(probability)
        return fields

    async def _emit(self, build, **fields: Any) -> None:
        try:
            event = build(**fields)
        except EventRejected as problem:
            self.rejected += 1
            if self._warning.ready():
                log.warning("telemetry: a LiteLLM call was not reported (%s); %d so far", problem, self.rejected)
            return
        if self.ack_timeout_s > 0:
            await self.emitter.emit_acked(event, self.ack_timeout_s)
        else:
            self.emitter.emit(event)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        await self._emit(completed, **self._common(kwargs, start_time, end_time))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        slo = kwargs.get("standard_logging_object") or {}
        info = slo.get("error_information") or {}
        error = kwargs.get("exception")
        error_class = str(info.get("error_class") or (type(error).__name__ if error is not None else "unknown"))
        try:
            status = int(info.get("error_code") or getattr(error, "status_code", 0) or 0)
        except (TypeError, ValueError):
            status = 0
        fields = self._common(kwargs, start_time, end_time) | {
            "error_type": error_class[:100],
            "error_message": str(slo.get("error_str") or error or "")[:16_384],
            "category": CATEGORIES.get(error_class),
            "http_status": status if 100 <= status <= 599 else None,
            "retryable": status in RETRYABLE_STATUS if status else None,
        }
        await self._emit(failed, **fields)


def _prompt(messages: list) -> str:
    """The text manual rules match: the last user message (text parts joined)."""
    for message in reversed(messages or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


class HeuristicsRoutingPlugin:
    """A LiteLLM routing plugin (`Router(plugins=[...])`): narrows the candidate deployments to the
    model the published rules choose for this request.

    Manual rules match the last user message by RE2 pattern, the learned rule by task type; the
    split follows `weights`, never a model in `excluded`, and candidates the rule does not mention
    get `explore_share`. The draw is SHA-256 of the request id (`metadata["request_id"]`) and the
    attempt. With no rule, the candidates are left as they are (LiteLLM's own strategy decides). A
    running experiment puts the request in an arm by its request id (by `metadata["session_id"]`,
    the key configurable, only for an experiment stored with session units), and the callback
    reports its experiment_id and arm.

    Retries: LiteLLM runs the plugins again on every attempt with a fresh copy of the metadata, but
    keeps the signals of the last attempt on the request; the models tried so far travel there, so a
    retry draws among the others. Cooldowns: once `attach(router)` has been called, models whose
    every deployment LiteLLM has cooled down are left out of the draw, so the plugin never narrows
    LiteLLM to nothing it is willing to call (when all are cooling, LiteLLM's own answer stands).
    """

    def __init__(
        self,
        table: RoutingTable,
        *,
        task_type_key: str = "task_type",
        default_task_type: str = "default",
        explore_share: float = EXPLORE_SHARE,
        session_key: str = "session_id",
    ):
        self.table, self.task_type_key, self.default_task_type = table, task_type_key, default_task_type
        self.explore_share, self.session_key = explore_share, session_key
        self.router: Any = None
        self.cooldown_errors = 0
        self._warning = Throttle()
        self._unattached_said = False

    def attach(self, router: Any) -> HeuristicsRoutingPlugin:
        """Read `router`'s cooldowns before each draw (the router takes the plugin before it exists)."""
        self.router = router
        return self

    async def run(self, context):
        metadata = context.metadata
        task = task_type_of(metadata, self.task_type_key, self.default_task_type)
        tried = _tried(metadata)
        pool = list(dict.fromkeys(context.candidate_models))
        cooling = await self._cooling(pool)
        usable = [m for m in pool if m not in cooling] or pool
        fresh = [m for m in usable if m not in tried] or usable
        request_id = metadata.get("request_id")
        u = hash_unit(f"{request_id}:{len(tried)}") if request_id else random.random()
        route = self.table.pick(
            task,
            _prompt(context.structured_messages),
            key=str(request_id) if request_id else None,
            unit=metadata.get(self.session_key) or None,
            candidates=fresh,
            u=u,
            explore_share=self.explore_share,
        )
        if route.rule_id is None and route.arm is None:  # no rule, no experiment: LiteLLM's own strategy decides
            return context
        if route.model is not None:
            context.candidate_models = [m for m in context.candidate_models if m == route.model]
        context.signals[SIGNAL] = {
            "rule": route.rule_id,
            "model": route.model,
            "experiment_id": route.experiment_id,
            "arm": route.arm,
            "probability": route.probability,
            "tried": [*tried, route.model] if route.model is not None else tried,
        }
        return context

    async def _cooling(self, pool: list[str]) -> set[str]:
        """Models of `pool` whose every deployment is in LiteLLM's cooldown; empty when not attached."""
        if self.router is None:
            if not self._unattached_said:
                self._unattached_said = True
                log.warning(
                    "telemetry: HeuristicsRoutingPlugin.attach(router) was not called; a model in LiteLLM's "
                    "cooldown may be chosen and the request refused ('No deployments left')"
                )
            return set()
        try:
            registry = self.router.registry()
            ids = registry.names(kind="ids")
            active = await self.router.health().cooldowns.async_get_active_cooldowns(
                model_ids=ids, parent_otel_span=None
            )
            cooled = {entry[0] for entry in active or ()}
            deployments: dict[str, list[str]] = {}
            for deployment_id in ids:
                deployment = registry.deployment(deployment_id)
                model = getattr(getattr(deployment, "litellm_params", None), "model", None)
                if model in pool:
                    deployments.setdefault(model, []).append(deployment_id)
            return {m for m, owned in deployments.items() if all(d in cooled for d in owned)}
        except Exception as error:  # noqa: BLE001 - LiteLLM internals: never fail a request over them
            self.cooldown_errors += 1
            if self._warning.ready():
                log.warning("telemetry: could not read LiteLLM's cooldowns (%r); drawing among all candidates", error)
            return set()


def _tried(metadata: Mapping[str, Any]) -> list[str]:
    """The models earlier attempts of this request were sent to (from the signals LiteLLM kept)."""
    signals = metadata.get("routing_plugin_signals")
    ours = signals.get(SIGNAL) if isinstance(signals, Mapping) else None
    tried = ours.get("tried") if isinstance(ours, Mapping) else None
    return [str(m) for m in tried] if isinstance(tried, list) else []
