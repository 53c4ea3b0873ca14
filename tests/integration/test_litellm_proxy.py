"""The LiteLLM Proxy as users run it: `litellm --config config.yaml` with the README's configuration
(fake OpenAI-compatible providers on 127.0.0.1 in its model list), the official `openai` client, the
real worker, Kafka and PostgreSQL. Exact counts per deployment and task type; a failing provider loses
its traffic; SIGTERM loses nothing the proxy answered."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from aiohttp import web

from tests.integration.harness import free_port, wait_drained
from tests.integration.test_routing import OBEYED, wait_for
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.simulation.producer import ensure_topics

README = Path(__file__).resolve().parents[2] / "README.md"
MASTER_KEY = "sk-test-" + "0123456789abcdef" * 2
TASKS = ("coding", "summarization", "chat")  # by metadata, by tag, and the model group


class FakeProvider:
    """An OpenAI-compatible chat endpoint that counts what it served; `failing` answers 500."""

    def __init__(self) -> None:
        self.port = free_port()
        self.served: Counter = Counter()
        self.hits = 0
        self.failing = False
        self._runner: web.AppRunner | None = None

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.hits += 1
        if self.failing:
            return web.json_response({"error": {"message": "upstream overloaded", "type": "server_error"}}, status=500)
        self.served[body["model"]] += 1
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
            }
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def readme_config(providers: dict[str, FakeProvider]) -> dict:
    """The README's config.yaml as written, its model list pointed at the fake providers."""
    found = re.search(r"<!-- snippet: litellm-proxy -->\n```yaml\n(.*?)```", README.read_text(), re.S)
    assert found, "the README's LiteLLM Proxy configuration is missing"
    config = yaml.safe_load(found.group(1))
    assert {e["litellm_params"]["model"] for e in config["model_list"]} == {"openai/gpt-4o", "openai/gpt-4o-mini"}
    config["model_list"] = [
        {
            "model_name": "chat",
            "litellm_params": {"model": f"openai/{name}", "api_base": f"http://127.0.0.1:{p.port}/v1", "api_key": "x"},
        }
        for name, p in providers.items()
    ]
    return config


class Proxy:
    def __init__(self, settings, config: dict, tmp_path: Path) -> None:
        self.port = free_port()
        self.path = tmp_path / "config.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log = tmp_path / "proxy.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},  # the worker's; the proxy's own DB if set
            "LITELLM_MASTER_KEY": MASTER_KEY,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "TOPIC_CALLS_COMPLETED": settings.topic_calls_completed,
            "TOPIC_CALLS_FAILED": settings.topic_calls_failed,
            "TOPIC_CALLS_FEEDBACK": settings.topic_calls_feedback,
            "TOPIC_HEURISTICS": settings.topic_heuristics,
            "GATEWAY_LAYERS": '{"openai/fake-a": "fast", "openai/fake-b": "balanced", "openai/fake-c": "deep"}',
        }
        self.proc: subprocess.Popen | None = None

    async def start(self, timeout: float = 120.0) -> None:
        litellm_cli = Path(sys.executable).with_name("litellm")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(litellm_cli), "--config", str(self.path), "--port", str(self.port), "--host", "127.0.0.1"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"the proxy exited:\n{self.tail()}"
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{self.port}/health/liveliness", timeout=2)
                    ).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise AssertionError(f"the proxy did not answer within {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


async def ask(client: openai.AsyncOpenAI, task: str) -> bool:
    """One request as a user's code sends it; True when the proxy answered it."""
    extra: dict = {}
    if task == "coding":
        extra = {"metadata": {"task_type": "coding", "request_id": str(uuid.uuid4())}}
    elif task == "summarization":
        extra = {"tags": ["task:summarization"]}
    try:
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"a {task} request"}], extra_body=extra
        )
    except openai.OpenAIError:
        return False
    return True


async def traffic(client, count: int, answered: Counter, concurrency: int = 10) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            task = TASKS[i % len(TASKS)]
            if await ask(client, task):
                answered[task] += 1

    await asyncio.gather(*(one(i) for i in range(count)))


async def steady(client, stop: asyncio.Event, answered: Counter, sent: Counter, concurrency: int = 4) -> None:
    """Requests back to back from `concurrency` users until `stop`."""

    async def user(offset: int) -> None:
        i = offset
        while not stop.is_set():
            task = TASKS[i % len(TASKS)]
            sent[task] += 1
            if await ask(client, task):
                answered[task] += 1
            i += concurrency
            await asyncio.sleep(0.02)

    await asyncio.gather(*(user(k) for k in range(concurrency)))


