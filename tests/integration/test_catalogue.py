"""The model catalogue on real services: a model declared through the CLI or the tool, never seen
in any event, is explored at once (a share of the split), and a snippet router sends it calls."""

import subprocess
import sys
import time

import pytest

from tests.integration.harness import settings_env
from tests.integration.test_routing import FAST, MODELS, TASKS, wait_for
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.simulation.producer import ensure_topics, simulate


async def test_a_declared_model_is_explored_within_seconds(settings, workers, pool):
    await ensure_topics(settings, partitions=1)
    worker = workers(**FAST)
    await worker.wait_ready()
    table = RoutingTable()
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    await subscriber.start()
    try:
        await simulate(settings, count=3000, rate=3000, seed=51, models=MODELS, task_types=TASKS, progress=False)
        await wait_for(lambda: all(table.choose(t) for t in TASKS), 30, "learned rules")
        env = {**settings_env(settings), "PATH": ""}
        cli = [sys.executable, "-m", "worker.cli", "models"]
        refused = subprocess.run(
            [*cli, "declare", "--model", "", "--layer", "deep"], env=env, capture_output=True, text=True
        )
        assert refused.returncode == 2 and "modelId" in refused.stderr  # the declare_model tool's own refusal
        declared = subprocess.run(
            [*cli, "declare", "--model", "brand-new", "--layer", "deep", "--task-type", "coding"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert declared.returncode == 0, declared.stderr
        started = time.monotonic()
        rule = await wait_for(
            lambda: (r := table.choose("coding")) and r.weights.get("brand-new", 0) > 0 and r,
            15,
            "the declared model in the coding split",
        )
        print(f"declared -> explored: {time.monotonic() - started:.2f} s, share {rule.weights['brand-new']}")
        assert rule.weights["brand-new"] <= settings.heuristics_exploration + 1e-9
        assert "brand-new" in rule.fallback_models and "exploring brand-new" in rule.reasoning
        assert "brand-new" not in table.choose("chat").weights  # declared for coding only
        listed = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True)
        assert listed.returncode == 0 and '"brand-new"' in listed.stdout and '"tool"' in listed.stdout
        picks = {table.route("coding", key=f"req-{i}") for i in range(3000)}
        assert "brand-new" in picks
        removed = subprocess.run([*cli, "remove", "--model", "brand-new"], env=env, capture_output=True, text=True)
        assert removed.returncode == 0 and await pool.fetchval("SELECT count(*) FROM model_catalogue") == 0
        await wait_for(lambda: "brand-new" not in table.choose("coding").weights, 15, "the removal")
    finally:
        await subscriber.stop()


async def test_the_catalogue_is_bounded_per_task_type_and_read_the_same_way_every_time(pool):
    from worker.store import catalogue as store
    from worker.store.migrate import migrate

    async with pool.acquire() as conn:
        await migrate(conn)
        for i in range(3):
            await store.declare_model(conn, f"m{i}", "fast", ["coding"], None, "test", max_per_task=3)
        with pytest.raises(store.CatalogueFull, match="task type 'coding' has 3 declared models"):
            await store.declare_model(conn, "m3", "fast", ["coding"], None, "test", max_per_task=3)
        await store.declare_model(conn, "m0", "deep", ["coding"], None, "test", max_per_task=3)  # a re-declaration
        await store.declare_model(conn, "m3", "fast", ["chat"], None, "test", max_per_task=3)  # another task type
        reads = [await store.catalogue(conn, 3600, max_per_task=2) for _ in range(3)]
    assert reads[0] == reads[1] == reads[2]
    assert reads[0]["coding"] == {"m0": "deep", "m2": "fast"}  # the newest two declarations, deterministically
    assert reads[0]["chat"] == {"m3": "fast"}
