// The subscriber on a real broker: from the beginning, highest version per key, tombstones.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { HeuristicsSubscriber, RoutingTable } from "../dist/src/index.js";

const brokers = (process.env.KAFKA_BOOTSTRAP_SERVERS ?? "").split(",").filter(Boolean);
const record = (task, version, weights) => JSON.stringify({
  schema_version: 1, heuristic_id: `learned:${task}`, task_type: task, pattern: null, preferred_layer: "fast",
  preferred_model: Object.keys(weights)[0], fallback_models: [], weights, priority: 0, active: true, version,
  computed_at: "2026-12-01T00:00:00Z", window_s: 3600, evidence: {}, excluded: {}, probes: {}, reasoning: "r" });

test("reads every rule from the beginning, keeps the highest version, drops tombstones, follows changes", async () => {
  assert.ok(brokers.length, "KAFKA_BOOTSTRAP_SERVERS is not set: start the services with `make services-up`");
  const topic = `ts.${randomUUID().slice(0, 8)}.heuristics`;
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, configEntries: [{ name: "cleanup.policy", value: "compact" }] }] });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [
    { key: "coding", value: record("coding", 2, { a: 1 }) }, { key: "coding", value: record("coding", 1, { old: 1 }) },
    { key: "chat", value: record("chat", 1, { b: 1 }) }, { key: "chat", value: null }] });
  const table = new RoutingTable();
  const changes = [];
  const subscriber = new HeuristicsSubscriber(brokers, table, { topic, onChange: (r) => changes.push(r.version) });
  await subscriber.start();
  await subscriber.caughtUp;
  assert.equal(table.route("coding", "", { key: "k" }), "a");
  assert.equal(table.choose("chat"), null);
  await producer.send({ topic, messages: [{ key: "coding", value: record("coding", 3, { c: 1 }) }] });
  const deadline = Date.now() + 15_000;
  while (table.route("coding", "", { key: "k" }) !== "c" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(table.route("coding", "", { key: "k" }), "c");
  assert.deepEqual(changes, [2, 1, 3]);
  await subscriber.stop();
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
});
