"""The LiteLLM pieces on their own: what a callback's arguments become, what the plugin narrows to."""

import datetime as dt
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
from litellm.types.router import RoutingContext

from tests.unit.test_routing_table import learned
from worker.gateway.litellm import HeuristicsRoutingPlugin, TelemetryLogger
from worker.routing.table import RoutingTable

T0 = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC)


class Collect:
    def __init__(self):
        self.events = []

    def emit(self, event):
        self.events.append(event)
        return True


def kwargs(model="openai/gpt-4o", **slo):
    return {
        "standard_logging_object": {
            "model": model,
            "custom_llm_provider": "openai",
            "prompt_tokens": 12,
            "completion_tokens": 30,
            "response_cost": 0.0021,
            "id": "chatcmpl-1",
            **slo,
        },
        "litellm_params": {
            "metadata": {
                "task_type": "coding",
                "request_id": "req-1",
                "model_group": "chat",
                "routing_plugin_signals": {"gateway-telemetry": {"rule": "learned:coding@v3"}},
            }
        },
    }


async def test_a_success_and_a_failure_become_call_events():
    sink = Collect()
    logger = TelemetryLogger(sink, layers={"openai/gpt-4o": "balanced"})
    await logger.async_log_success_event(kwargs(), None, T0, T0 + dt.timedelta(milliseconds=840))
    await logger.async_log_failure_event(
        kwargs(
            error_str="litellm.RateLimitError: slow down, key sk-abcdefghijkl",
            error_information={"error_class": "RateLimitError", "error_code": "429"},
        ),
        None,
        T0,
        T0 + dt.timedelta(milliseconds=90),
    )
    ok, bad = sink.events
    assert (ok.model_id, ok.layer.value, ok.task_type, ok.latency_ms, ok.input_tokens, ok.cost_usd) == (
        "openai/gpt-4o",
        "balanced",
        "coding",
        840.0,
        12,
        0.0021,
    )
    assert ok.request_id == "req-1" and ok.routing_rule_id == "learned:coding@v3" and ok.provider == "openai"
    assert (bad.error_type, bad.http_status, bad.retryable, bad.category) == ("RateLimitError", 429, True, "api")
    assert "sk-abcdef" not in bad.error_message


async def test_the_task_type_falls_back_to_the_model_group_and_invalid_calls_are_counted_not_raised():
    sink = Collect()
    logger = TelemetryLogger(sink)
    k = kwargs()
    del k["litellm_params"]["metadata"]["task_type"]
    await logger.async_log_success_event(k, None, T0, T0)
    assert sink.events[0].task_type == "chat" and sink.events[0].layer.value == "balanced"
    await logger.async_log_success_event(kwargs(model="x" * 500), None, T0, T0)  # model id over 200 characters
    assert logger.rejected == 1 and len(sink.events) == 1


async def test_the_plugin_narrows_to_the_chosen_deployment_and_a_retry_moves_on():
    table = RoutingTable()
    rule = learned(
        task="coding", weights={"openai/gpt-4o": 0.5, "openai/gpt-4o-mini": 0.5}, excluded={"openai/o3": "down"}
    )
    table.apply("coding", rule.model_dump_json().encode())
    plugin = HeuristicsRoutingPlugin(table)
    pool = ["openai/gpt-4o", "openai/gpt-4o-mini", "openai/o3"]
    context = RoutingContext(
        raw_messages=[],
        structured_messages=[{"role": "user", "content": "hi"}],
        candidate_models=list(pool),
        metadata={"task_type": "coding", "request_id": "req-9"},
    )
    first = (await plugin.run(context)).candidate_models
    assert (
        len(first) == 1
        and first[0] != "openai/o3"
        and context.signals["gateway-telemetry"]["rule"] == "learned:coding@v1"
    )
    context.candidate_models = list(pool)  # LiteLLM runs the plugins again on a retry, with the same metadata
    second = (await plugin.run(context)).candidate_models
    assert second != first and second[0] != "openai/o3"
    untouched = RoutingContext(
        raw_messages=[], structured_messages=[], candidate_models=list(pool), metadata={"task_type": "chat"}
    )
    assert (await plugin.run(untouched)).candidate_models == pool  # no rule: LiteLLM decides


async def test_the_plugin_puts_the_request_in_its_experiment_arm_and_the_callback_reports_the_arm():
    from worker.experiments.contract import Experiment, ExperimentSpec, topic_key

    spec = ExperimentSpec.model_validate(
        {
            "experimentId": "litellm-exp",
            "name": "n",
            "taskTypes": ["coding"],
            "arms": [
                {"name": "learned", "share": 0.5, "strategy": {"kind": "learned"}},
                {
                    "name": "mini",
                    "share": 0.5,
                    "strategy": {"kind": "model", "model": "openai/gpt-4o-mini", "layer": "fast"},
                },
            ],
        }
    )
    table = RoutingTable()
    table.apply(topic_key("litellm-exp"), Experiment.start(spec, T0).model_dump_json().encode())
    plugin = HeuristicsRoutingPlugin(table)
    pool = ["openai/gpt-4o", "openai/gpt-4o-mini"]
    arms = {}
    for i in range(40):
        context = RoutingContext(
            raw_messages=[],
            structured_messages=[{"role": "user", "content": "hi"}],
            candidate_models=list(pool),
            metadata={"task_type": "coding", "request_id": f"req-{i}"},
        )
        narrowed = (await plugin.run(context)).candidate_models
        signal = context.signals["gateway-telemetry"]
        arms[signal["arm"]] = narrowed
        assert signal["experiment_id"] == "litellm-exp"
        if signal["arm"] == "mini":
            assert narrowed == ["openai/gpt-4o-mini"] and signal["rule"] == "experiment:litellm-exp:mini"
        else:  # the learned arm and no learned rule yet: LiteLLM decides, and the call is still the arm's
            assert narrowed == pool and signal["rule"] is None
    assert set(arms) == {"learned", "mini"}
    sink = Collect()
    logger = TelemetryLogger(sink)
    call = kwargs(model="openai/gpt-4o-mini")
    call["litellm_params"]["metadata"]["routing_plugin_signals"] = {"gateway-telemetry": signal}
    await logger.async_log_success_event(call, None, T0, T0 + dt.timedelta(milliseconds=300))
    (event,) = sink.events
    assert (event.experiment_id, event.arm) == ("litellm-exp", signal["arm"])


def test_a_layers_map_naming_a_layer_that_does_not_exist_is_refused_at_construction():
    from worker.gateway.emitter import CallEmitter
    from worker.gateway.litellm import TelemetryLogger

    with pytest.raises(ValueError, match="unknown layers.*turbo"):
        TelemetryLogger(CallEmitter("127.0.0.1:1"), layers={"openai/gpt-4o": "turbo"})
    with pytest.raises(ValueError, match="default_layer"):
        TelemetryLogger(CallEmitter("127.0.0.1:1"), default_layer="huge")
