"""Off-policy estimates where the truth is known: seeded worlds in which a logging router selects
models by request difficulty, and the estimate of another rule must cover what that rule really gives."""

from __future__ import annotations

import numpy as np
import pytest

from worker.routing.counterfactual import (
    MIN_EFFECTIVE_CALLS,
    LoggedTally,
    difference,
    estimate,
    quality,
    single_model,
    unsupported,
)

RUNS = 300
CALLS = 3000
TASK = "coding"
# success probability and mean cost of each model as a function of difficulty d in [0, 1)
CHEAP = ("cheap", lambda d: 0.98 - 0.5 * d, lambda d: 0.001 * (1 + d))
STRONG = ("strong", lambda d: 0.97 - 0.1 * d, lambda d: 0.010 * (1 + d))
COST_SIGMA = 1.0  # lognormal cost noise: heavy-tailed, mean 1


def truth(model, rule_share_of_cheap=None) -> tuple[float, float]:
    """Exact success and cost per call of a rule over d ~ U(0, 1) (numerical integral)."""
    d = (np.arange(100_000) + 0.5) / 100_000
    if rule_share_of_cheap is None:
        _, success, cost = model
        return float(success(d).mean()), float(cost(d).mean())
    s = rule_share_of_cheap * CHEAP[1](d) + (1 - rule_share_of_cheap) * STRONG[1](d)
    c = rule_share_of_cheap * CHEAP[2](d) + (1 - rule_share_of_cheap) * STRONG[2](d)
    return float(s.mean()), float(c.mean())


def logged(seed: int, cheap_share_of, models=(CHEAP, STRONG), plain: dict | None = None) -> dict:
    """One day of a router that sends easy requests to the cheap model: (task, model) -> tally. `plain`
    collects each model's unweighted [successes, calls]: what the old arithmetic read."""
    rng = np.random.default_rng(seed)
    d = rng.random(CALLS)
    p_first = cheap_share_of(d)
    first = rng.random(CALLS) < p_first
    cells = {(TASK, m[0]): LoggedTally() for m in models}
    noise = rng.lognormal(-(COST_SIGMA**2) / 2, COST_SIGMA, CALLS)
    u = rng.random(CALLS)
    for i in range(CALLS):
        model, p = (models[0], p_first[i]) if first[i] else (models[1], 1 - p_first[i])
        _, success, cost = model
        ok = bool(u[i] < success(d[i]))
        cells[(TASK, model[0])].add(ok, float(cost(d[i]) * noise[i]), float(p))
        if plain is not None:
            counts = plain.setdefault(model[0], [0, 0])
            counts[0] += ok
            counts[1] += 1
    return cells


def by_difficulty(d):
    return np.where(d < 0.5, 0.9, 0.2)  # easy: mostly the cheap model; hard: mostly the strong one


def coverage(estimates, true_value) -> float:
    covered = [e.low <= true_value <= e.high for e in estimates if e.value is not None]
    assert len(covered) == len(estimates), "every run should have an estimate"
    return sum(covered) / len(covered)


def test_selection_by_difficulty_is_corrected_and_the_interval_covers_the_truth():
    true_success, true_cost = truth(CHEAP)
    plain: dict = {}
    runs = [logged(seed, by_difficulty, plain=plain) for seed in range(RUNS)]
    success = [estimate(cells, single_model(TASK, "cheap"), "success") for cells in runs]
    cost = [estimate(cells, single_model(TASK, "cheap"), "cost") for cells in runs]
    naive_success = plain["cheap"][0] / plain["cheap"][1]  # the old arithmetic: its average on easy requests
    assert naive_success > true_success + 0.06, "the world must make the naive figure wrong"
    assert coverage(success, true_success) >= 0.90
    assert coverage(cost, true_cost) >= 0.90
    assert abs(np.median([e.value for e in success]) - true_success) < 0.01


