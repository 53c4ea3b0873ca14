"""Throughput, memory and delay of the worker, measured side by side on the same broker, topic data
and database, in one run (`make bench`). Prints a table of medians and the ratios to the targets.

Four data sets: live (occurred_at within the last minute) and backlog (spread over the last 3
hours, consumed from the beginning), each as 1 event per message and as envelopes of 100.

    worker     the real worker process, first message to everything visible in PostgreSQL
               (and its two halves measured alone: decoding in memory, flushes of decoded batches)
    minimal    the simplest exact consumer (bench/minimal.py): the same counting guarantees and
               nothing else; the fair anchor
    limit      a bare aiokafka consumer that reads and decodes the same messages (no writes)
    ceiling    PostgreSQL alone: exact dedupe of the same number of new ids, batches of 5,000
    per-event  what the gateway's design does: one upsert per call (updateModelPerformance)

Also: peak RSS of the worker, and end-to-end delay (occurred_at -> visible) at half the measured
worker throughput. Not part of `make test`: figures are not assertions, and the machine is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import minimal  # noqa: E402
from tests.integration.harness import WorkerProcess, free_port  # noqa: E402
from worker.calls import batch as batching  # noqa: E402
from worker.calls.decode import Limits  # noqa: E402
from worker.calls.events import EventKind  # noqa: E402
from worker.flush import plan as flush_plan  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.simulation.traffic import generate  # noqa: E402
from worker.store.flush import write_flush  # noqa: E402
from worker.store.migrate import migrate  # noqa: E402
from worker.topics import create_missing, partitions_of  # noqa: E402

PARTITIONS = 4


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


async def create_topics(bootstrap: str, names: list[str]) -> None:
    await create_missing(Settings(kafka_bootstrap_servers=bootstrap), [NewTopic(n, PARTITIONS, 1) for n in names])


BACKLOG_S = 3 * 3600


def backlog_clock(count: int):
    """occurred_at spread evenly over the last BACKLOG_S seconds, oldest first."""
    start, step, i = time.time() - BACKLOG_S, BACKLOG_S / max(1, count), 0

    def clock() -> str:
        nonlocal i
        i += 1
        return dt.datetime.fromtimestamp(start + i * step, dt.UTC).isoformat()

    return clock


async def produce(
    bootstrap: str, topics: dict[str, str], count: int, envelope: int, seed: int, backlog: bool = False
) -> int:
    """Write `count` simulated calls; returns the number of messages."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1_048_576, max_request_size=4_194_304
    )
    await producer.start()
    messages, pending, buffers = 0, [], {"completed": [], "failed": []}
    try:
        for kind, event in generate(count, seed=seed, clock=backlog_clock(count) if backlog else now_iso):
            buffer = buffers[kind.value]
            buffer.append(event)
            if len(buffer) >= envelope:
                value = orjson.dumps(buffer[0] if envelope == 1 else buffer)
                pending.append(await producer.send(topics[kind.value], value))
                buffers[kind.value] = []
                messages += 1
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
        for kind, buffer in buffers.items():
            if buffer:
                pending.append(await producer.send(topics[kind], orjson.dumps(buffer)))
                messages += 1
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return messages


