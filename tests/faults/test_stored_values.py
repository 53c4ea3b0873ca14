"""Reads never crash on a stored value: rows written before the event-time window existed (or by
hand) with times past year 9999, which Python cannot represent, are read back clamped."""

from __future__ import annotations

import subprocess
import sys

import aiohttp

from tests.integration.harness import settings_env
from worker.simulation.producer import ensure_topics

FAR = "'10000-03-01T00:00:00Z'::timestamptz"


async def test_a_time_past_year_9999_in_the_tables_breaks_no_read(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers()
    await worker.wait_ready()
    await pool.execute(f"""
        INSERT INTO model_performance (model_id, task_type, total_calls, success_count, first_seen, last_seen)
        VALUES ('poisoned-model', 'coding', 1, 1, {FAR}, {FAR});
        INSERT INTO bug_patterns (category, pattern, description, solution, occurrences, severity, fingerprint,
                                  first_seen, last_seen)
        VALUES ('routing', 'timeout', 'd', 's', 1, 'low', 'f' || repeat('0', 15), {FAR}, {FAR});
        INSERT INTO performance_metrics (metric_name, metric_value, metric_unit, recorded_at)
        VALUES ('api_latency', 1, 'ms', {FAR})""")
    base = f"http://127.0.0.1:{worker.settings.web_port}/tools"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/analyze_metrics", json={"taskType": "coding"}) as r:
            body = await r.json()
            assert r.status == 200, body
            assert body["rankings"]["coding"][0]["modelId"] == "poisoned-model"
        async with http.get(f"{base}/get_bug_patterns") as r:
            body = await r.json()
            assert r.status == 200 and body["items"][0]["last_seen"].startswith("9999-12-31"), body
    env = {**settings_env(settings), "PATH": ""}
    for command in (["report"], ["report", "--json"], ["status"]):
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", *command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stderr[-2000:])
        if command[0] == "report":
            assert "poisoned-model" in done.stdout
