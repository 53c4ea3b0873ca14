"""Log output: readable lines on a terminal, one JSON object per line anywhere else (collectors parse it).

Records carry counts in `extra` fields (events, flushes, dead letters), never event payloads.
Warnings and errors are rate limited per message template (`RepeatedLines`): an outage writes a few
lines every 10 s with the number held back, not thousands (the worker's and its libraries' alike).
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.config
import sys

import orjson

from worker.throttle import Repeats

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class RepeatedLines(logging.Filter):
    """At most 5 warnings or errors of one template per 10 s; the next one says how many were held back."""

    def __init__(self, name: str = "", burst: int = 5, window_s: float = 10.0):
        super().__init__(name)
        self.repeats = Repeats(burst, window_s)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        held = self.repeats.allow((record.name, record.levelno, str(record.msg)))
        if held is None:
            from worker import metrics  # here, not at import: the logging setup must not need the metrics

            metrics.LOG_SUPPRESSED.inc()
            return False
        if held:
            record.suppressed = held
            record.msg = f"{record.msg} ({held} similar lines held back)"
        return True


def config(level: str, json_lines: bool | None = None) -> dict:
    """A logging.config dict (also handed to Faust's worker, which would otherwise install its own)."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    formatter = {"()": JsonFormatter} if json_lines else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"repeats": {"()": RepeatedLines}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["repeats"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def configure(level: str) -> None:
    logging.config.dictConfig(config(level))
