"""The LiteLLM pieces on their own: what a callback's arguments become, what the plugin narrows to."""

import asyncio
import datetime as dt
import os
from collections import Counter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
from litellm.types.router import RoutingContext

from tests.unit.gateway.test_table import learned
from worker.gateway.litellm import HeuristicsRoutingPlugin, TelemetryLogger
from worker.gateway.table import RoutingTable

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
                "routing_plugin_signals": {"gateway-telemetry": {"rule": "learned:coding@v3", "probability": 0.8}},
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
    assert ok.route_probability == 0.8 and bad.route_probability == 0.8
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
        and context.signals["gateway-telemetry"]["probability"] == 0.5  # its share of the even split
    )
    # a retry: LiteLLM runs the plugins again with a fresh metadata copy that holds the last signals
    context = RoutingContext(
        raw_messages=[],
        structured_messages=[{"role": "user", "content": "hi"}],
        candidate_models=list(pool),
        metadata={"task_type": "coding", "request_id": "req-9", "routing_plugin_signals": context.signals},
    )
    second = (await plugin.run(context)).candidate_models
    assert second != first and second[0] != "openai/o3"
    untouched = RoutingContext(
        raw_messages=[], structured_messages=[], candidate_models=list(pool), metadata={"task_type": "chat"}
    )
    assert (await plugin.run(untouched)).candidate_models == pool  # no rule: LiteLLM decides


async def test_the_plugin_puts_the_request_in_its_experiment_arm_and_the_callback_reports_the_arm():
    from worker.experiments.contract import Experiment, ExperimentSpec, experiment_key

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
    table.apply(experiment_key("litellm-exp"), Experiment.start(spec, T0).model_dump_json().encode())
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


def _router_with_a_failing_deployment(table, *, num_retries, cooldowns, attach):
    import litellm

    from examples.litellm_gateway import FaultInjector

    injector = FaultInjector({"openai/a": 0.0, "openai/b": 1.0})
    plugin = HeuristicsRoutingPlugin(table)
    router = litellm.Router(
        model_list=[
            {"model_name": "chat", "litellm_params": {"model": m, "api_key": "sk-test", "mock_response": "ok"}}
            for m in ("openai/a", "openai/b")
        ],
        plugins=[plugin],
        num_retries=num_retries,
        retry_after=0,
        disable_cooldowns=not cooldowns,
    )
    if attach:
        plugin.attach(router)
    return router, injector


async def _outcomes(router, injector, n=60):
    import litellm

    previous = list(litellm.callbacks)
    litellm.callbacks = [injector]
    outcomes = Counter()
    try:
        for i in range(n):
            try:
                await router.acompletion(
                    model="chat",
                    messages=[{"role": "user", "content": "hi"}],
                    metadata={"task_type": "chat", "request_id": f"req-{i}"},
                )
                outcomes["ok"] += 1
            except Exception as error:  # noqa: BLE001 - what LiteLLM raised is the outcome under test
                outcomes["no deployments left" if "No deployments left" in str(error) else type(error).__name__] += 1
    finally:
        litellm.callbacks = previous
        litellm.logging_callback_manager.drop_callbacks([injector])
    return outcomes


def _even_rule():
    table = RoutingTable()
    table.apply("chat", learned(task="chat", weights={"openai/a": 0.5, "openai/b": 0.5}).model_dump_json().encode())
    return table


async def test_with_a_real_router_a_retry_goes_to_the_other_deployment():
    router, injector = _router_with_a_failing_deployment(_even_rule(), num_retries=2, cooldowns=False, attach=True)
    assert await _outcomes(router, injector) == {"ok": 60}  # half the draws fail first on openai/a, every retry moves


async def test_with_a_real_router_a_deployment_in_cooldown_is_never_the_only_candidate():
    router, injector = _router_with_a_failing_deployment(_even_rule(), num_retries=0, cooldowns=True, attach=True)
    outcomes = await _outcomes(router, injector)
    # without retries, only the calls before LiteLLM cools openai/a down fail; none is refused for want of a deployment
    assert outcomes["no deployments left"] == 0 and outcomes["ok"] >= 55, outcomes
    unattached, injector = _router_with_a_failing_deployment(_even_rule(), num_retries=0, cooldowns=True, attach=False)
    assert (await _outcomes(unattached, injector))["no deployments left"] > 10  # what attach() prevents


async def test_failures_from_a_real_provider_carry_its_http_status():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import litellm
    import openai

    statuses = iter([500, 429])

    class Provider(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(next(statuses))
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "provider trouble", "type": "server_error"}}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = Collect()
    logger = TelemetryLogger(sink)
    previous = list(litellm.callbacks)
    litellm.callbacks = [logger]
    router = litellm.Router(
        model_list=[
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": "openai/provider",
                    "api_key": "sk-test",
                    "api_base": f"http://127.0.0.1:{server.server_port}/v1",
                },
            }
        ],
        num_retries=0,
        disable_cooldowns=True,
    )
    try:
        for _ in range(2):
            with pytest.raises(openai.APIStatusError):
                await router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
        for _ in range(50):
            if sum(e.model_id == "openai/provider" for e in sink.events) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        litellm.callbacks = previous
        litellm.logging_callback_manager.drop_callbacks([logger])
        server.shutdown()
    ours = [e for e in sink.events if e.model_id == "openai/provider"]  # not the earlier tests' late callbacks
    assert [(e.http_status, e.retryable, e.category) for e in ours] == [(500, True, "api"), (429, True, "api")]
