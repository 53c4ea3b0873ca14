"""Routing heuristics on real services: with a gateway that obeys the rules, the best model is
preferred, an outage excludes it within seconds, probes fail while it lasts and restore it after;
only the leader publishes; manual rules override by priority; a dangerous regex is refused."""

import asyncio
import inspect
import subprocess
import sys
import time

import orjson

from tests.integration.gateway import ObeyingGateway
from tests.integration.harness import read_topic, settings_env
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.simulation.producer import ensure_topics, simulate
from worker.simulation.traffic import Degradation, ModelProfile

MODELS = (
    ModelProfile("good-model", "acme", "balanced", 0.99, 900, 0.3, 0.001, 0.002),
    ModelProfile("ok-model", "acme", "balanced", 0.90, 900, 0.3, 0.001, 0.002),
    ModelProfile("weak-model", "acme", "fast", 0.75, 900, 0.3, 0.001, 0.002),
)
TASKS = ("coding", "chat")
FAST = {"heuristics_interval_s": 3.0, "degradation_check_s": 1.0, "degradation_cooldown_s": 600.0}
OBEYED = {
    "heuristics_interval_s": 3.0,
    "degradation_check_s": 1.0,
    "degradation_cooldown_s": 4.0,
    "degradation_cooldown_max_s": 8.0,
}


async def wait_for(predicate, timeout: float, what: str):
    """Until `predicate()` (a plain or an async callable) returns something true; that is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def alerts(settings) -> list[dict]:
    return [orjson.loads(r.value) for r in await read_topic(settings, settings.topic_alerts, timeout=5)]


async def test_a_router_that_obeys_the_rules_excludes_probes_and_restores_in_order(settings, workers):
    """The gateway routes every request by the published rules; the excluded model gets no calls,
    so it can only come back through the probes the worker publishes once the cooldown is over."""
    await ensure_topics(settings, partitions=2)
    worker = workers(**OBEYED)
    await worker.wait_ready()
    table, changes = RoutingTable(), []
    subscriber = HeuristicsSubscriber(
        settings.kafka_bootstrap_servers,
        table,
        topic=settings.topic_heuristics,
        on_change=lambda rule: changes.append((time.monotonic(), rule)),
    )
    await subscriber.start()
    models = {"good-model": ("balanced", 0.99), "ok-model": ("balanced", 0.93), "weak-model": ("fast", 0.8)}
    gateway = ObeyingGateway(settings, table, models)
    stop = asyncio.Event()
    traffic = asyncio.create_task(gateway.run(stop))
    try:
        for task in TASKS:
            await wait_for(
                lambda t=task: table.choose(t) and table.choose(t).weights.get("good-model", 0) > 0.5,
                60,
                f"a learned rule for {task} that prefers good-model",
            )
        incident = time.monotonic()
        models["good-model"] = ("balanced", 0.1)  # the outage begins
        await wait_for(lambda: all("good-model" in table.choose(t).excluded for t in TASKS), 20, "the exclusion")
        exported = await worker.metrics()  # what TelemetryModelExcluded reads: breakers held open on the leader
        assert exported.get("telemetry_models_held_back|model_id=good-model|state=open", 0) >= 1, exported
        assert exported["telemetry_routing_checked_timestamp_seconds"] > time.time() - 10
        excluded_at = min(at for at, r in changes if "good-model" in r.excluded and at >= incident)
        print(f"outage -> exclusion published: {excluded_at - incident:.2f} s")
        assert excluded_at - incident <= 10.0
        await wait_for(lambda: all("good-model" in table.choose(t).probes for t in TASKS), 30, "the first probes")
        probing_at = min(at for at, r in changes if "good-model" in r.probes and at > excluded_at)
        assert not gateway.calls_to("good-model", excluded_at + 0.5, probing_at), "an excluded model got traffic"
        await wait_for(
            lambda: len([k for k in kinds_seen(changes) if k == "excluded"]) >= 2,
            30,
            "a failed probe excluding it again",
        )
        models["good-model"] = ("balanced", 0.99)  # the outage ends
        recovered = time.monotonic()
        await wait_for(
            lambda: all(
                "good-model" not in table.choose(t).excluded
                and "good-model" not in table.choose(t).probes
                and table.choose(t).weights.get("good-model", 0) > 0
                for t in TASKS
            ),
            60,
            "the restore",
        )
        print(f"outage over -> restored: {time.monotonic() - recovered:.2f} s")
        await asyncio.sleep(3)
        assert gateway.calls_to("good-model", time.monotonic() - 3)["good-model"] > 0
        kinds = [a["kind"] for a in await alerts(settings) if a["model_id"] == "good-model"]
        assert kinds[:3] == ["model_degraded", "model_probing", "model_degraded"], kinds
        assert kinds[-1] == "model_recovered" and kinds.count("model_recovered") == 1, kinds
        versions = [rule.version for _, rule in changes if rule.task_type == "coding"]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
    finally:
        stop.set()
        await traffic
        await subscriber.stop()


def kinds_seen(changes) -> list[str]:
    """The good model's state in each published coding rule, with repeats collapsed."""
    states = []
    for _, rule in changes:
        if rule.task_type != "coding":
            continue
        state = "excluded" if "good-model" in rule.excluded else "probing" if "good-model" in rule.probes else "in"
        if not states or states[-1] != state:
            states.append(state)
    return states


