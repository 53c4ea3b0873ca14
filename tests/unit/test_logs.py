import logging

import orjson

from worker.logs import JsonFormatter, config


def test_json_lines_carry_counts_as_fields():
    record = logging.makeLogRecord({"name": "worker.app", "levelname": "INFO", "msg": "ingest progress: %d messages",
                                    "args": (12,), "stats": {"messages": 12, "counted": 11}})
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["message"] == "ingest progress: 12 messages" and entry["stats"] == {"messages": 12, "counted": 11}
    assert entry["level"] == "info" and entry["logger"] == "worker.app" and entry["ts"].endswith("+00:00")


def test_a_terminal_gets_lines_for_people():
    assert "format" in config("info", json_lines=False)["formatters"]["default"]
    assert config("debug", json_lines=True)["formatters"]["default"] == {"()": JsonFormatter}