def test_six_identical_models_give_differences_whose_intervals_cover_zero():
    """The old arithmetic reported +0.24 pp for rules over six identical models; the truth is zero."""
    shares = {"m1": 0.5, "m2": 0.2, "m3": 0.1, "m4": 0.1, "m5": 0.05, "m6": 0.05}  # a learned split
    names = list(shares)
    intervals: dict[str, list] = {name: [] for name in names}
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        d = rng.random(CALLS)
        chosen = rng.choice(len(names), size=CALLS, p=list(shares.values()))
        ok = rng.random(CALLS) < CHEAP[1](d)
        cells = {(TASK, name): LoggedTally() for name in names}
        for i in range(CALLS):
            name = names[chosen[i]]
            cells[(TASK, name)].add(bool(ok[i]), 0.001, shares[name])
        for name, found in intervals.items():
            found.append(difference(cells, single_model(TASK, name), {TASK: shares}, "success"))
    for found in intervals.values():
        assert coverage(found, 0.0) >= 0.90


def test_a_better_rule_is_found_better_and_its_gain_covered():
    current, better = 0.7, 0.2  # share of the cheap model under each rule
    gain = truth(None, better)[0] - truth(None, current)[0]
    assert gain > 0.05
    found = []
    for seed in range(RUNS):
        cells = logged(seed, by_difficulty)
        rule = {TASK: {"cheap": better, "strong": 1 - better}}
        baseline = {TASK: {"cheap": current, "strong": 1 - current}}
        found.append(difference(cells, rule, baseline, "success"))
    assert coverage(found, gain) >= 0.90
    assert np.mean([e.low > 0 for e in found]) >= 0.8  # and usually known to be better


def test_a_model_the_logs_never_chose_gets_a_reason_not_a_number():
    cells = logged(1, lambda d: np.ones_like(d))  # the strong model never drawn
    cells[(TASK, "strong")] = LoggedTally()
    result = estimate(cells, single_model(TASK, "strong"), "success")
    assert result.value is None and "no call to strong" in result.reason
    assert unsupported(cells, single_model(TASK, "other")) == [
        f"{TASK}: no call to other logged with a route_probability"
    ]


def test_too_few_effective_calls_give_a_reason():
    cells = {(TASK, "a"): LoggedTally(), (TASK, "b"): LoggedTally()}
    for _ in range(500):
        cells[(TASK, "a")].add(True, 0.01, 0.99)
    for _ in range(5):
        cells[(TASK, "b")].add(True, 0.01, 0.01)
    result = estimate(cells, single_model(TASK, "b"), "success")
    assert result.value is None and result.effective_calls < MIN_EFFECTIVE_CALLS
    assert "worth" in result.reason


def test_propensities_out_of_bounds_are_counted_not_weighted():
    tally = LoggedTally()
    tally.add(True, 0.1, None)
    tally.add(True, 0.1, 1e-9)
    tally.add(False, 0.1, 0.5)
    assert (tally.calls, tally.unweighted, tally.weight) == (1, 2, 2.0)
    with pytest.raises(ValueError, match="latency"):
        tally.sums("latency")


def test_a_rule_whose_routers_log_no_propensity_gets_one_line_with_the_reason():
    from worker.reporting.report import counterfactual_lines
    from worker.routing.counterfactual import ASSUMPTIONS, against_current

    found = against_current(TASK, "learned:coding@v2", 1_790_000_000.0, {"a": 1.0}, {}, total_calls=1200)
    assert (found.calls, found.unweighted, found.alternatives) == (0, 1200, [])
    lines = counterfactual_lines([found], ASSUMPTIONS)
    assert lines[1] == (
        "  coding, learned:coding@v2 since 2026-09-21 14:13 UTC: no figure: none of its 1,200 calls since then "
        "carries a route_probability (its routers do not log one)"
    )


# the chance a judge scores an answer 1, by difficulty: the cheap model's answers fall off with it
QUALITY = {"cheap": lambda d: 0.9 - 0.5 * d, "strong": lambda d: 0.9 - 0.1 * d}
DAY_S = 86_400.0