async def test_only_one_worker_publishes_when_two_run(settings, workers, pool):
    await ensure_topics(settings, partitions=4)
    first, second = workers(**FAST), workers(**FAST)
    await first.wait_ready()
    await second.wait_ready()
    await asyncio.sleep(3)  # let the Faust group settle on one leader
    leaders = [(await w.readiness())[1]["leader"] for w in (first, second)]
    assert sorted(leaders) == [False, True]
    await simulate(settings, count=4000, rate=2000, seed=31, models=MODELS, task_types=TASKS, progress=False)
    await simulate(
        settings,
        count=6000,
        rate=1500,
        seed=32,
        models=MODELS,
        task_types=TASKS,
        progress=False,
        degrade=Degradation("good-model", start=0, success=0.1),
    )
    published = "SELECT count(*) FROM routing_rule_versions WHERE published_by IS NOT NULL"
    deadline = time.monotonic() + 30
    while await pool.fetchval(published) < 2 * len(TASKS) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # first versions, then the ones that exclude the degraded model
    exclusions = await pool.fetch("SELECT model_id, scope, state, reason FROM model_breakers")
    assert await pool.fetchval(published) >= 2 * len(TASKS), (exclusions, first.log_tail(30), second.log_tail(30))
    publishers = {
        r[0]
        for r in await pool.fetch(
            "SELECT DISTINCT published_by FROM routing_rule_versions WHERE published_by IS NOT NULL"
        )
    }
    assert len(publishers) == 1
    leader = first if leaders[0] else second
    assert publishers == {f"{leader.worker_host}:{leader.proc.pid}"}


async def test_manual_rules_override_by_priority_and_bad_regexes_are_refused(settings, workers):
    await ensure_topics(settings, partitions=1)
    worker = workers(**FAST)
    await worker.wait_ready()
    env = {**settings_env(settings), "PATH": ""}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", "rules", *args], env=env, capture_output=True, text=True
        )

    refused = cli("add", "--pattern", r"(\w+)\1", "--layer", "deep")
    said = " ".join(refused.stderr.split())  # the console wraps long lines
    assert refused.returncode == 2 and "not accepted by the linear-time regex engine" in said, refused.stderr
    added = cli("add", "--pattern", r"(?i)algorithm", "--layer", "deep", "--model", "deep-model", "--priority", "100")
    assert added.returncode == 0
    rule_id = orjson.loads(added.stdout[: added.stdout.rindex("}") + 1])["heuristic_id"].split(":")[1]
    assert (
        cli("add", "--pattern", "hello", "--layer", "fast", "--model", "low-model", "--priority", "-5").returncode == 0
    )

    table = RoutingTable()
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    await subscriber.start()
    try:
        await simulate(settings, count=3000, rate=3000, seed=41, models=MODELS, task_types=TASKS, progress=False)
        await wait_for(  # the learned rule settles on good-model once the evidence is in (incumbent hysteresis)
            lambda: (rule := table.choose("coding")) and rule.preferred_model == "good-model" and len(table.rules) >= 4,
            60,
            "learned and manual rules",
        )
        assert table.choose("coding", "Implement an Algorithm").preferred_model == "deep-model"
        assert table.choose("coding", "hello").preferred_model == "good-model"  # learned (0) beats -5
        assert table.choose("summarization", "hello").preferred_model == "low-model"  # nothing learned there
        assert cli("set-active", rule_id, "false").returncode == 0
        await wait_for(
            lambda: table.choose("coding", "Implement an Algorithm").preferred_model == "good-model",
            15,
            "the deactivated rule to stop matching",
        )
    finally:
        await subscriber.stop()
