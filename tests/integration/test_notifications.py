"""Webhook notifications from a fleet: three worker pods, a local receiver. Bug patterns turn critical
(and their models are excluded) while the receiver is down; nothing is lost, every notification
arrives signed, and one per incident (by its Idempotency-Key), also when the leader is killed with
SIGKILL in the middle of a send."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import os
import time
import uuid
from pathlib import Path

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from tests import samples
from tests.integration.harness import serve_on_loopback
from tests.integration.test_routing import wait_for
from worker.simulation.producer import ensure_topics

SECRET = "webhook-test-secret"
DOWN_S = 12.0  # the receiver is away this long (the back-off then tries again at 14 s: 2 + 4 + 8)
FAILURES = ("timeout", "rate_limit", "api")  # one critical pattern each: every call of its model fails


class Receiver:
    """A webhook receiver on loopback: 503 while `down`; when `hold` is set, the next delivery waits for
    it to be released (so that its sender can be killed mid-send)."""

    def __init__(self) -> None:
        self.down = True
        self.attempts_while_down = 0
        self.delivered: list[tuple[str, dict, int]] = []  # (Idempotency-Key, body, sender's port)
        self.hold: asyncio.Event | None = None
        self.held: asyncio.Future | None = None
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.runner, self.port = await serve_on_loopback([web.post("/hook", self.receive)])

    async def receive(self, request: web.Request) -> web.Response:
        if self.down:
            self.attempts_while_down += 1
            return web.Response(status=503, text="down for maintenance")
        raw = await request.read()
        timestamp = request.headers["X-Telemetry-Timestamp"]
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        assert request.headers["X-Telemetry-Signature"] == f"sha256={expected}", "a forged or broken signature"
        port = request.transport.get_extra_info("peername")[1]  # type: ignore[union-attr]
        self.delivered.append((request.headers["Idempotency-Key"], orjson.loads(raw), port))
        if self.hold is not None:
            hold, self.hold = self.hold, None
            assert self.held is not None
            self.held.set_result(port)
            await hold.wait()
        return web.json_response({"ok": True})

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def owner_of(port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the TCP socket with local port `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd)[8:-1] in inodes:
                        return pid
    return None


async def test_three_pods_send_each_notification_once_through_an_outage_and_a_killed_leader(settings, workers, pool):
    receiver = Receiver()
    await receiver.start()
    await ensure_topics(settings, partitions=3)
    pods = [
        workers(
            alert_webhook_url=f"http://127.0.0.1:{receiver.port}/hook",
            alert_webhook_secret=SECRET,
            alert_webhook_interval_s=0.5,
        )
        for _ in range(3)
    ]
    for pod in pods:
        await pod.wait_ready()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        now = dt.datetime.now(dt.UTC).isoformat()
        for error_type in FAILURES:
            for _ in range(25):
                event = samples.failed(
                    event_id=str(uuid.uuid4()), occurred_at=now, model_id=f"model-{error_type}", task_type="chat",
                    error_type=error_type, error_message=f"{error_type} from the provider",
                )  # fmt: skip
                await producer.send_and_wait(settings.topic_calls_failed, orjson.dumps(event))
    finally:
        await producer.stop()
    try:
        # 1. the receiver is down: the leader tries, backs off, and every notification waits in the outbox
        began = time.monotonic()
        await wait_for(lambda: receiver.attempts_while_down >= 2, 30, "attempts while the receiver is down")
        waiting = "SELECT count(*) FROM notification_outbox WHERE sent_at IS NULL AND dedupe_key LIKE 'bug_pattern_critical:%'"
        await wait_for(lambda: _count(pool, waiting, len(FAILURES)), 30, "the critical patterns' notifications")
        await asyncio.sleep(max(0.0, DOWN_S - (time.monotonic() - began)))
        tries = receiver.attempts_while_down
        assert tries <= 6, f"{tries} attempts in {DOWN_S:g} s: the back-off should spare a receiver that is down"

        # 2. it comes back; the first delivery is held while its sender (the leader) is killed with SIGKILL
        release = asyncio.Event()
        receiver.hold, receiver.held = release, asyncio.get_running_loop().create_future()
        receiver.down = False
        port = await asyncio.wait_for(receiver.held, 60)
        pid = owner_of(port, [p.proc.pid for p in pods if p.proc is not None])
        assert pid is not None, "the sending pod was not found"
        (leader,) = [p for p in pods if p.proc is not None and p.proc.pid == pid]
        in_flight = receiver.delivered[-1][0]
        leader.kill9()
        release.set()  # answered to nobody: the killed pod never marks it sent
        # a new leader sends what the killed one had not marked sent, the delivery in flight with its key
        unsent = "SELECT count(*) = 0 FROM notification_outbox WHERE sent_at IS NULL"
        await wait_for(lambda: pool.fetchval(unsent), 90, "every notification sent by the pods left")
    finally:
        await receiver.stop()

    outbox = {
        r["dedupe_key"]: r["sent_at"] for r in await pool.fetch("SELECT dedupe_key, sent_at FROM notification_outbox")
    }
    assert all(outbox.values()), "everything in the outbox was sent"
    keys = [key for key, _, _ in receiver.delivered]
    assert set(keys) == set(outbox)  # nothing lost, nothing the outbox does not hold
    kinds = sorted(k.split(":")[0] for k in set(keys))  # the patterns turned critical, and their models excluded
    assert kinds == ["bug_pattern_critical"] * len(FAILURES) + ["model_degraded"] * len(FAILURES)
    repeated = {k for k in keys if keys.count(k) > 1}
    print(
        f"{tries} attempts while the receiver was down for {DOWN_S:g} s; {len(keys)} deliveries of {len(set(keys))} "
        f"notifications; sent twice (the one in flight at the kill): {sorted(repeated)}"
    )
    assert repeated <= {in_flight}, "only the delivery in flight at the kill may come twice, with its key"
    bodies = {k: b for k, b, _ in receiver.delivered}
    assert all(b["id"] == k for k, b in bodies.items())
    assert all(SECRET not in orjson.dumps(b).decode() for b in bodies.values())


async def _count(pool, query: str, expected: int) -> bool:
    return await pool.fetchval(query) >= expected
