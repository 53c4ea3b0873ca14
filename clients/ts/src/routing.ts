// What a router does with the published rules: the same steps as worker/gateway/table.py, so the
// Python and TypeScript clients choose the same model for the same rules and the same request id.
import { createHash } from "node:crypto";
import { RE2JS } from "re2js";
import type { RoutingHeuristic } from "./generated/routing-heuristic.js";
import type { Experiment, ArmState } from "./generated/routing-experiment.js";
import { checkExperiment, checkHeuristic } from "./contract.js";
import { Verifier, type RecordHeaders } from "./signing.js";

const EXPERIMENT_PREFIX = "experiment:";

/** What a router decided for one request, and what its call events carry (worker/gateway/table.py Route). */
export interface Route {
  model: string | null;
  ruleId: string | null;
  experimentId: string | null;
  arm: string | null;
  /** The share of the split the model was drawn from (1: a fixed model or a fallback; null: no model). */
  probability: number | null;
}

type Tags = { routing_rule_id?: string; experiment_id?: string; arm?: string; route_probability?: number };

/** `routing_rule_id`, `experiment_id`, `arm` and `route_probability` for the call events (only those set). */
export function eventFields(route: Route): Tags {
  const out: Tags = {};
  if (route.ruleId !== null) out.routing_rule_id = route.ruleId;
  if (route.experimentId !== null) out.experiment_id = route.experimentId;
  if (route.arm !== null) out.arm = route.arm;
  if (route.probability !== null && route.probability !== undefined) out.route_probability = route.probability;
  return out;
}

/** The arm whose range holds hashUnit(experimentId + "\n" + unit); shares are normalised (worker/gateway/assignment.py). */
export function armOf(experimentId: string, unit: string, shares: Array<[string, number]>): string {
  const total = shares.reduce((a, [, s]) => a + s, 0);
  if (!shares.length || total <= 0) throw new Error("an experiment needs at least one arm with a positive share");
  const at = hashUnit(`${experimentId}\n${unit}`) * total;
  let edge = 0;
  for (const [name, share] of shares) {
    edge += share;
    if (at < edge) return name;
  }
  return shares[shares.length - 1][0];
}

export const EXPLORE_SHARE = 0.01;
const MAX_EXPLORE_TOTAL = 0.05;
const MAX_PATTERN_LENGTH = 512;

/** A number in [0, 1) from the first 8 bytes of SHA-256(key), big-endian. */
export function hashUnit(key: string): number {
  const digest = createHash("sha256").update(key, "utf8").digest();
  return Number(digest.readBigUInt64BE(0)) / 2 ** 64;
}