@contextlib.asynccontextmanager
async def from_beginning(bootstrap: str, topics: list[str], **options):
    """A consumer without a group, assigned every partition of `topics` and at their beginnings."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer
    finally:
        await consumer.stop()


async def bare_limit(bootstrap: str, topics: list[str], events: int) -> float:
    """Events/s of a plain getmany loop that decodes every value: the Python-side ceiling."""
    async with from_beginning(bootstrap, topics, max_partition_fetch_bytes=4_194_304) as consumer:
        seen, started = 0, time.perf_counter()
        while seen < events:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in records:
                    value = orjson.loads(record.value)
                    seen += len(value) if isinstance(value, list) else 1
        return seen / (time.perf_counter() - started)


async def fetch_all(bootstrap: str, topics: dict[str, str], messages: int) -> list:
    async with from_beginning(bootstrap, list(topics.values()), max_partition_fetch_bytes=4_194_304) as consumer:
        records: list = []
        while len(records) < messages:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                records.extend(batch)
        return records


def decoded_batches(records: list, topics: dict[str, str], max_items: int = 5000) -> list[batching.Batch]:
    kinds = {topics["completed"]: EventKind.completed, topics["failed"]: EventKind.failed}
    batches, batch = [], batching.initial(0.0)
    for record in records:
        batching.accumulate(batch, record, kinds[record.topic], Limits(), 262_144)
        if batch.size >= max_items:
            batches.append(batch)
            batch = batching.initial(0.0)
    return batches + ([batch] if batch else [])


def python_side(records: list, topics: dict[str, str], events: int) -> float:
    """Events/s of the worker's own Python work on records already in memory: decode and validate,
    then the flush plan (aggregates, bug-pattern deltas, the column arrays). No Kafka, no database."""
    started = time.perf_counter()
    for batch in decoded_batches(records, topics):
        flush_plan.plan(batch.decoded, time.time()).series_rows(0, "bench")
    return events / (time.perf_counter() - started)


async def database_side(dsn: str, records: list, topics: dict[str, str], events: int) -> float:
    """Events/s of the flushes alone (aggregation, bug-pattern deltas and the transaction), batches of
    5,000 decoded beforehand: the write side, which a pipelined worker overlaps with decoding."""
    batches = decoded_batches(records, topics)
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for batch in batches:
            plan = flush_plan.plan(batch.decoded, time.time())
            await write_flush(conn, plan, group="bench", expected={}, next_offsets={}, dead_letters=0)
        return events / (time.perf_counter() - started)
    finally:
        await conn.close()


# exact dedupe and nothing else: what the worker's statement (worker/store/flush.py, MARK_SEEN) does with ids alone
MARK_SEEN_IDS = """
INSERT INTO seen_events (event_id, keep_until) SELECT e, now() FROM unnest($1::uuid[]) AS u(e)
ON CONFLICT DO NOTHING RETURNING event_id::text"""


async def postgres_ceiling(dsn: str, events: int, batch: int = 5000) -> float:
    """New ids/s PostgreSQL takes with exact dedupe (the worker's dedupe insert, ids only) and nothing else:
    the ceiling of any exact design's write half on this machine."""
    conn = await asyncpg.connect(dsn)
    try:
        batches = [[str(uuid.uuid4()) for _ in range(batch)] for _ in range(events // batch)]
        started = time.perf_counter()
        for ids in batches:
            async with conn.transaction():
                await conn.fetch(MARK_SEEN_IDS, ids)
        return batch * len(batches) / (time.perf_counter() - started)
    finally:
        await conn.close()


UPSERT_ONE = """
INSERT INTO model_performance AS t (model_id, task_type, total_calls, success_count, latency_sum_ms, cost_sum_usd)
VALUES ($1, $2, 1, $3, $4, $5)
ON CONFLICT (model_id, task_type) DO UPDATE SET total_calls = t.total_calls + 1,
    success_count = t.success_count + EXCLUDED.success_count, latency_sum_ms = t.latency_sum_ms + EXCLUDED.latency_sum_ms,
    cost_sum_usd = t.cost_sum_usd + EXCLUDED.cost_sum_usd, updated_at = now()"""


async def per_event_baseline(bootstrap: str, dsn: str, topics: dict[str, str], sample: int) -> float:
    """The gateway design's way: one database round trip (an upsert) per call, on the first `sample` calls."""
    conn = await asyncpg.connect(dsn)
    try:
        async with from_beginning(bootstrap, list(topics.values())) as consumer:
            return await _upsert_each(consumer, conn, topics, sample)
    finally:
        await conn.close()


async def _upsert_each(
    consumer: AIOKafkaConsumer, conn: asyncpg.Connection, topics: dict[str, str], sample: int
) -> float:
    done, started = 0, time.perf_counter()
    while done < sample:
        for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=1000)).items():
            ok = tp.topic == topics["completed"]
            for record in records:
                value = orjson.loads(record.value)
                for e in value if isinstance(value, list) else [value]:
                    await conn.execute(
                        UPSERT_ONE, e["model_id"], e["task_type"], int(ok), e["latency_ms"], e["cost_usd"]
                    )
                    done += 1
    return done / (time.perf_counter() - started)


class Database:
    def __init__(self, dsn: str):
        self.admin_dsn = dsn.rsplit("/", 1)[0] + "/postgres"
        self.base = dsn.rsplit("/", 1)[0]

    async def fresh(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.admin_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = f"{self.base}/{name}"
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        return dsn

    async def drop(self, dsn: str) -> None:
        admin = await asyncpg.connect(self.admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


async def stored_total(conn: asyncpg.Connection, group: str, topics: dict[str, str]) -> int:
    """Messages of the input topics stored as written (the commands topic is not part of the load)."""
    return await conn.fetchval(
        "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = $1 "
        "AND next_offset > 0 AND topic = ANY($2::text[])",
        group,
        list(topics.values()),
    )


class CpuUse:
    """CPU seconds of the consumer, PostgreSQL and the Kafka broker between `start()` and `stop()`:
    on two shared cores, their sum per event is what bounds any consumer."""

    def __init__(self, consumer: psutil.Process):
        self.consumer = consumer

    @staticmethod
    def _spent(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
            return times.user + times.system
        except psutil.Error:
            return 0.0

    def _snapshot(self) -> dict[str, dict[int, float]]:
        parts: dict[str, dict[int, float]] = {"consumer": {self.consumer.pid: self._spent(self.consumer)}}
        parts["postgres"], parts["kafka"] = {}, {}
        for p in psutil.process_iter(["name", "cmdline"]):
            name, cmdline = p.info["name"] or "", " ".join(p.info["cmdline"] or ())
            if name.startswith("postgres"):
                parts["postgres"][p.pid] = self._spent(p)
            elif name == "java" and "kafka" in cmdline:
                parts["kafka"][p.pid] = self._spent(p)
        return parts

    def start(self) -> None:
        self.before = self._snapshot()

    def stop(self) -> dict[str, float]:
        after = self._snapshot()
        return {part: sum(t - self.before[part].get(pid, 0.0) for pid, t in after[part].items()) for part in after}


async def run_worker(
    base: Settings,
    topics: dict[str, str],
    messages: int,
    events: int,
    log: Path,
    profile: Path | None = None,
    cpu: dict | None = None,
) -> tuple[float, int]:
    """(events/s, peak RSS bytes) of a worker draining the topics into a fresh database; fills `cpu`
    with the CPU seconds of the worker, PostgreSQL and Kafka over the run."""
    db = Database(base.database_url)
    dsn = await db.fresh()
    group = f"bench-{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(
        update={
            "database_url": dsn,
            "topic_calls_completed": topics["completed"],
            "topic_calls_failed": topics["failed"],
            "topic_tool_commands": topics["completed"] + ".commands",
            "consumer_group": group,
            "app_id": group + "-app",
            "web_port": free_port(),
            "log_level": "warning",
            "heuristics_interval_s": 3600.0,
            "degradation_check_s": 3600.0,
        }
    )
    worker = WorkerProcess(settings, log)
    conn = await asyncpg.connect(dsn)
    try:
        worker.start()
        process = psutil.Process(worker.proc.pid)
        await worker.wait_ready()
        spy = (
            subprocess.Popen(
                ["py-spy", "record", "-o", str(profile), "-f", "raw", "-r", "200", "-p", str(worker.proc.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if profile
            else None
        )
        started, peak, use = time.perf_counter(), 0, CpuUse(process)
        use.start()
        while await stored_total(conn, group, topics) < messages:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        if cpu is not None:
            cpu.update(use.stop())
        counted = await conn.fetchval("SELECT sum(total_calls) FROM model_performance")
        assert counted == events, f"exactness check failed: {counted} counted, {events} produced"
        if spy:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on interrupt
            spy.wait(30)
        return events / seconds, max(peak, process.memory_info().rss)
    finally:
        worker.terminate(60)
        await conn.close()
        await db.drop(dsn)


async def delay_at(base: Settings, rate: float, seconds: float, log: Path) -> tuple[float, float]:
    """p50 and p99 of occurred_at -> visible in PostgreSQL, at a fixed offered load (probe events)."""
    db = Database(base.database_url)
    dsn = await db.fresh()
    run = uuid.uuid4().hex[:8]
    topics = {"completed": f"bench.{run}.delay.completed", "failed": f"bench.{run}.delay.failed"}
    await create_topics(base.kafka_bootstrap_servers, list(topics.values()))
    settings = base.model_copy(
        update={
            "database_url": dsn,
            "topic_calls_completed": topics["completed"],
            "topic_calls_failed": topics["failed"],
            "topic_tool_commands": f"bench.{run}.delay.commands",
            "consumer_group": f"bench-{run}",
            "app_id": f"bench-{run}-app",
            "web_port": free_port(),
            "log_level": "warning",
            "heuristics_interval_s": 3600.0,
            "degradation_check_s": 3600.0,
        }
    )
    worker = WorkerProcess(settings, log)
    worker.start()
    await worker.wait_ready()
    producer = AIOKafkaProducer(bootstrap_servers=base.kafka_bootstrap_servers, linger_ms=5)
    await producer.start()
    conn = await asyncpg.connect(dsn)
    sent: dict[str, float] = {}
    visible: dict[str, float] = {}

    async def watch() -> None:
        while True:
            for row in await conn.fetch("SELECT model_id FROM model_performance WHERE model_id LIKE 'probe-%'"):
                visible.setdefault(row[0], time.time())
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        total = int(rate * seconds)
        started = time.perf_counter()
        for i, (kind, event) in enumerate(generate(total, seed=99, clock=now_iso)):
            if i % 100 == 0:  # a probe: its own model id shows when its event became visible
                event["model_id"] = f"probe-{i}"
                event["occurred_at"] = now_iso()
                sent[event["model_id"]] = time.time()
            await producer.send(topics[kind.value], orjson.dumps(event))
            ahead = (i + 1) / rate - (time.perf_counter() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
        deadline = time.monotonic() + 30
        while len(visible) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        delays = sorted(visible[k] - sent[k] for k in sent if k in visible)
        q = statistics.quantiles(delays, n=100)
        return q[49], q[98]
    finally:
        watcher.cancel()
        await producer.stop()
        await conn.close()
        worker.terminate(60)
        await db.drop(dsn)


SCENARIOS = (("live", 1), ("live", 100), ("backlog", 1), ("backlog", 100))


def label_of(scenario: str, envelope: int) -> str:
    return f"{scenario}, {'1 event/message' if envelope == 1 else f'envelopes of {envelope}'}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="calls per throughput run (default 200000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; medians are reported (default 3)")
    parser.add_argument("--rss-events", type=int, default=1_000_000, help="calls for the memory run (default 1000000)")
    parser.add_argument("--baseline-sample", type=int, default=20_000, help="calls for the per-event baseline")
    parser.add_argument("--profile", type=Path, help="write py-spy profiles (collapsed stacks) of worker runs here")
    args = parser.parse_args()
    base = Settings()
    bootstrap = base.kafka_bootstrap_servers
    logs = ROOT / ".cache" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    data = {}
    for scenario, envelope in SCENARIOS:
        name = f"{scenario}{envelope}"
        topics = {"completed": f"bench.{run}.{name}.completed", "failed": f"bench.{run}.{name}.failed"}
        await create_topics(bootstrap, list(topics.values()))
        print(f"producing {args.events:,} calls ({label_of(scenario, envelope)}) ...", flush=True)
        messages = await produce(bootstrap, topics, args.events, envelope, seed=1, backlog=scenario == "backlog")
        data[name] = (topics, messages)

    figures: dict[str, list[float]] = {}
    cpu_use: dict[str, list[dict[str, float]]] = {}  # CPU seconds per run, by process group

    def note(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    records = {name: await fetch_all(bootstrap, data[name][0], data[name][1]) for name in ("live1", "backlog1")}
    db = Database(base.database_url)
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs} ...", flush=True)
        for scenario, envelope in SCENARIOS:
            name = f"{scenario}{envelope}"
            topics, messages = data[name]
            print(f"  {label_of(scenario, envelope)}: bare consumer, worker, minimal exact consumer", flush=True)
            note("limit_" + name, await bare_limit(bootstrap, list(topics.values()), args.events))
            profile = args.profile.with_suffix(f".{name}.txt") if args.profile and i == 0 and envelope == 1 else None
            cpu: dict[str, float] = {}
            log = logs / f"worker-{name}-{i}.log"
            rate, _ = await run_worker(base, topics, messages, args.events, log, profile, cpu)
            note("worker_" + name, rate)
            if profile is None:
                cpu_use.setdefault("worker_" + name, []).append(cpu)
            dsn = await db.fresh()
            use = CpuUse(psutil.Process())
            use.start()
            done = lambda use=use, name=name: cpu_use.setdefault("minimal_" + name, []).append(use.stop())
            try:
                note("minimal_" + name, await minimal.run(bootstrap, dsn, topics, messages, args.events, done))
            finally:
                await db.drop(dsn)
        print("  the worker's two halves alone, PostgreSQL's ceiling, the per-event baseline", flush=True)
        for name in ("live1", "backlog1"):
            note("python_" + name, python_side(records[name], data[name][0], args.events))
            dsn = await db.fresh()
            note("database_" + name, await database_side(dsn, records[name], data[name][0], args.events))
            await db.drop(dsn)
        dsn = await db.fresh()
        note("ceiling", await postgres_ceiling(dsn, args.events))
        note("per_event", await per_event_baseline(bootstrap, dsn, data["live1"][0], args.baseline_sample))
        await db.drop(dsn)
    median = {k: statistics.median(v) for k, v in figures.items()}

    print(f"memory run: {args.rss_events:,} calls ...", flush=True)
    topics = {"completed": f"bench.{run}.rss.completed", "failed": f"bench.{run}.rss.failed"}
    await create_topics(bootstrap, list(topics.values()))
    messages = await produce(bootstrap, topics, args.rss_events, 1, seed=2)
    _, rss = await run_worker(base, topics, messages, args.rss_events, logs / "worker-rss.log")

    half = median["worker_live1"] / 2
    print(f"delay run at {half:,.0f} events/s ...", flush=True)
    p50, p99 = await delay_at(base, half, 20.0, logs / "worker-delay.log")

    def rate(key: str) -> str:
        return f"{median[key]:,.0f} events/s"

    def met(ok: bool) -> str:
        return "yes" if ok else "no"

    table = []
    for scenario, envelope in SCENARIOS:
        name = f"{scenario}{envelope}"
        worker, anchor = median["worker_" + name], median["minimal_" + name]
        target = f"{worker / anchor:.2f} x minimal (target >= 1.0)"
        if scenario == "live":
            target += f"; target >= 50,000 events/s: {met(worker >= 50_000)}"
        table.append((f"worker, {label_of(scenario, envelope)}", rate("worker_" + name), target, met(worker >= anchor)))
        table.append((f"  minimal exact consumer, {label_of(scenario, envelope)}", rate("minimal_" + name), "", ""))
        table.append(
            (f"  bare aiokafka + orjson (no writes), {label_of(scenario, envelope)}", rate("limit_" + name), "", "")
        )
    for envelope in (1, 100):
        ratio = median[f"worker_backlog{envelope}"] / median[f"worker_live{envelope}"]
        table.append(
            (f"worker backlog / live, {label_of('', envelope)[2:]}", f"{ratio:.2f}", "target >= 0.9", met(ratio >= 0.9))
        )
    for name in ("live1", "backlog1"):
        table.append(
            (
                f"  worker's decode half alone ({name}: decode, aggregate, rows; in memory)",
                rate("python_" + name),
                "",
                "",
            )
        )
        table.append(
            (
                f"  worker's write half alone ({name}: flushes of 5,000 decoded beforehand)",
                rate("database_" + name),
                f"{median['database_' + name] / median['ceiling']:.2f} x PostgreSQL's ceiling",
                "",
            )
        )
    table += [
        ("PostgreSQL's ceiling: exact dedupe of new ids alone", rate("ceiling"), "", ""),
        (
            "per-event upsert baseline (the design's way)",
            rate("per_event"),
            f"worker = {median['worker_live1'] / median['per_event']:.1f} x baseline",
            "",
        ),
        (
            f"worker peak RSS, {args.rss_events:,} events",
            f"{rss / 2**20:,.0f} MiB",
            "target <= 300 MiB",
            met(rss <= 300 * 2**20),
        ),
        (
            f"end-to-end delay at {half:,.0f} events/s",
            f"p50 {p50:.2f} s, p99 {p99:.2f} s",
            "target p99 <= 2 s",
            met(p99 <= 2.0),
        ),
    ]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"date: {dt.date.today()}; commit: {commit}; {args.events:,} calls per run, medians of {args.runs} runs"
    )
    print("| measure | figure | ratio / target | met |\n| --- | --- | --- | --- |")
    for row in table:
        print("| " + " | ".join(row) + " |")
    print("\nall runs:", {k: [round(x) for x in v] for k, v in figures.items()})
    print("\nCPU per 1,000 events (ms, medians over runs without the profiler): consumer + PostgreSQL + Kafka = total")
    for key, runs in cpu_use.items():
        parts = {part: statistics.median(r[part] for r in runs) * 1000 / (args.events / 1000) for part in runs[0]}
        total = sum(parts.values())
        print(
            f"  {key:<22} {parts['consumer']:6.1f} + {parts['postgres']:6.1f} + {parts['kafka']:6.1f} = {total:6.1f}"
            f"  (two cores allow at most {2_000_000 / total:,.0f} events/s)"
        )
    if args.profile:
        for name in ("live1", "backlog1"):
            path = args.profile.with_suffix(f".{name}.txt")
            if path.exists():
                print(f"\nwhere the worker's time goes (py-spy, {name}, {path}):")
                for share, where in hot_spots(path):
                    print(f"  {share:5.1f}%  {where}")


def hot_spots(path: Path, top: int = 12) -> list[tuple[float, str]]:
    """Share of samples spent in each function itself (leaf frames), from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        leaf = stack.split(";")[-1]
        name, _, where = leaf.partition(" (")
        where = where.rstrip(")").split("site-packages/")[-1].split(str(ROOT) + "/")[-1].rsplit(":", 1)[0]
        key = f"{name}  [{where}]"
        own[key] = own.get(key, 0) + int(count)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return [(100 * v / max(total, 1), k) for k, v in ranked]


if __name__ == "__main__":
    asyncio.run(main())
