"""Realistic gateway traffic, deterministic for a seed: the models, their profiles, their failures.

Pure: yields event dicts and keeps a ledger of what it produced, which tests and the demo
compare with the database. The Kafka side lives in worker/simulation/producer.py.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from worker.calls.events import EventKind

TASK_TYPES = ("coding", "chat", "analysis", "summarization", "extraction")


@dataclass(frozen=True)
class ModelProfile:
    model_id: str
    provider: str
    layer: str
    success: float
    latency_median_ms: float
    latency_sigma: float
    usd_per_1k_input: float
    usd_per_1k_output: float
    task_bias: dict[str, float] = field(default_factory=dict)  # success adjustment per task type
    quality: float = 0.8  # how often an answer is judged correct (the feedback's truth)


MODELS = (
    ModelProfile(
        "gpt-4o-mini",
        "openai",
        "fast",
        0.955,
        650,
        0.45,
        0.00015,
        0.0006,
        {"coding": -0.05, "analysis": -0.04},
        quality=0.74,
    ),
    ModelProfile(
        "claude-3-5-haiku", "anthropic", "fast", 0.96, 720, 0.40, 0.0008, 0.004, {"extraction": 0.02}, quality=0.78
    ),
    ModelProfile(  # answers fast, rarely fails, and is often wrong: what only feedback shows
        "llama-3.1-8b-instant",
        "groq",
        "fast",
        0.92,
        280,
        0.50,
        0.00005,
        0.00008,
        {"coding": -0.10, "analysis": -0.08},
        quality=0.45,
    ),
    ModelProfile("gpt-4o", "openai", "balanced", 0.975, 1400, 0.40, 0.0025, 0.01, {"chat": 0.01}, quality=0.86),
    ModelProfile(
        "claude-sonnet-4", "anthropic", "balanced", 0.98, 1850, 0.40, 0.003, 0.015, {"coding": 0.012}, quality=0.88
    ),
    ModelProfile("o3", "openai", "deep", 0.985, 6500, 0.50, 0.002, 0.008, {"analysis": 0.008}, quality=0.9),
    ModelProfile("claude-opus-4", "anthropic", "deep", 0.99, 7800, 0.50, 0.015, 0.075, {"coding": 0.005}, quality=0.92),
)
FEEDBACK_NAME = "correctness"

# error_type: (weight, category, http_status, retryable, message template)
FAILURES = {
    "timeout": (30, "routing", 504, True, "Request to {host} timed out after {ms}ms (request_id={rid})"),
    "rate_limit": (
        25,
        "api",
        429,
        True,
        "Rate limit reached for {model} in organization org-{hex8} on tokens per "
        "min (TPM): Limit {n}, Used {n2}, Requested {n3}. Please try again in {secs}s.",
    ),
    "context_length": (
        15,
        "context",
        400,
        False,
        "This model's maximum context length is {n} tokens. However, your messages resulted in {n2} tokens.",
    ),
    "parse": (
        15,
        "parsing",
        None,
        False,
        "Failed to parse model output as JSON: Expecting ',' delimiter: line {line} column {col} (char {n})",
    ),
    "api": (12, "api", 502, True, "Upstream returned HTTP 502 from https://{host}/v1/chat/completions (trace {trace})"),
    "auth": (
        3,
        "api",
        401,
        False,
        "Incorrect API key provided: sk-proj-****{hex4}. You can find your API key at your provider's dashboard.",
    ),
}
HOSTS = ("api.openai.com", "api.anthropic.com", "api.groq.com", "eu.gateway.internal")


@dataclass
class Degradation:
    """From event number `start` on, `model_id` fails often and slowly."""

    model_id: str
    start: int
    success: float = 0.35
    latency_factor: float = 3.0


@dataclass
class LedgerEntry:
    """What was produced for one (model, task type): the totals the database must end up with."""

    calls: int = 0
    successes: int = 0
    latency_sum_ms: float = 0.0
    cost_sum_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Ledger:
    """What the simulator produced, counted independently of the worker."""

    by_model_task: dict[tuple[str, str], LedgerEntry] = field(default_factory=dict)
    failures_by_type: dict[str, int] = field(default_factory=dict)
    # (model, task type, name) -> [feedback count, sum of the scores that count, in millionths]
    quality: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)

    def add(self, kind: EventKind, event: dict) -> None:
        t = self.by_model_task.setdefault((event["model_id"], event["task_type"]), LedgerEntry())
        t.calls += 1
        t.successes += kind is EventKind.completed
        t.latency_sum_ms += event["latency_ms"]
        t.cost_sum_usd += event["cost_usd"]
        t.input_tokens += event["input_tokens"]
        t.output_tokens += event["output_tokens"]
        if kind is EventKind.failed:
            self.failures_by_type[event["error_type"]] = self.failures_by_type.get(event["error_type"], 0) + 1

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model_task.values())

    def merge(self, other: Ledger) -> Ledger:
        """Add another run's ledger into this one (for tests that produce in several steps)."""
        for key, tally in other.by_model_task.items():
            mine = self.by_model_task.setdefault(key, LedgerEntry())
            for name in vars(tally):
                setattr(mine, name, getattr(mine, name) + getattr(tally, name))
        for error_type, count in other.failures_by_type.items():
            self.failures_by_type[error_type] = self.failures_by_type.get(error_type, 0) + count
        for judged, (n, total) in other.quality.items():
            mine_q = self.quality.setdefault(judged, [0, 0])
            mine_q[0] += n
            mine_q[1] += total
        return self

    def judged(self, call: dict, name: str, score_micro: int) -> None:
        """A call's final score for `name` (the one that counts after every replacement)."""
        q = self.quality.setdefault((call["model_id"], call["task_type"], name), [0, 0])
        q[0] += 1
        q[1] += score_micro


