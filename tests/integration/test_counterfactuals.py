"""Off-policy sums written by the real flush on PostgreSQL, exactly once, and read back as the report's
and analyze_metrics' counterfactuals: only calls logged after the rule's publication, with intervals."""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid

import orjson
import pytest

from worker.calls import flush_plan
from worker.calls.decode import Call, Feedback
from worker.reporting.report import build_report
from worker.routing.contract import RoutingHeuristic
from worker.routing.table import choose_with_probability
from worker.store.flush import write_flush
from worker.store.migrate import migrate
from worker.store.offsets import UNSTORED, stored_offsets
from worker.tools.analysis import analyse

GROUP, TP = "g", ("calls", 0)
SUCCESS = {"cheap": 0.80, "strong": 0.95}
COST = {"cheap": 0.001, "strong": 0.010}
QUALITY = {"cheap": 0.6, "strong": 0.9}  # the chance a judge scores the answer 1 (else 0)


@pytest.fixture
async def migrated(pool):
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


def rule(version: int) -> RoutingHeuristic:
    return RoutingHeuristic.model_validate(
        {
            "heuristic_id": "learned:coding",
            "task_type": "coding",
            "pattern": None,
            "preferred_layer": "fast",
            "preferred_model": "cheap",
            "weights": {"cheap": 0.7, "strong": 0.3},
            "priority": 0,
            "active": True,
            "version": version,
            "computed_at": dt.datetime.now(dt.UTC),
            "window_s": 3600,
            "reasoning": "test",
        }
    )


def routed_calls(n: int, at: float, rng: random.Random, *, with_probability: bool = True) -> list[Call]:
    """Calls a router following `rule` made: each model drawn by the real draw, its propensity logged."""
    out = []
    for i in range(n):
        model, p = choose_with_probability(rule(1), rng.random())
        assert model is not None
        ok = rng.random() < SUCCESS[model]
        out.append(
            Call(
                str(uuid.uuid4()), at + i * 0.01, model, "coding", "fast", ok, 100.0, COST[model], 10, 2,
                routing_rule_id="learned:coding@v1", route_probability=p if with_probability else None,
            )
        )  # fmt: skip
    return out


async def test_the_report_estimates_the_rule_and_each_model_from_calls_after_its_publication(migrated):
    now = time.time()
    published = now - 600
    rng = random.Random(5)
    before = routed_calls(300, published - 1200, rng)  # logged before the rule went out: never used
    after = routed_calls(3000, published + 60, rng)
    unweighted = routed_calls(40, published + 120, rng, with_probability=False)
    votes = [  # a third of the calls judged, whatever their model
        Feedback(str(uuid.uuid4()), c.event_id, None, "correctness", "judge",
                 1_000_000 * (rng.random() < QUALITY[c.model_id]), c.occurred_at + 5)
        for c in after[::3]
    ]  # fmt: skip
    batches = [before, after[:1500], after[1500:] + unweighted + votes, after[:200]]  # the last: re-sent events
    async with migrated.acquire() as conn:
        offset = (await stored_offsets(conn, GROUP, [TP]))[TP]
        assert offset == UNSTORED
        for i, batch in enumerate(batches):
            await write_flush(
                conn,
                flush_plan.plan(batch, now=now),
                group=GROUP,
                expected={TP: offset},
                next_offsets={TP: i * 10_000},
                dead_letters=0,
            )
            offset = i * 10_000
        stored = await conn.fetchrow(
            "SELECT sum(calls) AS calls, sum(unweighted) AS unweighted, sum(weight) AS weight "
            "FROM route_propensity_minutes"
        )
        written = before + after
        assert (stored["calls"], stored["unweighted"]) == (len(written), 0)  # re-sent: once; no propensity: no row
        assert stored["weight"] == pytest.approx(sum(1 / c.route_probability for c in written))

        rule_id = await conn.fetchval(
            "INSERT INTO routing_rules (source, task_type, preferred_layer, heuristic, version, published_version) "
            "VALUES ('learned', 'coding', 'fast', $1, 1, 1) RETURNING id",
            rule(1).model_dump_json(),
        )
        await conn.execute(
            "INSERT INTO routing_rule_versions (rule_id, version, heuristic, published_at) "
            "VALUES ($1, 1, $2, to_timestamp($3))",
            rule_id,
            orjson.dumps(rule(1).model_dump(mode="json")).decode(),
            published,
        )
        report = await build_report(conn)

    (cf,) = report.counterfactuals
    assert (cf.task_type, cf.rule) == ("coding", "learned:coding@v1")
    assert (cf.calls, cf.unweighted) == (len(after), len(unweighted))  # the 300 before its publication left out
    truth = 0.7 * SUCCESS["cheap"] + 0.3 * SUCCESS["strong"]
    assert cf.success.low < truth < cf.success.high and cf.success.high - cf.success.low < 0.05
    assert cf.cost.low < 0.7 * COST["cheap"] + 0.3 * COST["strong"] < cf.cost.high
    quality = 0.7 * QUALITY["cheap"] + 0.3 * QUALITY["strong"]
    assert cf.quality["correctness"].low < quality < cf.quality["correctness"].high
    assert cf.quality["correctness"].calls == len(votes)
    by_model = {a.model_id: a for a in cf.alternatives}
    strong_quality = by_model["strong"].quality["correctness"]
    assert 0 < strong_quality.low < QUALITY["strong"] - quality < strong_quality.high
    assert by_model["strong"].success.low > 0 and by_model["cheap"].success.high < 0  # which is better, and by how much
    assert by_model["strong"].success.low < SUCCESS["strong"] - truth < by_model["strong"].success.high
    assert by_model["cheap"].cost.high < 0 < by_model["strong"].cost.low

    analysis = analyse(report, None, include_report=True)
    assert analysis.counterfactuals[0].alternatives[0].model_id == "cheap"
    assert "inverse-propensity" in analysis.counterfactual_assumptions
    assert "all to strong instead: success +" in analysis.text and ", correctness +0." in analysis.text
    assert analysis.counterfactuals[0].quality["correctness"].calls == len(votes)
    assert "learned:coding@v1 since" in analysis.text and "3,000 calls with a propensity, 40 without" in analysis.text