async def counted(pool) -> tuple[Counter, Counter, Counter]:
    rows = await pool.fetch(
        "SELECT model_id, task_type, sum(total_calls)::int AS calls, sum(success_count)::int AS ok "
        "FROM model_performance GROUP BY model_id, task_type"
    )
    ok_by_model, ok_by_task, failed_by_model = Counter(), Counter(), Counter()
    for r in rows:
        ok_by_model[r["model_id"]] += r["ok"]
        ok_by_task[r["task_type"]] += r["ok"]
        failed_by_model[r["model_id"]] += r["calls"] - r["ok"]
    return ok_by_model, ok_by_task, failed_by_model


@pytest.fixture
async def providers():
    found = {name: FakeProvider() for name in ("fake-a", "fake-b", "fake-c")}
    for p in found.values():
        await p.start()
    yield found
    for p in found.values():
        await p.stop()


async def test_the_proxy_from_the_readme_reports_exactly_routes_by_the_rules_and_stops_without_loss(
    settings, workers, pool, providers, tmp_path
):
    await ensure_topics(settings, partitions=2)
    worker = workers(**OBEYED)
    await worker.wait_ready()
    proxy = Proxy(settings, readme_config(providers), tmp_path)
    await proxy.start()
    table = RoutingTable()
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    await subscriber.start()
    answered: Counter = Counter()
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{proxy.port}", api_key=MASTER_KEY, max_retries=0)
    try:
        # 1. every call counted once, per deployment and per task type (metadata, tag, model group)
        await traffic(client, 300, answered)
        assert sum(answered.values()) == 300, proxy.tail()
        await wait_drained(settings, pool, workers=[worker])
        ok_by_model, ok_by_task, _ = await counted(pool)
        served = {f"openai/{name}": sum(p.served.values()) for name, p in providers.items()}
        assert dict(ok_by_task) == dict(answered)
        assert {m: n for m, n in ok_by_model.items() if n} == {m: n for m, n in served.items() if n}

        # 2. the rules come back to the proxy: the deployment they prefer starts failing, is excluded, and loses
        # its traffic (only the probes reach it)
        await wait_for(lambda: all(table.choose(t) for t in TASKS), 30, "rules for every task type")
        weights = Counter()
        for t in TASKS:
            weights.update(table.choose(t).weights)
        failing_model = max(weights, key=weights.__getitem__)
        failing = providers[failing_model.removeprefix("openai/")]
        preferred = [t for t in TASKS if table.choose(t).weights.get(failing_model, 0) >= 0.3]
        failing.failing = True
        stop, sent = asyncio.Event(), Counter()
        background = asyncio.create_task(steady(client, stop, answered, sent))
        try:
            await wait_for(
                lambda: all(failing_model in table.choose(t).excluded for t in preferred),
                45,
                f"{failing_model} excluded",
            )
            hits_at_exclusion, answered_at_exclusion = failing.hits, sum(answered.values())
            await asyncio.sleep(6)
        finally:
            stop.set()
            await background
        after = sum(answered.values()) - answered_at_exclusion
        assert after > 50
        assert failing.hits - hits_at_exclusion <= 0.06 * after + 3  # probes at most
        assert sum(answered.values()) == 300 + sum(sent.values()), "a retry goes to another deployment: all answered"

        # 3. SIGTERM mid-traffic: everything the proxy answered, and everything it served, is counted
        failing.failing = False
        before_stop = Counter(answered)
        burst = asyncio.create_task(traffic(client, 400, answered, concurrency=20))
        await asyncio.sleep(1.5)
        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGTERM)
        await burst
        assert proxy.proc.wait(60) is not None
        assert sum(answered.values()) > sum(before_stop.values()), "some requests of the burst were answered"
        await wait_drained(settings, pool, workers=[worker])
        ok_by_model, ok_by_task, failed_by_model = await counted(pool)
        for task in TASKS:
            assert ok_by_task[task] >= answered[task], (task, ok_by_task, answered)
        served = {f"openai/{name}": sum(p.served.values()) for name, p in providers.items()}
        assert {m: n for m, n in ok_by_model.items() if n} == {m: n for m, n in served.items() if n}, proxy.tail()
        assert failed_by_model[failing_model] == failing.hits - sum(failing.served.values())
    finally:
        await client.close()
        await subscriber.stop()
        proxy.kill()
