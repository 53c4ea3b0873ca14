"""Routing on answer quality with the real worker, Kafka and PostgreSQL: a router that obeys the
published rules replays two subjects of the real outcome table (shared/data/routing-outcomes), the
gateway reports every call and, a few seconds late, correctness feedback on part of them. The rule
for the subject where GPT-4 is much better moves to it; the one where both are equal stays on the
cheap model; the quality sums equal the table's truth for the calls that were judged, exactly."""

import asyncio
import random
import uuid
from decimal import Decimal
from pathlib import Path

from tests.integration.harness import wait_drained
from worker.gateway.emitter import CallEmitter, completed, feedback
from worker.gateway.router import HeuristicsSubscriber, RoutingTable
from worker.routing_eval import replay
from worker.simulation.producer import ensure_topics

TABLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing-outcomes" / "mmlu-half-a.csv"
BETTER, EQUAL = "conceptual_physics", "world_religions"  # GPT-4 +25 points; -4 points (the data's own)
RATE = 40.0  # prompts per second
FEEDBACK_SHARE, DELAY_S = 0.6, (0.5, 3.0)


async def test_the_rule_follows_answer_quality_and_the_quality_sums_equal_the_table(settings, workers, pool):
    assert TABLE.exists(), f"{TABLE} is missing: the shared folder lies beside the project"
    outcomes = replay.load(TABLE)
    weak, strong = outcomes.models
    prompts = [p for p in outcomes.prompts if p.task_type in (BETTER, EQUAL)] * 3  # three passes over both
    rng = random.Random(5)
    rng.shuffle(prompts)
    await ensure_topics(settings, partitions=2)
    # V = $0.01: GPT-4 costs 0.0007 USD more per call here, worth 0.07 quality points; +0.25 clears it, -0.04 does not
    worker = workers(heuristics_interval_s=2.0, routing_value_usd=0.01)
    await worker.wait_ready()
    table = RoutingTable()
    subscriber = HeuristicsSubscriber(settings.kafka_bootstrap_servers, table, topic=settings.topic_heuristics)
    emitter = CallEmitter(
        settings.kafka_bootstrap_servers,
        topic_completed=settings.topic_calls_completed,
        topic_feedback=settings.topic_calls_feedback,
    )
    await subscriber.start()
    await emitter.start()
    truth: dict[tuple[str, str], list] = {}
    late: list[asyncio.Task] = []

    async def judge(call_id: str, model: str, task: str, correct: bool) -> None:
        await asyncio.sleep(rng.uniform(*DELAY_S))
        emitter.emit(feedback(call_event_id=call_id, name="correctness", score=float(correct), source="eval"))

    try:
        for i, prompt in enumerate(prompts):
            request_id = f"req-{i}"
            model = table.route(prompt.task_type, "", key=request_id, candidates=[weak, strong]) or rng.choice(
                [weak, strong]
            )
            correct = prompt.correct[model]
            call = completed(
                model_id=model,
                layer="balanced",
                task_type=prompt.task_type,
                latency_ms=1000.0,
                cost_usd=outcomes.cost(model, prompt),
                request_id=request_id,
                event_id=str(uuid.uuid4()),
            )
            assert emitter.emit(call)
            if rng.random() < FEEDBACK_SHARE:
                t = truth.setdefault((model, prompt.task_type), [0, 0])
                t[0] += 1
                t[1] += correct
                late.append(asyncio.create_task(judge(str(call.event_id), model, prompt.task_type, correct)))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*late)
        # the last rules, once the last feedback is in: two more periods of the leader
        await asyncio.sleep(3 * 2.0)
        rules = {task: table.choose(task) for task in (BETTER, EQUAL)}
    finally:
        await subscriber.stop()
        await emitter.stop()
    assert emitter.stats.dropped == 0 and emitter.stats.send_errors == 0
    await wait_drained(settings, pool, workers=[worker])

    rows = await pool.fetch("SELECT model_id, task_type, feedback_count, score_sum FROM model_quality")
    assert {(r["model_id"], r["task_type"]): (r["feedback_count"], r["score_sum"]) for r in rows} == {
        key: (n, Decimal(ok)) for key, (n, ok) in truth.items()
    }
    better, equal = rules[BETTER], rules[EQUAL]
    assert better is not None and equal is not None
    # what the router obeys is the split (`preferred_model` holds on near-ties by design: it changes only at
    # 95 % posterior confidence); the split follows each model's posterior probability of the higher value
    assert better.weights.get(strong, 0) > 0.5, better
    assert equal.weights.get(weak, 0) > 0.5, equal
    assert better.evidence[strong].quality is not None and better.evidence[strong].quality.value_usd == 0.01
    assert "correctness quality" in better.reasoning
    exported = await worker.metrics()  # the dashboard's panel: the window's quality per model and task type
    key = f"telemetry_model_quality|bound={{}}|model_id={strong}|name=correctness|task_type={BETTER}"
    judged = truth[(strong, BETTER)]
    assert exported[key.format("feedback")] == judged[0]
    assert (
        exported[key.format("low")]
        < exported[key.format("mean")]
        == judged[1] / judged[0]
        < exported[key.format("high")]
    )
    assert worker.terminate() == 0