def judgements(
    rng: random.Random,
    call: dict,
    profile: ModelProfile,
    *,
    replace_fraction: float = 0.1,
    clock: Callable[[float], str],
) -> tuple[list[dict], int]:
    """Feedback on one answered call: a correctness score drawn from the model's quality, sometimes
    replaced by a later one (a user changing a vote). Returns the feedback in the order to send it
    (a replacement may be sent first: the later `occurred_at` must win anyway) and the final score
    in millionths. `clock(offset_s)` dates each one."""
    first = 1_000_000 if rng.random() < profile.quality else 0
    events = [
        {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "call_event_id": call["event_id"],
            "name": FEEDBACK_NAME,
            "score": first / 1_000_000,
            "source": "eval",
            "occurred_at": clock(0.0),
        }
    ]
    final = first
    if rng.random() < replace_fraction:
        final = rng.choice((0, 250_000, 500_000, 1_000_000))
        events.append(
            {
                **events[0],
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "score": final / 1_000_000,
                "occurred_at": clock(1.0),
            }
        )
        if rng.random() < 0.5:
            events.reverse()
    return events, final


def _failure(rng: random.Random, profile: ModelProfile) -> dict:
    kinds = list(FAILURES)
    error_type = rng.choices(kinds, weights=[FAILURES[k][0] for k in kinds])[0]
    _, category, status, retryable, template = FAILURES[error_type]
    message = template.format(
        host=rng.choice(HOSTS),
        ms=rng.choice((30000, 60000, 120000)),
        rid=f"req_{rng.getrandbits(64):016x}",
        model=profile.model_id,
        hex8=f"{rng.getrandbits(32):08x}",
        hex4=f"{rng.getrandbits(16):04x}",
        n=rng.randrange(8_000, 200_000),
        n2=rng.randrange(8_000, 200_000),
        n3=rng.randrange(100, 9_000),
        secs=f"{rng.uniform(0.2, 20):.3f}",
        line=rng.randrange(1, 80),
        col=rng.randrange(1, 120),
        trace=uuid.UUID(int=rng.getrandbits(128), version=4),
    )
    return {
        "error_type": error_type,
        "error_message": message,
        "category": category,
        "http_status": status,
        "retryable": retryable,
    }


def generate(
    count: int,
    *,
    seed: int = 7,
    clock: Callable[[], str],
    degrade: Degradation | None = None,
    task_types: tuple[str, ...] = TASK_TYPES,
    models: tuple[ModelProfile, ...] = MODELS,
) -> Iterator[tuple[EventKind, dict]]:
    """`count` call events; `clock()` gives each occurred_at (RFC 3339)."""
    rng = random.Random(seed)
    for number in range(count):
        profile, task = rng.choice(models), rng.choice(task_types)
        success = min(0.999, profile.success + profile.task_bias.get(task, 0.0))
        latency = rng.lognormvariate(math.log(profile.latency_median_ms), profile.latency_sigma)
        if degrade and profile.model_id == degrade.model_id and number >= degrade.start:
            success, latency = degrade.success, latency * degrade.latency_factor
        ok = rng.random() < success
        input_tokens = int(rng.lognormvariate(math.log(1200), 0.8))
        output_tokens = int(rng.lognormvariate(math.log(350), 0.7)) if ok else 0
        event = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "occurred_at": clock(),
            "request_id": f"req_{rng.getrandbits(64):016x}",
            "model_id": profile.model_id,
            "provider": profile.provider,
            "layer": profile.layer,
            "task_type": task,
            "latency_ms": round(min(latency, 86_400_000.0), 3),
            "ttft_ms": round(latency * rng.uniform(0.1, 0.4), 3),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": round(
                input_tokens / 1000 * profile.usd_per_1k_input + output_tokens / 1000 * profile.usd_per_1k_output, 8
            ),
            "schema_version": 1,
        }
        if ok:
            yield EventKind.completed, event
        else:
            event.update(_failure(rng, profile))
            event["request"] = {
                "model": profile.model_id,
                "max_tokens": 1024,
                "temperature": 0.2,
                "messages": [{"role": "user", "content": f"{task} request #{number}"}],
            }
            yield EventKind.failed, event
