"""The confidence sequence keeps its promise when watched continuously: simulated experiments."""

import numpy as np

from worker.experiments.sequential import ALPHA, ArmStats, difference, radius

LOOKS = np.unique(np.geomspace(30, 20_000, 120).astype(int))  # an operator refreshing the dashboard


def ever_declared(p_a: float, p_b: float, experiments: int, tau: float, seed: int) -> np.ndarray:
    """Per simulated experiment: did any look declare a difference (success rates, one call per arm per step)?"""
    rng = np.random.default_rng(seed)
    n_max = int(LOOKS[-1])
    a = rng.random((experiments, n_max)) < p_a
    b = rng.random((experiments, n_max)) < p_b
    ca, cb = np.cumsum(a, axis=1), np.cumsum(b, axis=1)
    declared = np.zeros(experiments, dtype=bool)
    for n in LOOKS:
        for i in np.flatnonzero(~declared):
            sa, sb = float(ca[i, n - 1]), float(cb[i, n - 1])  # successes are 0/1: the sum of squares is the sum
            if difference(ArmStats(int(n), sa, sa), ArmStats(int(n), sb, sb), tau).declared:
                declared[i] = True
    return declared


def test_a_a_experiments_watched_at_every_look_declare_a_difference_at_most_alpha_of_the_time():
    declared = ever_declared(0.9, 0.9, experiments=2000, tau=0.03, seed=1)
    assert declared.mean() <= ALPHA, f"{declared.mean():.3f} of A/A experiments declared a difference"


def test_a_three_point_difference_in_success_rate_is_found_within_20000_calls_per_arm_with_80_percent_power():
    """docs/experiments.md names this size: 90 % against 93 % success, tau = 0.03."""
    declared = ever_declared(0.9, 0.93, experiments=400, tau=0.03, seed=2)
    assert declared.mean() >= 0.8, f"power {declared.mean():.2f}"


def test_the_interval_narrows_as_calls_accumulate_and_is_unbounded_before_enough_calls():
    assert radius(0.01, 0.03) > radius(0.001, 0.03) > radius(0.0001, 0.03) > 0
    few = difference(ArmStats.of([1, 0] * 10), ArmStats.of([1] * 20), tau=0.03)
    assert few.low == float("-inf") and not few.declared
    stats = ArmStats.of([1.0, 2.0, 3.0, 4.0])
    assert stats.mean == 2.5 and abs(stats.variance - 5 / 3) < 1e-12
