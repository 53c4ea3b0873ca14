"""What a router does with the rules: the rule for a request, then the model, deterministically per key."""

import datetime as dt

import orjson
import pytest

from worker.gateway.table import RoutingTable, choose_model, hash_unit
from worker.routing.contract import RoutingHeuristic

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def learned(task="coding", weights=None, excluded=None, version=1, **extra) -> RoutingHeuristic:
    weights = weights if weights is not None else {"a": 0.7, "b": 0.3}
    return RoutingHeuristic(
        heuristic_id=f"learned:{task}",
        task_type=task,
        pattern=None,
        preferred_layer="balanced",
        preferred_model=max(weights, key=weights.get) if weights else None,
        fallback_models=extra.pop("fallback_models", []),
        weights=weights,
        priority=0,
        active=True,
        version=version,
        computed_at=NOW,
        window_s=3600,
        excluded=excluded or {},
        reasoning="r",
        **extra,
    )


def test_the_draw_walks_the_cumulative_weights_of_the_models_sorted_by_id():
    rule = learned(weights={"b": 0.3, "a": 0.7})
    assert choose_model(rule, 0.0) == "a" and choose_model(rule, 0.69) == "a" and choose_model(rule, 0.71) == "b"


def test_the_hash_unit_is_stable_and_uniform_enough():
    assert hash_unit("req-1") == hash_unit("req-1") and 0 <= hash_unit("req-1") < 1
    draws = [hash_unit(f"req-{i}") for i in range(4000)]
    assert 0.45 < sum(d < 0.5 for d in draws) / len(draws) < 0.55
    assert hash_unit("") == int.from_bytes(bytes.fromhex("e3b0c44298fc1c14"), "big") / 2**64  # SHA-256 of ""


def test_excluded_models_never_get_traffic_and_fallbacks_are_used_when_nothing_is_left():
    rule = learned(weights={"a": 1.0}, excluded={"a": "down"}, fallback_models=["a", "c"])
    assert all(choose_model(rule, u / 10) == "c" for u in range(10))
    assert choose_model(learned(weights={"a": 1.0}, excluded={"a": "down"}), 0.5) is None


def test_candidates_limit_the_choice_and_unmentioned_ones_are_explored_by_the_router():
    rule = learned(weights={"a": 0.5, "b": 0.5})
    assert {choose_model(rule, u / 100, ["b"]) for u in range(100)} == {"b"}
    picks = [choose_model(rule, u / 1000, ["a", "b", "fresh"]) for u in range(1000)]
    assert 5 <= picks.count("fresh") <= 15  # 1 %: the router's own exploration of a model the rule lacks
    assert choose_model(learned(weights={}), 0.3, ["x", "y"]) in {"x", "y"}


def test_the_table_keeps_the_highest_version_and_routes_by_key():
    table = RoutingTable()
    assert table.apply("coding", orjson.dumps(learned(version=2).model_dump(mode="json"))) is not None
    assert table.apply("coding", orjson.dumps(learned(version=1, weights={"z": 1}).model_dump(mode="json"))) is None
    first = table.route("coding", key="request-42")
    assert first in {"a", "b"} and all(table.route("coding", key="request-42") == first for _ in range(5))
    assert table.route("chat") is None
    table.apply("coding", None)
    assert table.route("coding", key="request-42") is None


@pytest.mark.parametrize("share", [0.05])
def test_a_probe_share_in_weights_reaches_a_half_open_model(share):
    rule = learned(weights={"a": 1 - share, "probed": share}, probes={"probed": share})
    picks = [choose_model(rule, u / 1000) for u in range(1000)]
    assert picks.count("probed") == 50


def test_each_route_carries_the_probability_its_model_was_drawn_with():
    from collections import Counter

    from worker.gateway.table import choose_with_probability

    rule = learned(task="coding", weights={"a": 0.7, "b": 0.3}, excluded={"x": "down"})
    draws = [choose_with_probability(rule, i / 10_000, ["a", "b", "c", "x"]) for i in range(10_000)]
    seen = Counter(model for model, _ in draws)
    stated = dict(draws)
    assert set(stated) == {"a", "b", "c"} and abs(sum(stated.values()) - 1) < 1e-9
    for model, probability in stated.items():  # the stated propensity is the draw's real frequency
        assert abs(seen[model] / 10_000 - probability) < 1e-3
    assert stated["c"] == 0.01  # an unmentioned candidate: the exploration share
    table = RoutingTable()
    table.apply("coding", rule.model_dump_json().encode())
    route = table.pick("coding", key="req-1", candidates=["a", "b"])
    assert route.event_fields()["route_probability"] == route.probability == {"a": 0.7, "b": 0.3}[route.model]
