"""Experiments' rows on a real PostgreSQL: arm sums added exactly once by the flush, and the report's
cost forecast computed from real minute rows."""

import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import uuid

import orjson
import pytest

from tests.integration.harness import settings_env
from tests.integration.test_store import GROUP, TP, call, flush
from worker.experiments.contract import Experiment, ExperimentSpec
from worker.reporting.report import build_report
from worker.store import experiments as store
from worker.store.migrate import migrate
from worker.store.offsets import UNSTORED, stored_offsets

SPEC = ExperimentSpec.model_validate(
    {
        "experimentId": "exp-store",
        "name": "n",
        "taskTypes": ["coding"],
        "arms": [
            {"name": "x", "share": 0.5, "strategy": {"kind": "learned"}},
            {"name": "y", "share": 0.5, "strategy": {"kind": "model", "model": "m-y", "layer": "fast"}},
        ],
    }
)


@pytest.fixture
async def migrated(pool):
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


def tagged(arm, event_id=None, ok=True, experiment="exp-store"):
    return call(event_id, ok=ok)._replace(experiment_id=experiment, arm=arm)


async def test_arm_sums_count_each_call_once_and_only_for_a_running_experiment(migrated):
    async with migrated.acquire() as conn:
        exp = Experiment.start(SPEC, dt.datetime.now(dt.UTC))
        assert (await store.create(conn, SPEC, exp))[1]
        assert not (await store.create(conn, SPEC, exp))[1]  # the same definition: the stored one
        with pytest.raises(ValueError, match="another definition"):
            await store.create(conn, SPEC.model_copy(update={"name": "other"}), exp)
        await stored_offsets(conn, GROUP, [TP])
        same = str(uuid.uuid4())
        first = await flush(
            conn, [tagged("x", same), tagged("x", same), tagged("y", ok=False), tagged("zz")], UNSTORED, 4
        )
        await flush(conn, [tagged("x", same), tagged("y"), tagged("x", experiment="nope")], 4, 7)  # `same` re-sent
        rows = {r["arm"]: r for r in await conn.fetch("SELECT * FROM experiment_arms ORDER BY arm")}
        assert {a: (r["calls"], r["successes"]) for a, r in rows.items()} == {"x": (1, 1), "y": (2, 1)}
        assert first.arm_calls_ignored == 1  # arm zz is not the experiment's
        assert sum(orjson.loads(rows["y"]["latency_histogram"]).values()) == 2
        tallies = (await store.tallies(conn, ["exp-store"]))["exp-store"]
        assert tallies["y"].calls == 2 and math.isclose(tallies["y"].cost_sum, 1.0)
        # once it has ended, tagged calls count everywhere but in its arms
        assert await store.save(conn, 1, exp.changed(status="completed"))
        assert not await store.save(conn, 1, exp.changed(status="stopped"))  # a stale version is refused
        ended = await flush(conn, [tagged("x")], 7, 8)
        assert ended.arm_calls_ignored == 1 and ended.counted == 1
        assert await conn.fetchval("SELECT calls FROM experiment_arms WHERE arm = 'x'") == 1


