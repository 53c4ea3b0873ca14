"""Every setting is documented in the README's configuration table, and bad values stop the start."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme():
    text = README.read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in text]
    assert missing == [], f"document these in README.md: {missing}"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FLUSH_MAX_EVENTS", "123")
    monkeypatch.setenv("TOPIC_DLQ", "my.dlq")
    settings = Settings()
    assert (settings.flush_max_events, settings.topic_dlq) == (123, "my.dlq")


def test_routing_weight_overrides_are_checked_at_start():
    ok = Settings(routing_weights={"chat": {"latency": 0.3, "cost_ref_usd": 0.02}})
    assert ok.routing_weights["chat"]["latency"] == 0.3
    for bad, words in (
        ({"chat": {"latncy": 0.3}}, "unknown keys ['latncy']"),
        ({"chat": {"cost": "high"}}, "must be a number"),
        ({"chat": {"cost": -1}}, "must be a number"),
    ):
        with pytest.raises(ValidationError, match=re.escape(words)):
            Settings(routing_weights=bad)


def test_the_routing_policy_and_breaker_rules_are_derived_from_their_settings():
    from dataclasses import fields, replace

    from worker.routing.degradation import Rules
    from worker.settings import Settings

    s = Settings(database_url="postgresql://x", heuristics_min_calls=7, degradation_min_calls=9, routing_max_models=42)
    assert (s.routing_policy.min_calls, s.breaker_rules.min_calls, s.routing_policy.max_models) == (7, 9, 42)
    base = Settings(database_url="postgresql://x").routing_policy
    assert s.routing_policy == replace(base, min_calls=7, max_models=42)  # nothing else moved
    assert {f.name for f in fields(Rules)} <= {n.removeprefix("degradation_") for n in Settings.model_fields}
