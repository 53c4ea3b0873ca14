// The README's TypeScript snippet, run as written against the real broker (only the package name,
// the broker address and the topic names are replaced); the package's own README carries the same one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { Kafka, logLevel } from "kafkajs";

const here = dirname(fileURLToPath(import.meta.url));
const brokers = (process.env.KAFKA_BOOTSTRAP_SERVERS ?? "").split(",").filter(Boolean);

test("the README's TypeScript snippet routes by the rules and reports the call", async () => {
  assert.ok(brokers.length, "KAFKA_BOOTSTRAP_SERVERS is not set: start the services with `make services-up`");
  const readme = readFileSync(join(here, "..", "..", "..", "README.md"), "utf8");
  const found = readme.match(/<!-- snippet: typescript -->\n```js\n([\s\S]*?)```/);
  assert.ok(found, "README.md has no typescript snippet");
  const own = readFileSync(join(here, "..", "README.md"), "utf8").match(/<!-- snippet: typescript -->\n```js\n([\s\S]*?)```/);
  assert.ok(own, "clients/ts/README.md has no typescript snippet");
  assert.equal(own[1], found[1], "the package README's snippet differs from the repository README's");
  const run = randomUUID().slice(0, 8);
  const topics = { heuristics: `ts.${run}.heuristics`, completed: `ts.${run}.completed`, feedback: `ts.${run}.feedback` };
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 1 })) });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: topics.heuristics, messages: [{ key: "coding", value: JSON.stringify({
    schema_version: 1, heuristic_id: "learned:coding", task_type: "coding", pattern: null, preferred_layer: "balanced",
    preferred_model: "claude-sonnet-4", fallback_models: ["gpt-4o"], weights: { "claude-sonnet-4": 1.0 }, priority: 0,
    active: true, version: 1, computed_at: "2026-12-01T00:00:00Z", window_s: 3600, evidence: {}, excluded: {}, probes: {},
    reasoning: "r" }) }, { key: "experiment:ts-readme", value: JSON.stringify({
    schema_version: 1, kind: "experiment", experiment_id: "ts-readme", name: "n", task_types: ["coding"],
    primary_metric: "success_rate", minimum_effect: null, guardrails: [], unit: "request", status: "running",
    winner: null, promoted: null, reason: "started", started_at: "2026-12-01T00:00:00Z", ends_at: "2027-12-01T00:00:00Z",
    version: 1, arms: [
      { name: "fixed", share: 1, stopped: null, routes: {},
        strategy: { kind: "model", model: "gpt-4o", layer: "balanced", pattern: null, weights: null } },
      { name: "learned", share: 1e-12, stopped: null, routes: {},
        strategy: { kind: "learned", model: null, layer: null, pattern: null, weights: null } }] }) }] });
  await producer.disconnect();
  let code = found[1]
    .replace('"@gateway-telemetry/client"', JSON.stringify(join(here, "..", "dist", "src", "index.js")))
    .replace('["127.0.0.1:9092"]', JSON.stringify(brokers))
    .replace("new CallEmitter(brokers)", `new CallEmitter(brokers, { topicCompleted: ${JSON.stringify(topics.completed)}, topicFeedback: ${JSON.stringify(topics.feedback)} })`)
    .replace("new HeuristicsSubscriber(brokers, table)", `new HeuristicsSubscriber(brokers, table, { topic: ${JSON.stringify(topics.heuristics)} })`);
  code = `${code}\nconsole.log(JSON.stringify({ model, stats: emitter.stats, fields: eventFields(route) }));\n`;
  const file = join(here, `.readme-snippet-${run}.mjs`);
  writeFileSync(file, code);
  try {
    const out = JSON.parse(execFileSync(process.execPath, [file], { encoding: "utf8", timeout: 60_000 }).trim().split("\n").pop());
    // the experiment's arm (share 1 of 1 + 1e-12) sends the request to its fixed model, and the event carries the arm
    assert.equal(out.model, "gpt-4o");
    assert.deepEqual(out.fields, { routing_rule_id: "experiment:ts-readme:fixed", experiment_id: "ts-readme", arm: "fixed", route_probability: 1 });
    assert.deepEqual(out.stats, { enqueued: 2, sent: 2, dropped: 0, sendErrors: 0 });  // the call, then its feedback
    for (const topic of [topics.completed, topics.feedback]) {
      const [offsets] = await admin.fetchTopicOffsets(topic);
      assert.equal(Number(offsets.high), 1, topic);
    }
  } finally {
    rmSync(file, { force: true });
    await admin.deleteTopics({ topics: Object.values(topics) });
    await admin.disconnect();
  }
});