async def test_the_report_forecasts_a_seasonal_cost_and_prices_the_last_day_under_the_rules(migrated):
    async with migrated.acquire() as conn:
        now_hour = await conn.fetchval("SELECT date_trunc('hour', now())")
        hours = 5 * 7 * 24
        rows = []
        noise = random.Random(7)  # a noiseless series would be fitted exactly: a zero-width interval
        for h in range(hours, 0, -1):  # five weeks of hourly costs: weekday 2x, a daily wave
            at = now_hour - dt.timedelta(hours=h)
            base = 1.0 if at.weekday() < 5 else 0.5
            cost = base * (1.5 + math.sin(2 * math.pi * at.hour / 24)) + noise.gauss(0, 0.05)
            rows.append((at, "dear", "coding", "deep", 100, 90, 1000.0, cost, 0, 0, "{}"))
        rows.append((now_hour - dt.timedelta(hours=2), "cheap", "coding", "fast", 100, 80, 500.0, 0.1, 0, 0, "{}"))
        await conn.copy_records_to_table(
            "model_performance_minutes",
            records=rows,
            columns=[
                "minute",
                "model_id",
                "task_type",
                "layer",
                "total_calls",
                "success_count",
                "latency_sum_ms",
                "cost_sum_usd",
                "input_tokens",
                "output_tokens",
                "latency_histogram",
            ],
        )
        rule = {"heuristic_id": "learned:coding", "version": 3, "weights": {"cheap": 1.0}, "excluded": {}}
        await conn.execute(
            "INSERT INTO routing_rules (source, task_type, preferred_layer, heuristic, version) "
            "VALUES ('learned', 'coding', 'fast', $1, 3)",
            orjson.dumps(rule).decode(),
        )
        report = await build_report(conn)
    (dear,) = [f for f in report.forecasts if f.model_id == "dear"]
    assert dear.history_hours == hours and dear.next_day is not None and dear.next_day.seasonal
    truth = sum(
        (1.0 if (now_hour + dt.timedelta(hours=h)).weekday() < 5 else 0.5)
        * (1.5 + math.sin(2 * math.pi * (now_hour + dt.timedelta(hours=h)).hour / 24))
        for h in range(24)
    )
    assert dear.next_day.low < truth < dear.next_day.high, (dear.next_day, truth)
    assert dear.next_day.high - dear.next_day.low < 0.5 * truth  # and it says something (at most 19 % over 168 phases)
    assert dear.next_month is None and "720-point total" in dear.notes["next_month"]  # five weeks cannot check it
    (cheap,) = [f for f in report.forecasts if f.model_id == "cheap"]
    assert cheap.next_day is None and "needs 12" in cheap.notes["next_day"]  # two hours of history
    assert report.counterfactuals == []  # a rule never published has no calls after its publication


def test_the_cli_defines_shows_stops_and_promotes_like_the_tools(settings, tmp_path):
    env = {**os.environ, **settings_env(settings)}
    cli = [sys.executable, "-m", "worker.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)

    def run(*args, stdin=None):
        done = subprocess.run([*cli, "experiment", *args], env=env, input=stdin, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    definition = tmp_path / "experiment.json"
    definition.write_text(json.dumps(SPEC.model_dump(mode="json", by_alias=True)))
    code, out, _ = run("create", str(definition))
    assert code == 0 and '"created": true' in out
    code, _, error = run("create", "-", stdin=json.dumps({**SPEC.model_dump(by_alias=True), "arms": []}))
    assert code == 2 and "arms" in error  # refused with the field, as over HTTP
    code, out, _ = run("list", "--status", "running")
    assert code == 0 and '"exp-store"' in out
    code, out, _ = run("show", "exp-store")
    assert code == 0 and '"estimates"' in out and "mSPRT" in out
    code, _, error = run("promote", "exp-store")
    assert code == 2 and "no winner" in error
    code, out, _ = run("stop", "exp-store", "--reason", "done")
    assert code == 0 and "stopped by an operator: done" in out
    code, _, error = run("promote", "exp-store", "--arm", "y")  # not the winner (there is none): only forced
    assert code == 2 and "force" in " ".join(error.split())
    code, out, _ = run("promote", "exp-store", "--arm", "y", "--force", "the operator picks y")
    assert "forced: the operator picks y" in " ".join(out.split())
    assert code == 0 and '"preferred_model": "m-y"' in out and '"task_type": "coding"' in out


async def test_reads_answer_for_a_stored_experiment_the_statistics_cannot_use(migrated, settings):
    from worker.reporting.report import experiments as reported
    from worker.tools import requests as rq
    from worker.tools.service import ToolService

    async with migrated.acquire() as conn:
        # stored before minimumEffect was bounded: evaluating it divides by zero once both arms have calls
        exp = Experiment.start(SPEC, dt.datetime.now(dt.UTC)).model_copy(update={"minimum_effect": 1e-200})
        await store.create(conn, SPEC, exp)
        await stored_offsets(conn, GROUP, [TP])
        await flush(
            conn, [tagged("x") for _ in range(40)] + [tagged("y", ok=i % 9 != 0) for i in range(40)], UNSTORED, 80
        )
        evaluations = await reported(conn)
    assert [e.experiment.experiment_id for e in evaluations] == ["exp-store"]
    assert evaluations[0].error is not None and evaluations[0].arms == []
    service = ToolService(settings, migrated, producer=None)
    view = await service.get_experiment(rq.GetExperiment(experimentId="exp-store"))
    assert view.experiment.experiment_id == "exp-store" and view.evaluation_error == evaluations[0].error
    print("shown instead of failing:", view.evaluation_error)
