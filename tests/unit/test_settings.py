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
