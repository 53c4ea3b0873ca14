"""A router obeying an experiment record: the arm from the request id, the arm's strategy, the tags."""

import datetime as dt
from collections import Counter

import orjson

from worker.experiments.contract import Experiment, ExperimentSpec, experiment_key
from worker.gateway.assignment import arm_of
from worker.gateway.table import RoutingTable

from ..gateway.test_table import learned

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def experiment(arms: list[dict], **fields) -> Experiment:
    spec = ExperimentSpec.model_validate(
        {"experimentId": "exp-1", "name": "n", "taskTypes": ["coding"], "arms": arms} | fields
    )
    return Experiment.start(spec, T0)


def table_with(exp: Experiment) -> RoutingTable:
    table = RoutingTable()
    table.apply("coding", learned().model_dump_json().encode())
    table.apply(experiment_key(exp.experiment_id), exp.model_dump_json().encode())
    return table


FIXED = {"kind": "model", "model": "m-fixed", "layer": "fast"}


def test_requests_split_by_share_and_each_request_keeps_its_arm_and_carries_it():
    exp = experiment(
        [
            {"name": "control", "share": 0.8, "strategy": {"kind": "learned"}},
            {"name": "fixed", "share": 0.2, "strategy": FIXED},
        ]
    )
    table = table_with(exp)
    routes = {f"req-{i}": table.pick("coding", key=f"req-{i}") for i in range(4000)}
    arms = Counter(r.arm for r in routes.values())
    assert abs(arms["fixed"] / 4000 - 0.2) < 0.03 and arms["control"] + arms["fixed"] == 4000
    for key, route in routes.items():
        assert route.arm == arm_of("exp-1", key, [("control", 0.8), ("fixed", 0.2)])
        assert route.event_fields()["experiment_id"] == "exp-1"
        if route.arm == "fixed":
            assert route.model == "m-fixed" and route.rule_id == "experiment:exp-1:fixed"
        else:
            assert route.model in ("a", "b") and route.rule_id == "learned:coding@v1"
        assert table.pick("coding", key=key) == route  # the same request, the same arm and model
    # another task type, or no key: outside the experiment
    assert table.pick("chat", key="req-1").arm is None
    assert table.pick("coding").arm is None and table.pick("coding").model in ("a", "b")


def test_arms_go_by_request_and_a_session_key_counts_only_for_an_experiment_stored_with_session_units():
    arms = [
        {"name": "x", "share": 0.5, "strategy": {"kind": "learned"}},
        {"name": "y", "share": 0.5, "strategy": FIXED},
    ]
    table = table_with(experiment(arms))
    # the analysis treats calls as independent: each request draws its own arm, session or not
    assert len({table.pick("coding", key=f"r{i}", unit="session-7").arm for i in range(50)}) == 2
    older = table_with(experiment(arms).model_copy(update={"unit": "session"}))  # created before the refusal
    assert len({older.pick("coding", key=f"r{i}", unit="session-7").arm for i in range(50)}) == 1


def test_a_stopped_arm_and_an_ended_experiment_route_as_usual_and_untagged():
    exp = experiment(
        [{"name": "x", "share": 0.5, "strategy": {"kind": "learned"}}, {"name": "y", "share": 0.5, "strategy": FIXED}]
    )
    table = table_with(exp)
    in_y = next(f"r{i}" for i in range(100) if table.pick("coding", key=f"r{i}").arm == "y")
    stopped = exp.changed(arms=[exp.arms[0], exp.arms[1].model_copy(update={"stopped": "guardrail"})])
    assert table.apply(experiment_key("exp-1"), stopped.model_dump_json().encode()) is not None
    route = table.pick("coding", key=in_y)
    assert route.arm is None and route.model in ("a", "b")
    assert table.apply(experiment_key("exp-1"), exp.model_dump_json().encode()) is None  # an older version is ignored
    ended = stopped.changed(status="completed", winner="x")
    table.apply(experiment_key("exp-1"), ended.model_dump_json().encode())
    assert all(table.pick("coding", key=f"r{i}").arm is None for i in range(50))


def test_a_fixed_model_the_router_cannot_reach_leaves_the_request_outside_the_experiment():
    exp = experiment(
        [{"name": "x", "share": 0.001, "strategy": {"kind": "learned"}}, {"name": "y", "share": 1, "strategy": FIXED}]
    )
    table = table_with(exp)
    route = table.pick("coding", key="r1", candidates=["a", "b"])
    assert route.arm is None and route.model in ("a", "b")


def test_a_manual_arm_sends_matching_requests_to_its_model_and_the_others_to_the_learned_rule():
    manual = {"kind": "manual", "model": "m-sql", "layer": "deep", "pattern": "(?i)sql"}
    exp = experiment(
        [{"name": "x", "share": 1e-9, "strategy": {"kind": "learned"}}, {"name": "y", "share": 1, "strategy": manual}]
    )
    table = table_with(exp)
    assert table.pick("coding", "write an SQL query", key="r1").model == "m-sql"
    other = table.pick("coding", "sort a list", key="r1")
    assert other.arm == "y" and other.model in ("a", "b")


def test_a_weights_arm_follows_its_own_rule_once_the_worker_published_it():
    weights = {"kind": "weights", "weights": {"latency": 0.5}}
    exp = experiment(
        [{"name": "x", "share": 1e-9, "strategy": {"kind": "learned"}}, {"name": "w", "share": 1, "strategy": weights}]
    )
    table = table_with(exp)
    before = table.pick("coding", key="r1")
    assert before.arm == "w" and before.rule_id == "learned:coding@v1"  # nothing computed yet: the learned rule
    own = learned(weights={"c": 1.0}).model_copy(update={"heuristic_id": "experiment:exp-1:w:coding"})
    routed = exp.changed(arms=[exp.arms[0], exp.arms[1].model_copy(update={"routes": {"coding": own}})])
    table.apply(experiment_key("exp-1"), orjson.dumps(routed.model_dump(mode="json")))
    after = table.pick("coding", key="r1")
    assert after.model == "c" and after.rule_id == "experiment:exp-1:w:coding@v1" and after.arm == "w"
