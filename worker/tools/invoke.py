"""One tool call, whatever the surface: validate, run, and turn every failure into a clear answer."""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

import asyncpg
from pydantic import BaseModel, ValidationError

from worker.tools.registry import TOOLS
from worker.tools.service import FieldProblem, TooLarge, ToolService, Unavailable

log = logging.getLogger(__name__)

UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, Unavailable)


class Outcome(NamedTuple):
    status: int
    body: dict


def error(status: int, code: str, message: str, detail: list | None = None) -> Outcome:
    return Outcome(status, {"error": code, "message": message, "detail": detail or []})


def field_errors(problem: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "reason": e["msg"]}
        for e in problem.errors(include_url=False, include_input=False)
    ]


async def invoke(service: ToolService | None, name: str, arguments: bytes | dict[str, str]) -> Outcome:
    """`arguments`: a JSON body (strict: a string is never read as a number) or query parameters (text)."""
    tool = TOOLS[name]
    model = tool.request
    try:
        if isinstance(arguments, bytes):
            request = model.model_validate_json(arguments or b"{}", strict=True)
        else:
            request = model.model_validate(arguments)
    except ValidationError as problem:
        return error(422, "invalid_request", f"{name}: the request does not validate", field_errors(problem))
    if service is None:
        return error(503, "unavailable", "the worker is still starting (waiting for PostgreSQL)")
    try:
        result = await getattr(service, name)(request)
    except FieldProblem as problem:
        return error(422, "invalid_request", str(problem), [{"field": problem.field, "reason": problem.reason}])
    except TooLarge as problem:
        return error(413, "too_large", f"{name}: {problem}; nothing was written, and a retry cannot succeed")
    except asyncpg.DataError as problem:  # a value PostgreSQL cannot take: the caller's to change, not to retry
        return error(422, "invalid_request", f"{name}: PostgreSQL refused a value of the request ({problem})")
    except asyncpg.QueryCanceledError:
        return error(
            503,
            "unavailable",
            f"{name} took longer than TOOLS_QUERY_TIMEOUT_S and was cancelled; "
            "narrow it (taskType, a smaller limit) or retry later",
        )
    except asyncpg.UndefinedTableError:
        return error(
            503,
            "unavailable",
            "the database has no schema yet: start a worker (it migrates) or run 'telemetry-worker migrate'",
        )
    except UNAVAILABLE as failure:
        log.warning("tool %s failed: %s: %s", name, type(failure).__name__, failure)
        return error(
            503,
            "unavailable",
            f"{name} could not reach PostgreSQL or Kafka ({type(failure).__name__}: "
            f"{failure}); nothing was written, retry",
        )
    body = result.model_dump(mode="json", by_alias=True) if isinstance(result, BaseModel) else result
    return Outcome(202 if tool.through_kafka else 200, body)
