"""An experiment on real Kafka and PostgreSQL, from its definition to its promotion, with a gateway
whose router obeys the published experiment: a guardrail stops the bad arm at once, the winner is
declared by the always-valid intervals, and its promotion becomes the routing rule."""

import asyncio
from collections import Counter

import aiohttp

from tests.integration.gateway import ObeyingGateway
from tests.integration.harness import wait_drained
from tests.integration.test_routing import wait_for
from tests.integration.test_tools import call
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.simulation.producer import ensure_topics

# b's lead over a takes several ticks to show (about 700 calls per arm), long after c's guardrail
# (under 100 calls): c's tagged calls are all counted before the experiment ends and tags are ignored
MODELS = {"model-a": ("fast", 0.85), "model-b": ("fast", 0.93), "model-c": ("fast", 0.30)}
DEFINITION = {
    "experimentId": "fixed-models",
    "name": "three fixed models for coding",
    "taskTypes": ["coding"],
    "arms": [
        {"name": "a", "share": 0.4, "strategy": {"kind": "model", "model": "model-a", "layer": "fast"}},
        {"name": "b", "share": 0.4, "strategy": {"kind": "model", "model": "model-b", "layer": "fast"}},
        {"name": "c", "share": 0.2, "strategy": {"kind": "model", "model": "model-c", "layer": "fast"}},
    ],
    "primaryMetric": "success_rate",
    "guardrails": [{"metric": "failure_rate", "above": 0.5}],
}


async def test_an_experiment_from_definition_to_promotion_with_a_router_that_obeys_it(settings, workers, pool):
    await ensure_topics(settings, partitions=2)
    worker = workers(tools_token="t", experiments_interval_s=1.0, heuristics_interval_s=2.0)
    await worker.wait_ready()
    port = worker.settings.web_port
    table = RoutingTable()
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    await subscriber.start()
    gateway = ObeyingGateway(settings, table, MODELS, task_types=("coding",), rate=150)
    stop = asyncio.Event()
    running = asyncio.create_task(gateway.run(stop))
    headers = {"Authorization": "Bearer t"}
    try:
        async with aiohttp.ClientSession() as http:
            status, created = await call(http, port, "create_experiment", DEFINITION, headers=headers)
            assert status == 200 and created["created"] and created["experiment"]["status"] == "running", created
            status, again = await call(http, port, "create_experiment", DEFINITION, headers=headers)
            assert status == 200 and not again["created"]  # a retried definition is the same experiment
            clash = {**DEFINITION, "experimentId": "another", "taskTypes": ["coding", "chat"]}
            status, body = await call(http, port, "create_experiment", clash, headers=headers)
            assert status == 422 and "same task types" in body["message"]

            await wait_for(lambda: "experiment:fixed-models" in table.experiments, 30, "the router to get the record")

            async def view():
                return (await call(http, port, "get_experiment", {"experimentId": "fixed-models"}, headers))[1]

            async def arm_c_stopped():
                v = await view()
                return v if v["experiment"]["arms"][2]["stopped"] else None

            stopped = await wait_for(arm_c_stopped, 90, "the guardrail to stop arm c")
            assert stopped["experiment"]["arms"][2]["stopped"].startswith("guardrail: failure_rate")
            exported = await worker.metrics()  # what TelemetryExperimentArmStopped reads
            assert exported["telemetry_experiment_arms_stopped_total|arm=c|experiment_id=fixed-models"] == 1
            await wait_for(
                lambda: table.experiments["experiment:fixed-models"].arms[2].stopped, 30, "routers to stop arm c"
            )

            async def ended():
                v = await view()
                return v if v["experiment"]["status"] != "running" else None

            done = await wait_for(ended, 180, "the experiment to end")
            exp = done["experiment"]
            assert exp["status"] == "completed" and exp["winner"] == "b", exp["reason"]
            (b_over_a,) = [c for c in done["comparisons"] if {c["arm"], c["against"]} == {"a", "b"}]
            assert b_over_a["low"] is not None and (b_over_a["better"] if b_over_a["arm"] == "b" else b_over_a["worse"])
            estimates = {e["arm"]: e for e in done["estimates"]}
            assert estimates["b"]["successRate"] > estimates["a"]["successRate"]

            # the arm its guardrail stopped is not promoted without force and a reason (it failed its calls)
            stopped = {"experimentId": "fixed-models", "arm": "c"}
            status, refused = await call(http, port, "promote_experiment", stopped, headers)
            assert status == 422 and "was stopped" in str(refused), refused
            status, refused = await call(http, port, "promote_experiment", stopped | {"force": True}, headers)
            assert status == 422 and "force needs a reason" in str(refused), refused
            # the winner, in one command, becomes the rule the router follows for the task type
            status, promoted = await call(http, port, "promote_experiment", {"experimentId": "fixed-models"}, headers)
            assert status == 200 and promoted["arm"] == "b", promoted
            (rule,) = promoted["rules"]
            assert rule["task_type"] == "coding" and rule["preferred_model"] == "model-b"
            await wait_for(
                lambda: table.experiments["experiment:fixed-models"].status == "promoted", 30, "the promoted record"
            )
            await wait_for(
                lambda: all(
                    table.route("coding", key=f"r{i}", candidates=list(MODELS)) == "model-b" for i in range(50)
                ),
                30,
                "the router to follow the promoted rule",
            )
            followed_at = asyncio.get_running_loop().time()
            status, again = await call(http, port, "promote_experiment", {"experimentId": "fixed-models"}, headers)
            assert status == 200 and again["note"] == "already promoted"
            await asyncio.sleep(1.0)  # the gateway's traffic under the promoted rule
    finally:
        stop.set()
        await running
        await subscriber.stop()
    await wait_drained(settings, pool, workers=[worker])
    # arm c was stopped while the experiment ran: every call the router tagged c is in its row, once
    counted = await pool.fetchval(
        "SELECT calls FROM experiment_arms WHERE experiment_id = 'fixed-models' AND arm = 'c'"
    )
    assert counted == gateway.tagged[("fixed-models", "c")] > 0
    after = [m for t, _, m, _ in gateway.calls if t > followed_at]  # requests routed once the router followed it
    strays = Counter((m, rule, arm) for t, m, rule, arm in gateway.routes if t > followed_at and m != "model-b")
    assert len(after) > 50 and set(after) == {"model-b"}, f"routed elsewhere after the promotion: {strays}"


