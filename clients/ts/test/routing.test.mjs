// The router's choice: the rule for a request, then the model, exactly as worker/routing/table.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoutingTable, chooseModel, hashUnit } from "../dist/src/index.js";

const learned = (weights, extra = {}) => ({
  schema_version: 1, heuristic_id: "learned:coding", task_type: "coding", pattern: null, preferred_layer: "balanced",
  preferred_model: Object.keys(weights)[0] ?? null, fallback_models: [], weights, priority: 0, active: true, version: 1,
  computed_at: "2026-12-01T00:00:00Z", window_s: 3600, evidence: {}, excluded: {}, probes: {}, reasoning: "r", ...extra,
});
const manual = (id, pattern, model, priority, extra = {}) => ({
  ...learned({ [model]: 1 }), heuristic_id: `manual:${id}`, task_type: null, pattern, preferred_model: model,
  priority, window_s: null, ...extra,
});

test("the draw walks the cumulative weights of the models sorted by id", () => {
  const rule = learned({ b: 0.3, a: 0.7 });
  assert.equal(chooseModel(rule, 0.0), "a");
  assert.equal(chooseModel(rule, 0.69), "a");
  assert.equal(chooseModel(rule, 0.71), "b");
});

test("the hash unit is SHA-256's first 8 bytes over 2^64", () => {
  assert.equal(hashUnit(""), 0xe3b0c44298fc1c14n.toString() && Number(0xe3b0c44298fc1c14n) / 2 ** 64);
  assert.equal(hashUnit("req-1"), hashUnit("req-1"));
});

test("excluded models never get traffic; fallbacks when nothing is left; candidates and exploration", () => {
  const down = learned({ a: 1 }, { excluded: { a: "down" }, fallback_models: ["a", "c"] });
  for (let u = 0; u < 1; u += 0.1) assert.equal(chooseModel(down, u), "c");
  const rule = learned({ a: 0.5, b: 0.5 });
  const picks = Array.from({ length: 1000 }, (_, i) => chooseModel(rule, i / 1000, ["a", "b", "fresh"]));
  const fresh = picks.filter((m) => m === "fresh").length;
  assert.ok(fresh >= 5 && fresh <= 15, `fresh got ${fresh}`);
});

test("manual rules by RE2 pattern and priority, learned by task type, tombstones and stale versions", () => {
  const table = new RoutingTable();
  table.apply("coding", JSON.stringify(learned({ learned: 1 }, { version: 2 })));
  assert.equal(table.apply("coding", JSON.stringify(learned({ old: 1 }))), null);
  table.apply("rule:1", JSON.stringify(manual(1, "(?i)algorithm", "deep-model", 100)));
  table.apply("rule:2", JSON.stringify(manual(2, "hello", "low", -5)));
  table.apply("rule:3", JSON.stringify(manual(3, "(a)\\1", "never", 1000)));  // not RE2: ignored
  assert.equal(table.route("coding", "Implement an ALGORITHM", { key: "k" }), "deep-model");
  assert.equal(table.route("coding", "hello there", { key: "k" }), "learned");
  assert.equal(table.route("chat", "hello there", { key: "k" }), "low");
  assert.equal(table.route("chat", "nothing", { key: "k" }), null);
  table.apply("coding", null);
  assert.equal(table.route("coding", "x", { key: "k" }), null);
  assert.equal(table.apply("bad", JSON.stringify({ ...learned({ a: 1 }), layer: 3, version: 0 })), null);  // skipped, counted
  assert.equal(table.refused, 1);
  assert.match(table.lastRefusal, /refused/);
});

test("any record on the topic is survived, skipped and counted; a version cannot be pushed out of reach", () => {
  const table = new RoutingTable();
  for (const [key, value] of [["coding", '{"version": 1}'], ["coding", "not json"], ["experiment:x", "{}"], ["coding", "[]"]]) {
    assert.equal(table.apply(key, value), null);
  }
  assert.equal(table.refused, 4);
  assert.match(table.lastRefusal, /coding/);
  assert.ok(table.apply("coding", JSON.stringify(learned({ m: 1 }, { version: 12 }))));
  assert.equal(table.apply("coding", JSON.stringify(learned({ attacker: 1 }, { version: 2 ** 53 - 1 }))), null);
  assert.equal(table.refused, 5);
  assert.match(table.lastRefusal, /jumps/);
  assert.ok(table.apply("coding", JSON.stringify(learned({ m: 1 }, { version: 13 }))));
  assert.equal(table.route("coding", "", { key: "r" }), "m");
});