def judged_by(seed: int, delay_mean_s: dict[str, float], share_judged: float = 0.3) -> tuple[dict, dict]:
    """What a report reads at the end of a day of calls routed by difficulty: each call judged with the
    same chance whatever its model, its verdict arriving after an exponential delay (mean per model);
    verdicts still on their way are not counted. ((task, model) -> all calls' tally, -> judged calls')."""
    rng = np.random.default_rng(10_000 + seed)
    d = rng.random(CALLS)
    p_cheap = by_difficulty(d)
    cheap = rng.random(CALLS) < p_cheap
    p = np.where(cheap, p_cheap, 1 - p_cheap)
    at = rng.random(CALLS) * DAY_S
    delay = np.where(
        cheap, rng.exponential(delay_mean_s["cheap"], CALLS), rng.exponential(delay_mean_s["strong"], CALLS)
    )
    arrived = (rng.random(CALLS) < share_judged) & (at + delay <= DAY_S)
    score = (rng.random(CALLS) < np.where(cheap, QUALITY["cheap"](d), QUALITY["strong"](d))).astype(float)
    cells, judged = {}, {}
    for name, mine in (("cheap", cheap), ("strong", ~cheap)):
        w = 1 / p[mine]
        cells[(TASK, name)] = LoggedTally(calls=int(mine.sum()), weight=float(w.sum()), weight_sq=float((w * w).sum()))
        w, q = 1 / p[mine & arrived], score[mine & arrived]
        judged[(TASK, name)] = LoggedTally(
            calls=len(w),
            weight=float(w.sum()),
            weight_sq=float((w * w).sum()),
            quality_w=float((q * w).sum()),
            quality_w_sq=float((q * w * w).sum()),
            quality_sq_w_sq=float((q * q * w * w).sum()),
        )
    return cells, judged


def true_quality(share_of_cheap: float) -> float:
    d = (np.arange(100_000) + 0.5) / 100_000
    return float((share_of_cheap * QUALITY["cheap"](d) + (1 - share_of_cheap) * QUALITY["strong"](d)).mean())


CURRENT = {TASK: {"cheap": 0.7, "strong": 0.3}}
BETTER = {TASK: {"cheap": 0.2, "strong": 0.8}}


@pytest.mark.parametrize(
    "delays",
    [{"cheap": 7200.0, "strong": 7200.0}, {"cheap": 7200.0, "strong": 86_400.0}],
    ids=["verdicts after 2 h for both models", "the strong model's after 24 h"],
)
def test_quality_from_late_feedback_covers_the_truth_even_when_one_model_is_judged_later(delays):
    """Verdicts arrive hours after the call and the report reads what has arrived. Every model alone,
    the current rule, and a better rule against it are covered, also when the strong model's verdicts
    take 24 h (only 37 % of them have arrived by the report, against 92 % of the cheap model's). 1,000
    runs: the strong model alone then rests on about 60 effective judged calls, where the coverage is
    90.2 % (the normal interval's was 88.7 %: hence Wilson's at the design effect's sample size)."""
    runs = [judged_by(seed, delays) for seed in range(1000)]
    for share, rule in ((1.0, single_model(TASK, "cheap")), (0.0, single_model(TASK, "strong")), (0.7, CURRENT)):
        assert coverage([quality(cells, judged, rule) for cells, judged in runs], true_quality(share)) >= 0.90, share
    gains = [quality(cells, judged, BETTER, CURRENT) for cells, judged in runs]
    assert coverage(gains, true_quality(0.2) - true_quality(0.7)) >= 0.90
    assert np.mean([e.low > 0 for e in gains]) >= 0.8


def test_mixing_the_judged_calls_directly_would_lean_to_the_model_judged_sooner():
    """Why quality mixes each model's judged mean by all of its calls: the plain estimate on the judged
    calls alone leans to the model whose verdicts arrive sooner."""
    runs = [judged_by(seed, {"cheap": 7200.0, "strong": 86_400.0}) for seed in range(RUNS)]
    plain = [estimate(judged, CURRENT, "quality") for _, judged in runs]
    mixed = [quality(cells, judged, CURRENT) for cells, judged in runs]
    truth = true_quality(0.7)
    assert np.median([e.value for e in plain]) < truth - 0.02 < truth - 0.005 < np.median([e.value for e in mixed])
    assert coverage(plain, truth) < coverage(mixed, truth)
