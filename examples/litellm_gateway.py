"""A LiteLLM gateway for the tests and `make demo-litellm`: a real litellm.Router whose deployments answer
from mock_response (no network), a fault injector that makes chosen deployments fail, the
project's TelemetryLogger and HeuristicsRoutingPlugin plugged in as a user would."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: LiteLLM's bundled cost map

import litellm
from litellm.integrations.custom_logger import CustomLogger

from worker.gateway.emitter import CallEmitter
from worker.gateway.litellm import HeuristicsRoutingPlugin, TelemetryLogger
from worker.gateway.router import HeuristicsSubscriber, RoutingTable

DEPLOYMENTS = {
    "openai/acme-good": ("balanced", 0.99),
    "openai/acme-ok": ("balanced", 0.93),
    "openai/acme-weak": ("fast", 0.80),
}


class FaultInjector(CustomLogger):
    """Makes a deployment fail with its configured probability, just before LiteLLM calls it."""

    def __init__(self, success: dict[str, float], seed: int = 3):
        super().__init__()
        self.success, self.rng = success, random.Random(seed)

    async def async_pre_call_deployment_hook(self, kwargs, call_type):
        model = str(kwargs.get("model"))
        rate = self.success.get(_deployment(model), 1.0)
        if self.rng.random() >= rate:
            kwargs["mock_response"] = "litellm.RateLimitError"
        return kwargs


class LiteLLMGateway:
    def __init__(self, bootstrap_servers: str, table: RoutingTable, *, topic_completed: str, topic_failed: str):
        self.table = table
        self.success = {m: s for m, (_, s) in DEPLOYMENTS.items()}
        self.emitter = CallEmitter(bootstrap_servers, topic_completed=topic_completed, topic_failed=topic_failed)
        self.logger = TelemetryLogger(self.emitter, layers={m: layer for m, (layer, _) in DEPLOYMENTS.items()})
        self.injector = FaultInjector(self.success)
        self.plugin = HeuristicsRoutingPlugin(table)
        self.router = litellm.Router(
            model_list=[
                {
                    "model_name": "chat",
                    "litellm_params": {"model": m, "api_key": "sk-test-not-a-key", "mock_response": "ok"},
                }
                for m in DEPLOYMENTS
            ],
            plugins=[self.plugin],
            num_retries=0,
            disable_cooldowns=True,
        )
        self.plugin.attach(self.router)
        self.calls: list[tuple[float, str, bool]] = []  # (monotonic t, deployment, ok)
        self._previous_callbacks: list = []

    async def start(self) -> None:
        await self.emitter.start()
        self._previous_callbacks = list(litellm.callbacks)
        litellm.callbacks = [self.injector, self.logger]

    async def stop(self) -> None:
        for _ in range(100):  # LiteLLM runs its callbacks after a call returns: let the last ones report
            if self.emitter.stats.enqueued + self.emitter.stats.dropped + self.logger.rejected >= len(self.calls):
                break
            await asyncio.sleep(0.1)
        litellm.callbacks = self._previous_callbacks
        litellm.logging_callback_manager.drop_callbacks([self.injector, self.logger])
        await self.emitter.stop()

    async def one(self, loop: asyncio.AbstractEventLoop, task_type: str) -> None:
        started = loop.time()
        try:
            response = await self.router.acompletion(
                model="chat",
                messages=[{"role": "user", "content": "summarise this ticket"}],
                metadata={"task_type": task_type, "request_id": f"req_{uuid.uuid4()}"},
            )
            model, ok = response._hidden_params.get("litellm_model_name") or response.model, True
        except litellm.RateLimitError as error:
            model, ok = str(getattr(error, "model", "")), False
        self.calls.append((started, _deployment(model), ok))

    async def run(self, stop: asyncio.Event, rate: float = 60.0, task_types=("coding", "chat")) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(11)
        while not stop.is_set():
            tick = loop.time()
            await asyncio.gather(*(self.one(loop, rng.choice(task_types)) for _ in range(int(rate / 10))))
            await asyncio.sleep(max(0.0, 0.1 - (loop.time() - tick)))

    @classmethod
    async def running(cls, settings) -> tuple[LiteLLMGateway, HeuristicsSubscriber, asyncio.Event, asyncio.Task]:
        """Subscribed to the settings' heuristics topic, reporting to its call topics, sending traffic
        until the returned event is set (then await the task, and stop the gateway and subscriber)."""
        table = RoutingTable()
        subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
        await subscriber.start()
        gateway = cls(
            settings.kafka_bootstrap_servers,
            table,
            topic_completed=settings.topic_calls_completed,
            topic_failed=settings.topic_calls_failed,
        )
        await gateway.start()
        stop = asyncio.Event()
        return gateway, subscriber, stop, asyncio.create_task(gateway.run(stop))

    def shares(self, since: float, until: float) -> dict[str, float]:
        counts = Counter(m for t, m, _ in self.calls if since <= t < until)
        total = sum(counts.values())
        return {m: counts.get(m, 0) / total if total else 0.0 for m in DEPLOYMENTS}


def _deployment(model: str) -> str:
    return next((m for m in DEPLOYMENTS if model.endswith(m.split("/", 1)[1])), model)


async def demo(phases: list[tuple[str, float, float]], every_s: float = 10.0) -> None:
    """Run the gateway against the local worker and print each deployment's share as it goes."""
    from worker.settings import get_settings

    gateway, subscriber, stop, traffic = await LiteLLMGateway.running(get_settings())
    table = gateway.table
    loop = asyncio.get_running_loop()
    began = loop.time()
    names = list(DEPLOYMENTS)
    print(f"{'t (s)':>6}  {'phase':<34}" + "".join(f"{m.split('/', 1)[1]:>12}" for m in names) + "   rule for chat")
    try:
        for label, success, seconds in phases:
            gateway.success["openai/acme-good"] = success
            until = loop.time() + seconds
            while loop.time() < until:
                await asyncio.sleep(every_s)
                now = loop.time()
                shares = gateway.shares(now - every_s, now)
                rule = table.choose("chat")
                state = (
                    "no rule yet"
                    if rule is None
                    else "acme-good excluded"
                    if "openai/acme-good" in rule.excluded
                    else "acme-good probed"
                    if "openai/acme-good" in rule.probes
                    else f"v{rule.version}"
                )
                print(
                    f"{now - began:6.0f}  {label:<34}" + "".join(f"{shares[m]:>12.0%}" for m in names) + f"   {state}",
                    flush=True,
                )
    finally:
        stop.set()
        await traffic
        await gateway.stop()
        await subscriber.stop()
    stats = gateway.emitter.stats
    print(
        f"{len(gateway.calls)} LiteLLM calls; emitter: {stats.sent} sent, {stats.dropped} dropped, "
        f"{stats.send_errors} not sent"
    )


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="LiteLLM with the telemetry loop: one deployment fails, then recovers")
    p.add_argument("--healthy", type=float, default=150.0, help="seconds before acme-good starts failing")
    p.add_argument("--failing", type=float, default=40.0, help="seconds it fails every call")
    p.add_argument("--recovered", type=float, default=60.0, help="seconds after it recovers")
    a = p.parse_args()
    asyncio.run(
        demo(
            [
                ("healthy", 0.99, a.healthy),
                ("acme-good fails every call", 0.0, a.failing),
                ("acme-good recovered", 0.99, a.recovered),
            ]
        )
    )


if __name__ == "__main__":
    main()
