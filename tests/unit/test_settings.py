"""Every setting is documented in the README's configuration table."""

from pathlib import Path

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
