import logging

import orjson

from worker.logs import JsonFormatter, config


def test_json_lines_carry_counts_as_fields():
    record = logging.makeLogRecord(
        {
            "name": "worker.app",
            "levelname": "INFO",
            "msg": "ingest progress: %d messages",
            "args": (12,),
            "stats": {"messages": 12, "counted": 11},
        }
    )
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["message"] == "ingest progress: 12 messages" and entry["stats"] == {"messages": 12, "counted": 11}
    assert entry["level"] == "info" and entry["logger"] == "worker.app" and entry["ts"].endswith("+00:00")


def test_a_terminal_gets_lines_for_people():
    assert "format" in config("info", json_lines=False)["formatters"]["default"]
    assert config("debug", json_lines=True)["formatters"]["default"] == {"()": JsonFormatter}


def test_an_outage_writes_a_few_lines_with_the_count_held_back_not_thousands():
    from worker.logs import RepeatedLines

    lines = RepeatedLines(burst=5, window_s=3600.0)
    records = [
        logging.makeLogRecord(
            {
                "name": "aiokafka",
                "levelno": logging.ERROR,
                "levelname": "ERROR",
                "msg": "Unable connect to node with id %s: %s",
                "args": (1, "refused"),
            }
        )
        for _ in range(4300)
    ]
    passed = [r for r in records if lines.filter(r)]
    assert len(passed) == 5
    info = logging.makeLogRecord({"name": "worker", "levelno": logging.INFO, "msg": "ingest progress"})
    assert all(lines.filter(info) for _ in range(100))  # progress lines are periodic already
    lines.repeats.window_s = 0.0  # the next window: the count of what was held back comes with the next line
    record = logging.makeLogRecord(
        {
            "name": "aiokafka",
            "levelno": logging.ERROR,
            "levelname": "ERROR",
            "msg": "Unable connect to node with id %s: %s",
            "args": (1, "refused"),
        }
    )
    assert lines.filter(record) and record.suppressed == 4295 and "4295 similar lines held back" in record.getMessage()