/** Python sorts strings by code point; so do we (not by UTF-16 unit, not by locale). */
function byCodePoint(a: string, b: string): number {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** The model for one request under `rule`, for a draw `u` in [0, 1); null: nothing may be used. */
export function chooseModel(rule: RoutingHeuristic, u: number, candidates?: string[], exploreShare = EXPLORE_SHARE): string | null {
  return chooseWithProbability(rule, u, candidates, exploreShare)[0];
}

/** The model and the probability with which the split gives it (choose_with_probability in Python). */
export function chooseWithProbability(rule: RoutingHeuristic, u: number, candidates?: string[],
                                      exploreShare = EXPLORE_SHARE): [string | null, number | null] {
  const excluded = rule.excluded ?? {};
  const reachable = candidates ? new Set(candidates) : null;
  const allowed = (m: string) => !(m in excluded) && (reachable === null || reachable.has(m));
  let weights = new Map<string, number>();
  for (const [m, w] of Object.entries(rule.weights ?? {})) if (w > 0 && allowed(m)) weights.set(m, w);
  if (candidates && rule.pattern == null) {
    const mentioned = new Set([...Object.keys(rule.weights ?? {}), ...Object.keys(rule.evidence ?? {}),
                               ...Object.keys(excluded), ...(rule.fallback_models ?? []), rule.preferred_model ?? ""]);
    const unmentioned = [...new Set(candidates)].filter((m) => !mentioned.has(m)).sort(byCodePoint);
    if (unmentioned.length) {
      const share = weights.size ? Math.min(exploreShare, MAX_EXPLORE_TOTAL / unmentioned.length) : 1 / unmentioned.length;
      const total = [...weights.values()].reduce((a, b) => a + b, 0);
      const scaled = new Map<string, number>();
      if (total) for (const [m, w] of weights) scaled.set(m, (w / total) * (1 - share * unmentioned.length));
      for (const m of unmentioned) scaled.set(m, share);
      weights = scaled;
    }
  }
  const total = [...weights.values()].reduce((a, b) => a + b, 0);
  if (total > 0) {
    const ordered = [...weights.keys()].sort(byCodePoint);
    const target = u * total;
    let cumulative = 0;
    let chosen = ordered[ordered.length - 1];
    for (const m of ordered) {
      cumulative += weights.get(m)!;
      if (target < cumulative) { chosen = m; break; }
    }
    return [chosen, Math.min(1, weights.get(chosen)! / total)];
  }
  for (const m of [...(rule.fallback_models ?? []), rule.preferred_model]) if (m && allowed(m)) return [m, 1];
  return [null, null];
}

const compiled = new Map<string, RE2JS | null>();
function matches(pattern: string, text: string): boolean {
  if (!compiled.has(pattern)) {
    let re: RE2JS | null = null;
    try {
      re = pattern.length <= MAX_PATTERN_LENGTH && pattern.length > 0 ? RE2JS.compile(pattern) : null;
    } catch {
      re = null; // not RE2: the rule is ignored, as the Python client does
    }
    compiled.set(pattern, re);
  }
  const re = compiled.get(pattern);
  return re ? re.matcher(text).find() : false;
}

/** Keep the highest version per key; null (a tombstone) drops the key. The record when it changed. */
/** The worker adds one per change: a larger jump is a forgery or a bug (the same bound as the Python client's). */
export const MAX_VERSION_STEP = 1_000_000;

function newest<T extends { version: number }>(held: Map<string, T>, key: string, record: T | null): T | null {
  if (record === null) {
    held.delete(key);
    return null;
  }
  const known = held.get(key);
  if (known && known.version >= record.version) return null;
  if (known && record.version > known.version + MAX_VERSION_STEP) {
    throw new Error(`version ${record.version} jumps more than ${MAX_VERSION_STEP} past ${known.version}`);
  }
  held.set(key, record);
  return record;
}

/** The latest version of every rule; manual rules match by RE2 pattern, learned ones by task type. */
export class RoutingTable {
  readonly rules = new Map<string, RoutingHeuristic>();
  readonly experiments = new Map<string, Experiment>();
  /** The running ones only: pick() never scans ended experiments. */
  readonly running = new Map<string, Experiment>();

  /** Records skipped: not signed by a trusted key, not valid, or an implausible version; and the last reason. */
  refused = 0;
  lastRefusal = "";
  readonly verifier: Verifier | null;

  /** `publicKeys`: base64 Ed25519 keys of the workers whose records to follow (ROUTING_SIGNING_KEY's public
   *  half); without them every valid record is followed, whoever wrote it. */
  constructor(options: { publicKeys?: string[] } = {}) {
    this.verifier = options.publicKeys?.length ? new Verifier(options.publicKeys) : null;
  }

  /** Take one topic record (null value: a tombstone); returns the rule (or experiment) when it changed the table.
   *  Anyone who can write to the topic can write anything, and the topic is compacted: a record that is not
   *  valid is skipped and counted (`refused`, `lastRefusal`), never thrown, so that no record stops a router. */
  apply(key: string, value: Buffer | string | null, headers?: RecordHeaders): RoutingHeuristic | Experiment | null {
    const unsigned = this.verifier?.refusal(key, value, headers) ?? null;
    if (unsigned !== null) {
      this.refused += 1;
      this.lastRefusal = `${JSON.stringify(key)}: ${unsigned}`;
      return null;
    }
    try {
      if (key.startsWith(EXPERIMENT_PREFIX)) {
        const exp = value === null ? null : (JSON.parse(value.toString()) as Experiment);
        if (value !== null) checkExperiment("routing experiment", exp);
        const changed = newest(this.experiments, key, exp);
        if (changed !== null || exp === null) {
          const kept = this.experiments.get(key);
          if (kept && kept.status === "running") this.running.set(key, kept);
          else this.running.delete(key);
        }
        return changed;
      }
      const rule = value === null ? null : (JSON.parse(value.toString()) as RoutingHeuristic);
      if (value !== null) checkHeuristic("routing heuristic", rule);
      return newest(this.rules, key, rule);
    } catch (error) {
      this.refused += 1;
      this.lastRefusal = `${JSON.stringify(key)}: ${(error as Error).message.slice(0, 300)}`;
      return null;
    }
  }

  choose(taskType: string, text = ""): RoutingHeuristic | null {
    let best: RoutingHeuristic | null = null;
    for (const rule of this.rules.values()) {
      if (!rule.active) continue;
      const applies = rule.pattern == null
        ? rule.task_type === taskType
        : (rule.task_type == null || rule.task_type === taskType) && matches(rule.pattern, text);
      if (applies && (!best || rule.priority > best.priority || (rule.priority === best.priority && rule.version > best.version))) {
        best = rule;
      }
    }
    return best;
  }

  /** The model for one request; `key` (a request id) makes it deterministic. Null: no rule, or nothing usable. */
  route(taskType: string, text = "", options: { key?: string; candidates?: string[] } = {}): string | null {
    return this.pick(taskType, text, options).model;
  }

  /** The running experiment covering `taskType` (the worker lets at most one cover a task type). */
  experimentFor(taskType: string): Experiment | null {
    let best: Experiment | null = null;
    for (const e of this.running.values()) {
      const covers = e.status === "running" && (e.task_types == null || e.task_types.includes(taskType));
      if (covers && (!best || byCodePoint(e.experiment_id, best.experiment_id) < 0)) best = e;
    }
    return best;
  }

  /** The model for one request and what its events carry, experiments included (RoutingTable.pick in Python). */
  pick(
    taskType: string,
    text = "",
    options: { key?: string; candidates?: string[]; unit?: string; u?: number; exploreShare?: number } = {},
  ): Route {
    const { key, candidates, unit, exploreShare = EXPLORE_SHARE } = options;
    const draw = options.u ?? (key !== undefined ? hashUnit(key) : Math.random());
    const exp = (unit || key) !== undefined ? this.experimentFor(taskType) : null;
    const who = exp ? (exp.unit === "session" && unit ? unit : key) : undefined;
    if (exp && who !== undefined) {
      const name = armOf(exp.experiment_id, who, exp.arms.map((a) => [a.name, a.share] as [string, number]));
      const arm = exp.arms.find((a) => a.name === name);
      if (arm && arm.stopped == null) {
        const route = this.armRoute(exp, arm, taskType, text, draw, candidates, exploreShare);
        if (route) return route;
      }
    }
    return this.learned(taskType, text, draw, candidates, exploreShare);
  }

  private learned(taskType: string, text: string, draw: number, candidates: string[] | undefined, exploreShare: number): Route {
    const rule = this.choose(taskType, text);
    if (!rule) return { model: null, ruleId: null, experimentId: null, arm: null, probability: null };
    const [model, probability] = chooseWithProbability(rule, draw, candidates, exploreShare);
    return { model, ruleId: `${rule.heuristic_id}@v${rule.version}`, experimentId: null, arm: null, probability };
  }

  private armRoute(exp: Experiment, arm: ArmState, taskType: string, text: string, draw: number,
                   candidates: string[] | undefined, exploreShare: number): Route | null {
    const tag = { experimentId: exp.experiment_id, arm: arm.name };
    const s = arm.strategy;
    const fixed = s.kind === "model" || (s.kind === "manual" && s.pattern && matches(s.pattern, text)) ? s.model ?? null : null;
    if (fixed !== null) {
      if (candidates && !candidates.includes(fixed)) return null; // unreachable: as usual, outside the experiment
      return { model: fixed, ruleId: `experiment:${exp.experiment_id}:${arm.name}`, ...tag, probability: 1 };
    }
    const rule = s.kind === "weights" ? (arm.routes ?? {})[taskType] : undefined;
    if (rule) {
      const [model, probability] = chooseWithProbability(rule, draw, candidates, exploreShare);
      return { model, ruleId: `${rule.heuristic_id}@v${rule.version}`, ...tag, probability };
    }
    const learned = this.learned(taskType, text, draw, candidates, exploreShare);
    return { model: learned.model, ruleId: learned.ruleId, ...tag, probability: learned.probability };
  }
}
