"""The gateway's own distribution (clients/python) as a gateway team installs it: built into a wheel,
installed into a fresh virtualenv without the worker, and used against the real Kafka."""

import subprocess
import sys
import textwrap
import uuid
import venv
import zipfile
from pathlib import Path

import orjson

from tests.integration.harness import read_topic

ROOT = Path(__file__).resolve().parents[2]
WORKER_ONLY = ("faust", "asyncpg", "mcp", "uvicorn", "numpy", "prometheus_client", "rich")


def _wheel(tmp_path: Path) -> Path:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT / "clients/python")],
        check=True,
        timeout=600,
    )
    return next(out.glob("gateway_telemetry_client-*.whl"))


def test_the_wheel_holds_every_module_the_gateway_side_imports(tmp_path):
    shipped = {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in zipfile.ZipFile(_wheel(tmp_path)).namelist()
        if name.startswith("worker/") and name.endswith(".py")
    }
    probe = "import sys, worker.gateway.emitter, worker.gateway.router, worker.gateway.litellm, worker.gateway.litellm_proxy; "
    probe += "print(' '.join(m for m in sys.modules if m == 'worker' or m.startswith('worker.')))"
    imported = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "/usr/bin:/bin"},
        timeout=120,
    ).stdout.split()
    assert set(imported) <= shipped, f"modules the gateway side imports but the wheel lacks: {set(imported) - shipped}"


async def test_a_fresh_virtualenv_with_the_client_alone_reports_a_call_to_kafka(tmp_path, settings):
    wheel = _wheel(tmp_path)
    env_dir = tmp_path / "gateway-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600)
    topic = f"client-{uuid.uuid4().hex[:8]}"
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent(
        f"""
        import asyncio, importlib.util
        from worker.gateway.emitter import CallEmitter, completed
        from worker.gateway.router import HeuristicsSubscriber, RoutingTable

        left_out = [m for m in {WORKER_ONLY!r} if importlib.util.find_spec(m) is not None]
        assert not left_out, f"the client pulled in the worker's dependencies: {{left_out}}"

        async def main():
            emitter = CallEmitter({settings.kafka_bootstrap_servers!r}, topic_completed={topic!r})
            await emitter.start()
            route = RoutingTable().pick("coding", "hi", key={request_id!r}, candidates=["gpt-4o"])
            emitter.emit(completed(model_id=route.model or "gpt-4o", layer="fast", task_type="coding",
                                   latency_ms=12.5, request_id={request_id!r}, **route.event_fields()))
            await emitter.stop()
            print(emitter.stats.sent, emitter.stats.dropped)

        asyncio.run(main())
        """
    )
    run = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "0"]
    values = [orjson.loads(r.value) for r in await read_topic(settings, topic)]
    assert [(v["request_id"], v["model_id"], v["layer"]) for v in values] == [(request_id, "gpt-4o", "fast")]
