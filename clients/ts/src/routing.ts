// What a router does with the published rules: the same steps as worker/routing/table.py, so the
// Python and TypeScript clients choose the same model for the same rules and the same request id.
import { createHash } from "node:crypto";
import { RE2JS } from "re2js";
import type { RoutingHeuristic } from "./generated/routing-heuristic.js";
import { checkHeuristic } from "./contract.js";

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
    for (const m of ordered) {
      cumulative += weights.get(m)!;
      if (target < cumulative) return m;
    }
    return ordered[ordered.length - 1];
  }
  for (const m of [...(rule.fallback_models ?? []), rule.preferred_model]) if (m && allowed(m)) return m;
  return null;
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

/** The latest version of every rule; manual rules match by RE2 pattern, learned ones by task type. */
export class RoutingTable {
  readonly rules = new Map<string, RoutingHeuristic>();

  /** Take one topic record (null value: a tombstone); returns the rule when it changed the table. */
  apply(key: string, value: Buffer | string | null): RoutingHeuristic | null {
    if (value === null) {
      this.rules.delete(key);
      return null;
    }
    const rule = JSON.parse(value.toString()) as RoutingHeuristic;
    checkHeuristic("routing heuristic", rule);
    const known = this.rules.get(key);
    if (known && known.version >= rule.version) return null;
    this.rules.set(key, rule);
    return rule;
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
    const rule = this.choose(taskType, text);
    if (!rule) return null;
    return chooseModel(rule, options.key !== undefined ? hashUnit(options.key) : Math.random(), options.candidates);
  }
}
