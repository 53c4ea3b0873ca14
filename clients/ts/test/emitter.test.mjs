// The emitter: bad events refused before Kafka; the broker away never blocks or throws; a real send.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { CallEmitter, ContractError, completed, failed, feedback } from "../dist/src/index.js";

const brokers = (process.env.KAFKA_BOOTSTRAP_SERVERS ?? "").split(",").filter(Boolean);
const OK = { model_id: "gpt-4o", layer: "balanced", task_type: "chat", latency_ms: 120 };

test("an event that violates the schema is refused with every field and reason", () => {
  assert.throws(() => completed({ ...OK, layer: "turbo", latency_ms: "120" }), (e) =>
    e instanceof ContractError && e.problems.length === 2 && /layer/.test(e.message) && /latency_ms/.test(e.message));
  assert.throws(() => failed({ ...OK, error_type: "api" }), /error_message/);
  assert.throws(() => completed({ ...OK, model_id: "a\u0000b" }), /U\+0000/);
  assert.match(failed({ ...OK, error_type: "api", error_message: "token=abc123 for sk-live-0123456789" }).error_message,
               /^token=\[REDACTED\] for \[REDACTED\]$/);
});

test("feedback is checked like the calls, its comment redacted, and an option left undefined keeps its default", () => {
  const vote = feedback({ request_id: "req-1", name: "thumbs", score: 1, source: "user", comment: "key sk-live-0123456789" });
  assert.equal(vote.comment, "key [REDACTED]");
  assert.ok(vote.event_id && vote.occurred_at);
  assert.throws(() => feedback({ name: "thumbs", score: 1, source: "user" }), /call_event_id|request_id/);
  assert.throws(() => feedback({ request_id: "r", name: "thumbs", score: 1.5, source: "user" }), /score/);
  const emitter = new CallEmitter(["127.0.0.1:1"], { topicFeedback: undefined, topicCompleted: "mine" });
  assert.equal(emitter.o.topicFeedback, "gateway.calls.feedback");
  assert.equal(emitter.o.topicCompleted, "mine");
});

test("with no broker, emit never blocks or throws: a full buffer drops and counts", async () => {
  const emitter = new CallEmitter(["127.0.0.1:1"], { bufferSize: 5, kafka: { connectionTimeout: 200 } });
  const started = Date.now();
  const accepted = Array.from({ length: 20 }, () => emitter.emit(completed(OK)));
  assert.ok(Date.now() - started < 200);
  assert.equal(accepted.filter(Boolean).length, 5);
  assert.equal(emitter.stats.dropped, 15);
});

test("events reach Kafka, one message each, on the topic of their kind", { skip: false }, async () => {
  assert.ok(brokers.length, "KAFKA_BOOTSTRAP_SERVERS is not set: start the services with `make services-up`");
  const run = randomUUID().slice(0, 8);
  const topics = { topicCompleted: `ts.${run}.completed`, topicFailed: `ts.${run}.failed` };
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 1 })) });
  const emitter = new CallEmitter(brokers, topics);
  await emitter.start();
  for (let i = 0; i < 30; i++) emitter.emit(i % 3 ? completed(OK) : failed({ ...OK, error_type: "api", error_message: "502" }));
  await emitter.stop();
  assert.deepEqual(emitter.stats, { enqueued: 30, sent: 30, dropped: 0, sendErrors: 0 });
  const offsets = await Promise.all(Object.values(topics).map((t) => admin.fetchTopicOffsets(t)));
  assert.deepEqual(offsets.map((o) => Number(o[0].high)), [20, 10]);
  await admin.deleteTopics({ topics: Object.values(topics) });
  await admin.disconnect();
});

test("emit() refuses a raw object that violates the contract; a valid one is taken", () => {
  const emitter = new CallEmitter(["127.0.0.1:1"], { bufferSize: 5 });
  assert.throws(() => emitter.emit({ ...OK, event_id: randomUUID(), occurred_at: new Date().toISOString(), layer: "turbo" }), ContractError);
  assert.throws(() => emitter.emit({ score: 2, name: "thumbs", request_id: "r", source: "user" }), /score|event_id/);
  assert.equal(emitter.emit({ ...OK, event_id: randomUUID(), occurred_at: new Date().toISOString() }), true);
  assert.equal(emitter.stats.enqueued, 1);
});

test("with Kafka away, start() resolves at once and stop() counts every event never sent", async () => {
  const emitter = new CallEmitter(["127.0.0.1:1"], { flushTimeoutMs: 1_000, kafka: { connectionTimeout: 200, retry: { retries: 1, initialRetryTime: 50 } } });
  const started = Date.now();
  await emitter.start();
  assert.ok(Date.now() - started < 100);
  for (let i = 0; i < 5; i++) assert.equal(emitter.emit(completed(OK)), true);
  await new Promise((r) => setTimeout(r, 1_200));
  assert.match(emitter.status, /^connecting \(attempt/);
  await emitter.stop();
  assert.deepEqual(emitter.stats, { enqueued: 5, sent: 0, dropped: 5, sendErrors: 0 });
  assert.equal(emitter.status, "stopped");
});
