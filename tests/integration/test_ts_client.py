"""The TypeScript client's emitter against the real worker: every event it sends is counted once,
failures and feedback included, with the secret in the message redacted before it left the gateway."""

import os
import shutil
import subprocess
from pathlib import Path

from tests.integration.harness import wait_drained
from worker.simulation.producer import ensure_topics

EMIT = Path(__file__).resolve().parents[2] / "clients" / "ts" / "test" / "fixtures" / "emit.mjs"


async def test_events_from_the_typescript_emitter_are_counted_by_the_worker(settings, workers, pool):
    await ensure_topics(settings, partitions=2)
    worker = workers()
    await worker.wait_ready()
    node = shutil.which("node")
    assert node, "node is needed for the TypeScript client's tests: apt-get install nodejs npm"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "COUNT": "500",
        "TOPIC_CALLS_COMPLETED": settings.topic_calls_completed,
        "TOPIC_CALLS_FAILED": settings.topic_calls_failed,
        "TOPIC_CALLS_FEEDBACK": settings.topic_calls_feedback,
        "KAFKAJS_NO_PARTITIONER_WARNING": "1",
    }
    done = subprocess.run([node, str(EMIT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"sent":750' in done.stdout and '"dropped":0' in done.stdout  # 500 calls, 250 feedback
    await wait_drained(settings, pool, workers=[worker])
    rows = {
        r["model_id"]: (r["total_calls"], r["success_count"])
        for r in await pool.fetch(
            "SELECT model_id, total_calls, success_count FROM model_performance WHERE task_type = 'coding'"
        )
    }
    assert rows == {"ts-model-a": (250, 250), "ts-model-b": (250, 200)}
    # ts-model-a answers at odd i (none a failure): 250 feedback, scores 1 at i % 4 == 1 (125), else 0.5 (125)
    quality = await pool.fetchrow("SELECT feedback_count, score_sum FROM model_quality WHERE model_id = 'ts-model-a'")
    assert (quality["feedback_count"], float(quality["score_sum"])) == (250, 125 * 1.0 + 125 * 0.5)
    messages = [r["pattern"] for r in await pool.fetch("SELECT pattern FROM bug_patterns")]
    assert messages and all("sk-test" not in m for m in messages)
