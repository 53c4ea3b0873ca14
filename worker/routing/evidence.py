"""Rows as the store reads them -> what routing weighs: decayed evidence, health windows, baselines.

Pure, so that the worker (rows from PostgreSQL) and the routing evaluation (rows from a simulated
store) feed the decision code in the same way. Evidence is weighted by age, halving every
`half_life_s`, so a model that recovered regains its share within minutes instead of carrying an
hour of old failures; the hour-long window only bounds what is read. Every window is bounded on
both sides: a row dated in the future (past `FUTURE_TOLERANCE_S`) judges nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from worker.calls import histogram
from worker.routing.scoring import Evidence, Quality, wilson_lower_bound

ANY_TASK = "*"  # the scope of a model-wide health window or breaker
FUTURE_TOLERANCE_S = 5.0  # clock skew between the gateway and the worker that is still believed
BASELINE_GAP_S = 120.0  # the latency baseline leaves out the most recent minutes: the incident being judged
BASELINE_MIN_CALLS = 100  # a baseline from fewer calls is no baseline: latency is then not judged


@dataclass(frozen=True, slots=True)
class MinuteRow:
    """One row of model_performance_minutes."""

    minute: float  # epoch seconds at the start of the minute
    model_id: str
    task_type: str
    layer: str
    calls: int
    successes: int
    cost_usd: float
    latency_histogram: histogram.Histogram


@dataclass(frozen=True, slots=True)
class QualityRow:
    """One row of model_quality_minutes: feedback on the answers of the calls made in that minute."""

    minute: float
    model_id: str
    task_type: str
    name: str
    count: int
    score_sum: float


@dataclass(frozen=True, slots=True)
class SecondRow:
    """One row of model_health: a 1-second bucket of one model on one task type."""

    second: float  # epoch seconds at the start of the bucket
    model_id: str
    task_type: str
    calls: int
    failures: int
    latency_histogram: histogram.Histogram


@dataclass(frozen=True, slots=True)
class Window:
    seconds: float
    calls: int
    failures: int
    p95_latency_ms: float | None
    latency: histogram.Histogram | None = None  # the calls' latencies: how many lie above a limit

    def above(self, limit_ms: float) -> int | None:
        """Calls whose latency lies above `limit_ms` (None without a histogram)."""
        if self.latency is None:
            return None
        return int(sum(n for b, n in self.latency.items() if histogram.bucket_value(b) > limit_ms))


def decay_weight(age_s: float, half_life_s: float) -> float:
    return 0.5 ** (max(0.0, age_s) / half_life_s)


def decayed_evidence(
    rows: Iterable[MinuteRow],
    now: float,
    *,
    window_s: float,
    half_life_s: float,
    incidents: dict[tuple[str, str], tuple[float, float]] | None = None,
) -> dict[str, list[Evidence]]:
    """Per task type, each model's evidence with every minute weighted by its age (midpoint to now).

    `incidents`: (model, task type or ANY_TASK) -> (start, end) of an incident that is over; the
    minutes that overlap it are left out for that model.
    """
    incidents = incidents or {}
    acc: dict[tuple[str, str], list] = {}
    for r in rows:
        if not now - window_s <= r.minute <= now + FUTURE_TOLERANCE_S:
            continue
        if incidents and any(
            span[0] < r.minute + 60.0 and r.minute <= span[1]
            for key in ((r.model_id, r.task_type), (r.model_id, ANY_TASK))
            if (span := incidents.get(key)) is not None
        ):
            continue
        w = decay_weight(now - (r.minute + 30.0), half_life_s)
        a = acc.get((r.task_type, r.model_id))
        if a is None:
            a = acc[(r.task_type, r.model_id)] = [0, 0.0, 0.0, 0.0, {}, {}]
        a[0] += r.calls
        a[1] += w * r.calls
        a[2] += w * r.successes
        a[3] += w * r.cost_usd
        histogram.add_into(a[4], r.latency_histogram, w)
        a[5][r.layer] = a[5].get(r.layer, 0.0) + w * r.calls + 1e-9 * r.calls
    by_task: dict[str, list[Evidence]] = {}
    for (task, model), (raw, calls, successes, cost, hist, layers) in sorted(acc.items()):
        layer = max(sorted(layers), key=layers.get)
        by_task.setdefault(task, []).append(
            Evidence(
                model,
                layer,
                calls,
                successes,
                (histogram.quantile(hist, 0.95) or 0.0) if calls > 0 else 0.0,
                cost / calls if calls > 0 else 0.0,
                raw_calls=raw,
            )
        )
    return by_task


def baselines(
    rows: Iterable[MinuteRow],
    now: float,
    *,
    window_s: float,
    gap_s: float = BASELINE_GAP_S,
    incidents: dict[tuple[str, str], tuple[float, float]] | None = None,
) -> dict[tuple[str, str], float]:
    """Usual p95 latency per (model, task type) and per (model, ANY_TASK), from whole minutes that
    ended at least `gap_s` ago (an incident in progress does not raise its own baseline), and only
    where at least BASELINE_MIN_CALLS calls make it one. Minutes inside an `incident` of the (model,
    scope) (ANY_TASK: every task type of the model) are left out too: a long incident, or the probes
    sent during one, never becomes the norm it is judged against."""
    spans = incidents or {}
    hists: dict[tuple[str, str], histogram.Histogram] = {}
    for r in rows:
        if r.minute < now - window_s or r.minute + 60.0 > now - gap_s:
            continue
        if _inside(spans.get((r.model_id, r.task_type)), r.minute) or _inside(
            spans.get((r.model_id, ANY_TASK)), r.minute
        ):
            continue
        for key in ((r.model_id, r.task_type), (r.model_id, ANY_TASK)):
            histogram.add_into(hists.setdefault(key, {}), r.latency_histogram)
    return {
        key: p95
        for key, h in hists.items()
        if sum(h.values()) >= BASELINE_MIN_CALLS and (p95 := histogram.quantile(h, 0.95))
    }


def _inside(span: tuple[float, float] | None, minute: float) -> bool:
    return span is not None and minute + 60.0 > span[0] and minute < span[1]


def health_windows(
    rows: Iterable[SecondRow], now: float, windows_s: Iterable[int]
) -> dict[tuple[str, str], list[Window]]:
    """Trailing windows per (model, task type) and per (model, ANY_TASK).

    The model-wide window pools every task type but the model's worst one in that window (by
    failure lower bound for the failure rate, by p95 for latency): a failure confined to one task
    type excludes the model for that task type only, and a model-wide incident shows in the rest.
    """
    spans = sorted(windows_s)
    cells: dict[tuple[str, str], list[list]] = {}
    for r in rows:
        if r.second > now + FUTURE_TOLERANCE_S:
            continue
        age = now - r.second
        per_span = cells.get((r.model_id, r.task_type))
        if per_span is None:
            per_span = cells[(r.model_id, r.task_type)] = [[0, 0, {}] for _ in spans]
        for i, span in enumerate(spans):
            if age <= span:
                cell = per_span[i]
                cell[0] += r.calls
                cell[1] += r.failures
                histogram.add_into(cell[2], r.latency_histogram)
    out: dict[tuple[str, str], list[Window]] = {}
    by_model: dict[str, list[list[list]]] = {}
    for (model, task), per_span in cells.items():
        out[(model, task)] = [
            Window(span, c, f, histogram.quantile(h, 0.95), h) for span, (c, f, h) in zip(spans, per_span)
        ]
        by_model.setdefault(model, []).append(per_span)
    for model, tasks in by_model.items():
        if len(tasks) < 2:
            continue
        windows = []
        for i, span in enumerate(spans):
            here = [t[i] for t in tasks]
            worst_failing = max(range(len(here)), key=lambda j: wilson_lower_bound(here[j][1], here[j][0]))
            p95s = [histogram.quantile(c[2], 0.95) or 0.0 for c in here]
            slowest = max(range(len(here)), key=lambda j: p95s[j])
            calls = sum(c[0] for j, c in enumerate(here) if j != worst_failing)
            failures = sum(c[1] for j, c in enumerate(here) if j != worst_failing)
            rest = histogram.merge(*(c[2] for j, c in enumerate(here) if j != slowest))
            windows.append(Window(span, calls, failures, histogram.quantile(rest, 0.95), rest))
        out[(model, ANY_TASK)] = windows
    return out


def since_window(
    rows: Iterable[SecondRow], model_id: str, scope: str, since: float, now: float, settle_s: float = 0.0
) -> Window:
    """Calls of a model (on a task type, or on all with ANY_TASK) made after `since`: a half-open
    breaker judges only calls made after it started probing.

    Events arrive when calls complete, so the calls of a slow model that have come back are its fast
    ones: judged on completions, a model in a latency incident looks healthy. With `settle_s`, the
    probes are a cohort by start time (completion second minus latency): calls that started in
    [since, now - settle_s], every one of which has had `settle_s` to come back. Failures are shared
    out to the cohort in proportion to its calls in each second (rows count failures, not their latency).
    """
    first = math.ceil(since)
    calls, failures = 0, 0.0
    h: histogram.Histogram = {}
    latest_start = now - settle_s
    for r in rows:
        if r.model_id != model_id or (scope != ANY_TASK and r.task_type != scope):
            continue
        if not first <= r.second <= now + FUTURE_TOLERANCE_S:
            continue
        if settle_s <= 0:
            calls += r.calls
            failures += r.failures
            histogram.add_into(h, r.latency_histogram)
            continue
        kept = 0
        for bucket, n in r.latency_histogram.items():
            started = r.second - histogram.bucket_value(bucket) / 1000.0
            if since <= started <= latest_start:
                h[bucket] = h.get(bucket, 0) + n
                kept += n
        total = sum(r.latency_histogram.values())
        calls += kept
        failures += r.failures * kept / total if total else 0.0
    return Window(now - since, calls, round(failures), histogram.quantile(h, 0.95), h)


def with_quality(
    evidence: dict[str, list[Evidence]],
    rows: Iterable[QualityRow],
    now: float,
    *,
    window_s: float,
    half_life_s: float,
    names: Callable[[str], str | None] = lambda task_type: None,
    prior_calls: float = 40.0,
) -> dict[str, list[Evidence]]:
    """Each task type's evidence with the quality of its answers, where the task type has feedback.

    A task type weighs one feedback name: `names(task_type)`, else the name with the most feedback
    in the window. Scores are weighted by the age of the call they judge, like the calls. Every model
    of such a task type gets a Quality whose prior comes from the rest of the feedback (`quality_priors`):
    a rare task type, or a model with little feedback on it, borrows strength from the others.
    """
    sums: dict[tuple[str, str, str], list[float]] = {}  # (task, name, model) -> raw, weighted count, weighted sum
    for r in rows:
        if not now - window_s <= r.minute <= now + FUTURE_TOLERANCE_S or r.count <= 0:
            continue
        w = decay_weight(now - (r.minute + 30.0), half_life_s)
        acc = sums.setdefault((r.task_type, r.name, r.model_id), [0.0, 0.0, 0.0])
        acc[0] += r.count
        acc[1] += w * r.count
        acc[2] += w * r.score_sum
    if not sums:
        return evidence
    most: dict[str, dict[str, float]] = {}  # task -> name -> raw feedback
    for (task, name, _), (raw, _, _) in sums.items():
        most.setdefault(task, {})
        most[task][name] = most[task].get(name, 0.0) + raw
    priors: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
    out = dict(evidence)
    for task, models in evidence.items():
        name = names(task) or (max(sorted(most[task]), key=most[task].__getitem__) if task in most else "")
        if not name or not any((task, name, e.model_id) in sums for e in models):
            continue
        if name not in priors:
            cells = {(t, m): (c, total) for (t, n, m), (_, c, total) in sums.items() if n == name and c > 0}
            priors[name] = quality_priors(cells, prior_calls)
        with_q = []
        for e in models:
            raw, count, total = sums.get((task, name, e.model_id), (0.0, 0.0, 0.0))
            prior = priors[name].get((task, e.model_id), (1.0, 1.0))
            with_q.append(replace(e, quality=Quality(name, count, total, int(raw), prior)))
        out[task] = with_q
    return out


def quality_priors(
    cells: dict[tuple[str, str], tuple[float, float]], max_strength: float
) -> dict[tuple[str, str], tuple[float, float]]:
    """A Beta prior for every (task type, model) pair, from all the feedback of one name (empirical Bayes).

    `cells`: (task type, model) -> (weighted feedback count, weighted sum of scores). The prior of
    model m on task type t is what m's feedback on the *other* task types says: their pooled mean,
    with a strength, in feedback, of mean (1 - mean) / the spread of m's means across those task
    types (beyond sampling noise), at most `max_strength`. A model that does about as well
    everywhere brings that to a rare task type; a model whose quality differs between task types
    brings little, and each task type's own feedback decides. Fewer than two other task types with
    feedback: no pooling, Beta(1, 1).

    Measured against a two-way model (task level from the other models plus model strength) and a
    fixed strength, on the replay of real outcomes (docs/routing.md): the two-way model did worse
    (its task level rests on the models the split starves of traffic), and a fixed strength of 40
    did better there but sent a subject to the wrong model in half the runs of a two-subject test
    whose subjects differ (tests/integration/test_quality_routing.py).
    """
    tasks = sorted({t for t, _ in cells})
    models = sorted({m for _, m in cells})
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for m in models:
        mine = {t: cells[(t, m)] for t in tasks if (t, m) in cells}
        for t in tasks:
            others = [(c, total) for o, (c, total) in mine.items() if o != t and c > 0]
            seen = sum(c for c, _ in others)
            if len(others) < 2 or seen <= 0:
                out[(t, m)] = (1.0, 1.0)
                continue
            centre = sum(total for _, total in others) / seen
            excess = sum(
                c * ((total / c - centre) ** 2 - (total / c) * (1 - total / c) / max(c, 1.0)) for c, total in others
            )
            # the spread of the task means beyond noise, corrected for the one mean fitted; at least a point
            spread = max(excess / seen * len(others) / (len(others) - 1), 1e-4)
            centre = min(0.98, max(0.02, centre))
            k = min(max_strength, max(0.0, centre * (1 - centre) / spread - 1))
            out[(t, m)] = (1.0 + k * centre, 1.0 + k * (1 - centre))
    return out
