"""The closed loop's targets, each a scenario run on a simulated clock with a router that obeys the
published rules (the same decision code the worker runs, fed the same rows the store returns)."""

import pytest

from worker.routing_eval import evaluate as ev
from worker.routing_eval.report import plot, tables
from worker.routing_eval.scenarios import OUTAGE, SCENARIOS


@pytest.fixture(scope="module")
def outcomes():
    return {}


def run(outcomes, name, comparisons=False):
    if name not in outcomes:
        outcomes[name] = ev.evaluate(name, comparisons=comparisons)
    return outcomes[name]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_target_is_met(outcomes, name):
    outcome = run(outcomes, name, comparisons=name in ("stationary", "outage"))
    assert outcome.checks, f"{name} has no checks"
    assert outcome.met, "\n".join(c.text() for c in outcome.checks)


def test_stationary_regret_beats_the_litellm_style_routers(outcomes):
    runs = run(outcomes, "stationary", comparisons=True).runs
    learned = runs["learned (this worker)"].regret_pp
    assert len(runs) == 4 and all(
        learned < r.regret_pp for name, r in runs.items() if name.startswith(("shuffle", "lowest"))
    )


def test_an_excluded_model_gets_only_probe_traffic_and_alerts_go_degraded_probing_recovered(outcomes):
    outcome = run(outcomes, "outage", comparisons=True)
    learned = outcome.runs["learned (this worker)"]
    start, end = OUTAGE
    for task in learned.scenario.rates:  # from a minute in until it ends: open most of the time, probed sometimes
        assert learned.share(task, "large", start + 60, end) <= 0.05
    kinds = [kind for _, kind, model, _ in outcome.learned.alerts if model == "large"]
    assert kinds[:3] == ["model_degraded", "model_probing", "model_degraded"]  # probes during the outage fail
    assert kinds[-1] == "model_recovered" and "model_recovered" not in kinds[:-1]  # restored once, after it ended
    restored_at = max(at for at, kind, _, _ in outcome.learned.alerts if kind == "model_recovered") - ev.EPOCH
    assert end < restored_at <= end + ev.REGAIN_WITHIN_S


def test_the_task_incident_excludes_for_that_task_type_only(outcomes):
    outcome = run(outcomes, "task-incident")
    scopes = {scope for _, kind, model, scope in outcome.learned.alerts if kind == "model_degraded"}
    assert scopes == {"coding"}


def test_the_table_and_the_plot(outcomes, tmp_path):
    outcome = run(outcomes, "outage", comparisons=True)
    regret, checks = tables({"outage": [outcome]})
    assert regret.row_count == 1 and len(regret.columns) == 5 and checks.row_count == len(outcome.checks)
    path = plot(outcome, tmp_path)
    assert path.name == "routing-outage.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
