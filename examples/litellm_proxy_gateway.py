"""The LiteLLM Proxy in the loop, for its test and `make demo-litellm-proxy`: fake OpenAI-compatible
providers on 127.0.0.1, `litellm --config` started from the README's config.yaml (its model list pointed
at the fakes), and the official `openai` client as the application."""

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
import yaml
from aiohttp import web

README = Path(__file__).resolve().parents[1] / "README.md"
MASTER_KEY = "sk-demo-" + "0123456789abcdef" * 2
TASKS = ("coding", "summarization", "chat")  # by metadata, by tag, and the model group


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    if not found:
        raise LookupError("the README's LiteLLM Proxy configuration (<!-- snippet: litellm-proxy -->) is missing")
    config = yaml.safe_load(found.group(1))
    config["model_list"] = [
        {
            "model_name": "chat",
            "litellm_params": {"model": f"openai/{name}", "api_base": f"http://127.0.0.1:{p.port}/v1", "api_key": "x"},
        }
        for name, p in providers.items()
    ]
    return config


class Proxy:
    def __init__(self, settings, config: dict, tmp_path: Path, num_workers: int = 1) -> None:
        """`settings`: the worker's (its Kafka address and topic names); `num_workers`: the proxy's
        worker processes (`--num_workers`), each with its own emitter and rules."""
        self.num_workers = num_workers
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
                [str(litellm_cli), "--config", str(self.path), "--port", str(self.port), "--host", "127.0.0.1"]
                + (["--num_workers", str(self.num_workers)] if self.num_workers > 1 else []),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the proxy exited:\n{self.tail()}")
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{self.port}/health/liveliness", timeout=2)
                    ).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError(f"the proxy did not answer within {timeout} s:\n{self.tail()}")

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


async def demo(phases: list[tuple[str, float]], every_s: float = 10.0) -> None:
    """The proxy against the local worker; each provider's share of the requests every `every_s`, as
    fake-a fails then recovers."""
    import tempfile

    from worker.settings import get_settings

    providers = {name: FakeProvider() for name in ("fake-a", "fake-b", "fake-c")}
    for p in providers.values():
        await p.start()
    proxy = Proxy(get_settings(), readme_config(providers), Path(tempfile.mkdtemp(prefix="litellm-proxy-")))
    print(f"starting litellm --config {proxy.path} (log: {proxy.log})", flush=True)
    await proxy.start()
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{proxy.port}", api_key=MASTER_KEY, max_retries=0)
    answered, stop = Counter(), asyncio.Event()

    async def user(k: int) -> None:
        i = k
        while not stop.is_set():
            answered[await ask(client, TASKS[i % len(TASKS)])] += 1
            i += 4
            await asyncio.sleep(0.05)

    users = [asyncio.create_task(user(k)) for k in range(4)]
    began = time.monotonic()
    print(f"{'t (s)':>6}  {'phase':<28}" + "".join(f"{name:>9}" for name in providers) + "  answered", flush=True)
    try:
        for label, seconds in phases:
            providers["fake-a"].failing = label.startswith("fake-a fails")
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                before = {n: p.hits for n, p in providers.items()}
                await asyncio.sleep(every_s)
                hits = {n: p.hits - before[n] for n, p in providers.items()}
                total = sum(hits.values()) or 1
                print(
                    f"{time.monotonic() - began:6.0f}  {label:<28}"
                    + "".join(f"{hits[n] / total:>9.0%}" for n in providers)
                    + f"  {answered[True]:,} of {answered[True] + answered[False]:,}",
                    flush=True,
                )
    finally:
        stop.set()
        await asyncio.gather(*users)
        await client.close()
        if proxy.proc is not None:
            proxy.proc.send_signal(signal.SIGTERM)  # the proxy drains its callbacks: every answered call reported
            proxy.proc.wait(60)
        for p in providers.values():
            await p.stop()


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="The LiteLLM Proxy in the loop: fake-a fails, then recovers")
    p.add_argument("--healthy", type=float, default=60.0)
    p.add_argument("--failing", type=float, default=40.0)
    p.add_argument("--recovered", type=float, default=60.0)
    a = p.parse_args()
    asyncio.run(
        demo([("healthy", a.healthy), ("fake-a fails every call", a.failing), ("fake-a recovered", a.recovered)])
    )


if __name__ == "__main__":
    main()
