"""The experiment runner looks at each experiment on its own: one that cannot be evaluated is logged
and counted, and the others are still evaluated (their guardrails still stop their arms)."""

import asyncio
import contextlib
import datetime as dt
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from tests.unit.experiments.test_evaluate import spec, tally
from worker import metrics
from worker.experiments.contract import Experiment
from worker.pipeline import experiments as runner_module
from worker.pipeline.experiments import ExperimentRunner

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_a_minimum_effect_the_statistics_cannot_use_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match="minimumEffect"):
        spec(minimumEffect=1e-200)
    assert spec(minimumEffect=1e-6).minimum_effect == 1e-6


def test_one_experiment_that_fails_to_evaluate_does_not_stop_the_others(monkeypatch):
    guarded = {"guardrails": [{"metric": "failure_rate", "above": 0.2}]}
    broken = Experiment.start(spec(experiment_id="broken"), T0).model_copy(update={"minimum_effect": 1e-200})
    healthy = Experiment.start(spec(experiment_id="healthy", **guarded), T0)
    saved: list[Experiment] = []

    async def running(conn):
        return [broken, healthy]

    async def tallies(conn, ids):
        arms = {"a": tally(95, 100), "b": tally(0, 150)}  # b fails every call: its guardrail must stop it
        return {"broken": {"a": tally(95, 100), "b": tally(90, 100)}, "healthy": arms}

    async def save(conn, version, new):
        saved.append(new)
        return True

    async def db_now(conn):
        return T0.timestamp()

    async def nothing_unpublished(conn, *args):
        return []

    monkeypatch.setattr(runner_module.store, "running", running)
    monkeypatch.setattr(runner_module.store, "tallies", tallies)
    monkeypatch.setattr(runner_module.store, "save", save)
    monkeypatch.setattr(runner_module.store, "unpublished", nothing_unpublished)
    monkeypatch.setattr(runner_module.store, "ended_on_topic", nothing_unpublished)
    monkeypatch.setattr(runner_module.db, "db_now", db_now)
    notified: list = []

    async def enqueue(conn, notifications):
        notified.extend(notifications)

    monkeypatch.setattr(runner_module.notification_store, "enqueue", enqueue)
    pool = SimpleNamespace(acquire=_null_async)
    settings = SimpleNamespace(experiment_retention_s=604_800)
    before = metrics.EXPERIMENT_EVALUATION_ERRORS.labels("broken")._value.get()
    runner = ExperimentRunner(settings, pool, topic=None, lock=asyncio.Lock())  # type: ignore[arg-type]  # nothing to publish
    asyncio.run(runner.tick())
    assert [e.experiment_id for e in saved] == ["healthy"]
    assert saved[0].arm("b").stopped.startswith("guardrail: failure_rate")
    # with the new state, for the webhook: the arm stopped, and the experiment over (one arm left)
    assert [n.key for n in notified] == ["experiment_arm_stopped:healthy:b", f"experiment_{saved[0].status}:healthy"]
    assert metrics.EXPERIMENT_EVALUATION_ERRORS.labels("broken")._value.get() == before + 1


class _Conn:
    """A connection that only opens transactions: every read and write of the runner is patched."""

    @contextlib.asynccontextmanager
    async def transaction(self):
        yield


@contextlib.asynccontextmanager
async def _null_async():
    yield _Conn()
