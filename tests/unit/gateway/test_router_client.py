"""The Python router's table: latest version per rule, manual rules by priority, learned by task type."""

import orjson

from worker.gateway.router import RoutingTable


def record(heuristic_id, version, *, task_type=None, pattern=None, model="m", priority=0, active=True, layer="fast"):
    return orjson.dumps(
        {
            "schema_version": 1,
            "heuristic_id": heuristic_id,
            "task_type": task_type,
            "pattern": pattern,
            "preferred_layer": layer,
            "preferred_model": model,
            "fallback_models": [],
            "weights": {model: 1.0},
            "priority": priority,
            "active": active,
            "version": version,
            "computed_at": "2026-11-24T10:00:00Z",
            "window_s": 3600 if pattern is None else None,
            "evidence": {},
            "excluded": {},
            "reasoning": "r",
        }
    )


def test_higher_versions_replace_and_stale_ones_are_ignored():
    table = RoutingTable()
    assert table.apply("coding", record("learned:coding", 2, task_type="coding", model="a")) is not None
    assert table.apply("coding", record("learned:coding", 1, task_type="coding", model="old")) is None
    assert table.choose("coding").preferred_model == "a"
    table.apply("coding", None)  # tombstone
    assert table.choose("coding") is None


def test_manual_rules_win_by_priority_and_only_when_they_match():
    table = RoutingTable()
    table.apply("coding", record("learned:coding", 1, task_type="coding", model="learned-model"))
    table.apply(
        "rule:1", record("manual:1", 1, pattern=r"(?i)algorithm", model="deep-model", priority=100, layer="deep")
    )
    table.apply("rule:2", record("manual:2", 1, pattern=r"hello", model="low", priority=-5))
    table.apply("rule:3", record("manual:3", 1, pattern=r".*", model="off", priority=1000, active=False))
    assert table.choose("coding", "Implement an ALGORITHM").preferred_model == "deep-model"
    assert table.choose("coding", "hello there").preferred_model == "learned-model"  # -5 < 0
    assert table.choose("chat", "hello there").preferred_model == "low"  # no learned rule for chat
    assert table.choose("chat", "nothing matches") is None


def test_any_record_on_the_topic_is_survived_skipped_and_counted():
    table = RoutingTable()
    for key, value in (
        ("coding", b'{"version": 1}'),  # the 14-byte record that used to stop every new subscriber
        ("coding", b"\xff not json"),
        ("experiment:x", b'{"kind": "experiment"}'),
        ("coding", b"[]"),
    ):
        assert table.apply(key, value) is None
    assert table.refused == 4 and "coding" in table.last_refusal
    assert table.apply("coding", record("learned:coding", 12, task_type="coding")) is not None
    forged = record("learned:coding", 2**63 - 1, task_type="coding", model="attacker")
    assert table.apply("coding", forged) is None and table.refused == 5  # cannot push the key out of reach
    assert "jumps" in table.last_refusal
    assert table.apply("coding", record("learned:coding", 13, task_type="coding")) is not None
    assert table.route("coding", key="r") == "m"
