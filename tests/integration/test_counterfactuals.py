"""Off-policy sums written by the real flush on PostgreSQL, exactly once, and read back as the report's
and analyze_metrics' counterfactuals: only calls logged after the rule's publication, with intervals."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from worker.calls.decode import Call, Feedback
from worker.flush import plan as flush_plan
from worker.gateway.table import choose_with_probability
from worker.reporting.report import CandidateSetting, build_report
from worker.routing.contract import RoutingHeuristic
from worker.settings import Settings
from worker.store.flush import write_flush
from worker.store.migrate import migrate
from worker.store.offsets import UNSTORED, stored_offsets
from worker.tools.analysis import analyse

README = Path(__file__).resolve().parents[2] / "README.md"
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


async def logged_world(conn) -> tuple[list[Call], list[Call], list[Feedback], float]:
    """Calls routed by `rule` (300 before its publication, 3,000 after), 40 calls after it without a
    propensity, a third of the later calls judged, a re-sent batch; the rule stored as published."""
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
    return before + after, unweighted, votes, published


async def test_the_report_estimates_the_rule_and_each_model_from_calls_after_its_publication(migrated):
    async with migrated.acquire() as conn:
        written, unweighted, votes, _ = await logged_world(conn)
        after = written[300:]
        stored = await conn.fetchrow(
            "SELECT sum(calls) AS calls, sum(unweighted) AS unweighted, sum(weight) AS weight "
            "FROM route_propensity_minutes"
        )
        assert (stored["calls"], stored["unweighted"]) == (len(written), 0)  # re-sent: once; no propensity: no row
        assert stored["weight"] == pytest.approx(sum(1 / c.route_probability for c in written))
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


def world_rate(shares: dict[str, float], of: dict[str, float]) -> float:
    return sum(share * of[model] for model, share in shares.items())


@pytest.mark.parametrize(
    ("overrides", "favoured"),
    [({"cost": 1.0, "cost_ref_usd": 0.001}, "cheap"), ({"latency": 0.03}, "strong")],
    ids=["cost-heavy weights favour the cheap model", "the default weights favour the strong one"],
)
async def test_a_candidate_weight_setting_is_learned_before_the_publication_and_estimated_after_it(
    migrated, overrides, favoured
):
    settings = Settings(database_url="postgresql://unused", routing_value_usd=0.1)
    async with migrated.acquire() as conn:
        await logged_world(conn)
        candidate = await CandidateSetting.of(conn, overrides, settings)
        report = await build_report(conn, candidate=candidate)

    (cf,) = report.counterfactuals
    c = cf.candidate
    assert c is not None and c.label == "weights " + " ".join(f"{k}={v:g}" for k, v in sorted(overrides.items()))
    assert c.learned_until == cf.since and c.split[favoured] > 0.9 and sum(c.split.values()) == pytest.approx(1.0)
    current = {"cheap": 0.7, "strong": 0.3}
    for metric, truth in (("success", SUCCESS), ("cost", COST)):
        e = getattr(c, metric)
        gain = world_rate(c.split, truth) - world_rate(current, truth)
        assert e.low < gain < e.high, (metric, gain, e)
        assert (e.high < 0) if (favoured == "cheap") else (e.low > 0)  # cheaper and worse, or dearer and better
    quality = c.quality["correctness"]
    assert quality.low < world_rate(c.split, QUALITY) - world_rate(current, QUALITY) < quality.high

    analysis = analyse(report, None, include_report=True)
    assert analysis.counterfactuals[0].candidate is not None
    assert analysis.counterfactuals[0].candidate.split == c.split
    assert (
        f"{c.label} ({favoured} " in analysis.text and "learned from the calls before the publication" in analysis.text
    )


async def test_a_candidate_with_nothing_before_the_publication_to_learn_from_says_so(migrated):
    settings = Settings(database_url="postgresql://unused")
    async with migrated.acquire() as conn:
        await logged_world(conn)
        await conn.execute("UPDATE routing_rule_versions SET published_at = now() - interval '5 days'")
        report = await build_report(conn, candidate=await CandidateSetting.of(conn, {"cost": 0.5}, settings))
    (cf,) = report.counterfactuals
    assert cf.candidate is not None and cf.candidate.split == {} and cf.candidate.success.value is None
    assert "nothing before the publication to learn it from" in cf.candidate.success.reason
    assert "weights cost=0.5 (; learned from the calls before the publication) instead: no figure: no rule" in (
        analyse(report, None, include_report=True).text
    )


async def test_the_readme_candidate_command_prints_the_candidate_against_the_published_rule(migrated, database):
    command = re.search(
        r"<!-- snippet: candidate-weights -->\n```shell\n(telemetry-worker report [^\n]*)\n```", README.read_text()
    )
    assert command, "README.md has no candidate-weights snippet"
    async with migrated.acquire() as conn:
        await logged_world(conn)
    args = shlex.split(command.group(1))[1:]
    env = {**os.environ, "DATABASE_URL": database, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # the console may wrap long lines
    overrides = args[args.index("--candidate-weights") + 1]
    label = "weights " + " ".join(sorted(overrides.split(",")))
    assert f"{label} (" in text and "learned from the calls before the publication) instead: success " in text, text
