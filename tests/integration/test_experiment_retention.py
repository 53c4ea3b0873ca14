"""An ended experiment leaves the routers: after EXPERIMENT_RETENTION_S the worker writes a signed
tombstone for it on the compacted topic, so a router started later never holds it, while the tools
still read it from PostgreSQL."""

import aiohttp

from tests.integration.test_routing import wait_for
from tests.integration.test_tools import call
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.routing.signing import generate

TOKEN = "retention-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
DEFINITION = {
    "experimentId": "short-lived",
    "name": "ended at once",
    "taskTypes": ["chat"],
    "arms": [
        {"name": "a", "share": 0.5, "strategy": {"kind": "learned"}},
        {"name": "b", "share": 0.5, "strategy": {"kind": "model", "model": "m-b", "layer": "fast"}},
    ],
}


async def test_an_ended_experiment_is_tombstoned_after_the_retention_and_still_read_by_the_tools(settings, workers):
    private, public = generate()
    worker = workers(
        tools_token=TOKEN, experiments_interval_s=1.0, experiment_retention_s=2, routing_signing_key=private
    )
    await worker.wait_ready()
    port = worker.settings.web_port
    table = RoutingTable(public_keys=[public])
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    await subscriber.start()
    try:
        async with aiohttp.ClientSession() as http:
            status, body = await call(http, port, "create_experiment", DEFINITION, HEADERS)
            assert status == 200, body
            await wait_for(lambda: table.experiment_for("chat") is not None, 30, "the experiment on the topic")
            status, body = await call(http, port, "stop_experiment", {"experimentId": "short-lived"}, HEADERS)
            assert status == 200, body
            await wait_for(lambda: "experiment:short-lived" not in table.experiments, 60, "its tombstone")
            assert table.refused == 0  # the tombstone is signed like every record
            later = RoutingTable(public_keys=[public])
            fresh = HeuristicsSubscriber(settings.kafka_bootstrap_servers, later, topic=settings.topic_heuristics)
            await fresh.start()
            await wait_for(fresh.caught_up.is_set, 30, "a later router to catch up")
            await fresh.stop()
            assert not later.experiments and not later.running
            status, body = await call(http, port, "get_experiment", {"experimentId": "short-lived"}, HEADERS)
            assert status == 200 and body["experiment"]["status"] == "stopped", body
    finally:
        await subscriber.stop()
    assert worker.terminate() == 0
