"""Log output: readable lines on a terminal, one JSON object per line anywhere else (collectors parse it).

Records carry counts in `extra` fields (events, flushes, dead letters), never event payloads.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.config
import sys

import orjson

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


def config(level: str, json_lines: bool | None = None) -> dict:
    """A logging.config dict (also handed to Faust's worker, which would otherwise install its own)."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    formatter = ({"()": JsonFormatter} if json_lines
                 else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "default"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def configure(level: str) -> None:
    logging.config.dictConfig(config(level))
