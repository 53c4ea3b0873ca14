"""Sends the notification outbox to ALERT_WEBHOOK_URL, from the group leader only (a Faust timer with
on_leader), so a fleet of pods sends each notification once.

Each row is locked while it is sent (FOR UPDATE SKIP LOCKED: a second leader during a rebalance skips
it) and marked sent in the same transaction; a pod killed mid-send leaves the row unsent, and the next
leader sends it again with the same Idempotency-Key, by which the receiver recognises it. A receiver
that fails (5xx, 408, 429, no answer) is left alone for a back-off that grows with its consecutive
failures, up to 5 minutes; nothing is dropped meanwhile. One that refuses a body (another 4xx) will
refuse it again: that row is given up, logged and counted, and the others go on.
"""

from __future__ import annotations

import logging
import time

import aiohttp
import asyncpg

from worker import metrics
from worker.notifications import webhook
from worker.settings import Settings
from worker.store import notifications as store

log = logging.getLogger(__name__)

BATCH = 50
KEEP_SENT_S = 7 * 86_400.0
RETRYABLE = {408, 429}


class Notifier:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings, self.pool = settings, pool
        self.session: aiohttp.ClientSession | None = None
        self.failures = 0  # consecutive failures of the receiver
        self.resume_at = 0.0  # monotonic: no attempt before this

    async def tick(self) -> int:
        """Send what is due; returns how many were sent."""
        s = self.settings
        async with self.pool.acquire() as conn:
            if not s.alert_webhook_url:
                dropped = await store.discard(conn)
                metrics.NOTIFICATIONS.labels("discarded").inc(dropped)
                return 0
            await store.prune(conn, KEEP_SENT_S)
            metrics.NOTIFICATIONS_WAITING.set(await store.waiting(conn))
            if time.monotonic() < self.resume_at:
                return 0
            budget = min(BATCH, s.alert_webhook_max_per_minute - await store.sent_lately(conn))
            if budget <= 0:
                return 0
            sent = 0
            async with conn.transaction():
                for row in await store.due(conn, budget):
                    n = webhook.Notification.from_json(row["notification"])
                    outcome, detail = await self._post(n)
                    if outcome == "sent":
                        await store.sent(conn, row["id"])
                        sent += 1
                        self.failures = 0
                    elif outcome == "rejected":
                        await store.sent(conn, row["id"])  # it would be refused again: given up, and said so
                        log.error("notification %s refused by the webhook receiver: %s", n.key, detail)
                    else:
                        self.failures += 1
                        wait = webhook.backoff_s(self.failures)
                        self.resume_at = time.monotonic() + wait
                        await store.failed(conn, row["id"], wait, detail)
                        log.warning(
                            "webhook receiver failed (%s); %d notification(s) wait, next try in %.0f s",
                            detail,
                            await store.waiting(conn),
                            wait,
                        )
                    metrics.NOTIFICATIONS.labels(outcome).inc()
                    if outcome == "failed":
                        break
            return sent

    async def _post(self, n: webhook.Notification) -> tuple[str, str]:
        s = self.settings
        assert s.alert_webhook_url is not None
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=s.alert_webhook_timeout_s))
        payload = webhook.body(n, s.alert_webhook_format)
        secret = s.alert_webhook_secret.get_secret_value() if s.alert_webhook_secret else None
        try:
            async with self.session.post(
                s.alert_webhook_url, data=payload, headers=webhook.headers(n, payload, secret, time.time())
            ) as response:
                if 200 <= response.status < 300:
                    return "sent", ""
                text = (await response.text())[:200]
                if response.status >= 500 or response.status in RETRYABLE:
                    return "failed", f"HTTP {response.status}: {text}"
                return "rejected", f"HTTP {response.status}: {text}"
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return "failed", f"{type(error).__name__}: {error}"

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
