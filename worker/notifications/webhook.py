"""Notifications as a webhook receives them: one per incident, a Slack-compatible or a generic JSON
body, an HMAC signature, and the back-off between attempts. Pure: the outbox and the sender are in
worker/store/notifications.py and worker/pipeline/notifier.py.

What goes in a body is what an on-call engineer needs and nothing a stranger could have smuggled in
as a secret: model ids, task types and error types are redacted where they are stored; pattern texts
are the redacted templates; reasons are the worker's own words.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

Format = Literal["json", "slack"]
SIGNATURE_HEADER = "X-Telemetry-Signature"
TIMESTAMP_HEADER = "X-Telemetry-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class Notification:
    key: str  # one per incident: the outbox keeps the first, so a re-run of its cause adds nothing
    kind: str  # model_degraded, model_recovered, bug_pattern_critical, bug_pattern_regressed, experiment_ended, ...
    severity: Literal["critical", "warning", "info"]
    summary: str
    at: float  # epoch seconds of what happened
    details: dict[str, str | int | float | None] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notification:
        return cls(**json.loads(text))


def body(n: Notification, fmt: Format) -> bytes:
    if fmt == "slack":
        icon = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}[n.severity]
        lines = [f"{icon} *{n.summary}*"] + [f"{k}: {v}" for k, v in sorted(n.details.items()) if v is not None]
        return json.dumps({"text": "\n".join(lines)}).encode()
    return json.dumps({"id": n.key, **asdict(n)}, sort_keys=True).encode()


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over "<timestamp>.<body>": the receiver recomputes it, and refuses
    an old timestamp to stop replays."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def headers(n: Notification, payload: bytes, secret: str | None, now: float) -> dict[str, str]:
    out = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: n.key}
    if secret:
        timestamp = int(now)
        out |= {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, payload)}
    return out


def backoff_s(attempts: int) -> float:
    """After the n-th failed attempt: 2, 4, 8 ... seconds, at most MAX_BACKOFF_S, so a receiver down for
    minutes gets a try every few minutes and everything once it is back."""
    return min(MAX_BACKOFF_S, 2.0 ** max(1, attempts))


def model_breaker(
    kind: str, model_id: str, task_type: str | None, reason: str, incident_at: float, at: float
) -> Notification:
    where = f" for {task_type}" if task_type else " for every task type"
    degraded = kind == "model_degraded"
    return Notification(
        key=f"{kind}:{model_id}:{task_type or '*'}:{int(incident_at)}",
        kind=kind,
        severity="warning" if degraded else "info",
        summary=f"Model {model_id} {'excluded from routing' if degraded else 'restored to routing'}{where}",
        at=at,
        details={"model_id": model_id, "task_type": task_type, "reason": reason},
    )


def bug_pattern(
    kind: str, fingerprint: str, pattern: str, severity: str, reason: str, at: float, seq: int
) -> Notification:
    critical = kind == "bug_pattern_critical"
    return Notification(
        key=f"{kind}:{fingerprint}" + ("" if critical else f":{seq}"),
        kind=kind,
        severity="critical" if critical or severity == "critical" else "warning",
        summary=f"Bug pattern {'became critical' if critical else 'regressed'}: {pattern[:200]}",
        at=at,
        details={"fingerprint": fingerprint, "severity": severity, "reason": reason},
    )


def experiment(kind: str, experiment_id: str, what: str, at: float, arm: str | None = None) -> Notification:
    return Notification(
        key=f"{kind}:{experiment_id}" + (f":{arm}" if arm else ""),
        kind=kind,
        severity="warning" if kind == "experiment_arm_stopped" else "info",
        summary=f"Experiment {experiment_id}: {what}"[:300],
        at=at,
        details={"experiment_id": experiment_id, "arm": arm},
    )