async def test_a_weights_arm_gets_its_own_learned_rule_from_the_leader_and_the_router_follows_it(
    settings, workers, pool
):
    await ensure_topics(settings, partitions=1)
    worker = workers(tools_token="t", experiments_interval_s=1.0, heuristics_interval_s=2.0)
    await worker.wait_ready()
    table = RoutingTable()
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    await subscriber.start()
    models = {"model-a": ("fast", 0.9), "model-b": ("fast", 0.9)}
    gateway = ObeyingGateway(settings, table, models, task_types=("coding",), rate=100)
    stop = asyncio.Event()
    running = asyncio.create_task(gateway.run(stop))
    definition = {
        "experimentId": "latency-weights",
        "name": "more weight on latency",
        "taskTypes": ["coding"],
        "arms": [
            {"name": "learned", "share": 0.5, "strategy": {"kind": "learned"}},
            {"name": "fast", "share": 0.5, "strategy": {"kind": "weights", "weights": {"latency": 0.5}}},
        ],
    }
    try:
        async with aiohttp.ClientSession() as http:
            status, _ = await call(
                http, worker.settings.web_port, "create_experiment", definition, {"Authorization": "Bearer t"}
            )
            assert status == 200

        def own_rule():
            exp = table.experiments.get("experiment:latency-weights")
            return exp.arms[1].routes.get("coding") if exp else None

        rule = await wait_for(own_rule, 60, "the weights arm's own rule")
        assert rule.heuristic_id == "experiment:latency-weights:fast:coding" and set(rule.weights) <= set(models)
        route = next(r for i in range(200) if (r := table.pick("coding", key=f"q{i}")).arm == "fast")
        current = own_rule()  # no await since the pick: the rule it used (the leader may have moved on since `rule`)
        assert route.rule_id == f"{current.heuristic_id}@v{current.version}" and route.model in models
        await wait_for(
            lambda: (
                gateway.tagged[("latency-weights", "fast")] > 0 and gateway.tagged[("latency-weights", "learned")] > 0
            ),
            30,
            "the gateway's calls in both arms",
        )
    finally:
        stop.set()
        await running
        await subscriber.stop()
