"""How much of the per-task-type oracle's gain any per-task-type learner can capture in one pass.

An idealised learner, not an online one: from the first prompt it routes each task type by the
accuracy gap it would estimate from the feedback of the whole pass (a `share` of the prompts, half
on each model), optionally shrunk toward the table's mean gap by `shrink` feedback; it knows every
cost exactly and pays nothing to learn. An online learner has, on average over the pass, about half
that feedback. Printed: the median over `--reps` draws of the normalised cost c and of the share of
the oracle's gain over random routing captured at c, for each V.

    .venv/bin/python bench/replay_bound.py --data ../shared/data/routing-outcomes/mmlu-half-a.csv
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.routing_eval import replay

VALUES = (0.006, 0.008, 0.011, 0.015, 0.02, 0.03)


def bound(outcomes: replay.Outcomes, share: float, shrink: float, reps: int, seed: int = 0) -> list[str]:
    weak, strong = outcomes.models
    (weak_acc, weak_cost), (strong_acc, strong_cost) = outcomes.alone(weak), outcomes.alone(strong)
    oracle = replay.oracle(outcomes)
    groups: dict[str, list[replay.Prompt]] = defaultdict(list)
    for p in outcomes.prompts:
        groups[p.task_type].append(p)
    tasks = []
    for prompts in groups.values():
        n = len(prompts)
        acc_w = sum(p.correct[weak] for p in prompts) / n
        acc_s = sum(p.correct[strong] for p in prompts) / n
        extra = sum(outcomes.cost(strong, p) - outcomes.cost(weak, p) for p in prompts)
        tasks.append((n, acc_w, acc_s, extra))
    mean_gap = float(np.average([s - w for _, w, s, _ in tasks], weights=[n for n, *_ in tasks]))
    rng = np.random.default_rng(seed)
    cells = []
    for v in VALUES:
        ratios, costs = [], []
        for _ in range(reps):
            correct = cost = 0.0
            for n, acc_w, acc_s, extra in tasks:
                judged = max(1, int(share * n / 2))
                gap = (rng.binomial(judged, acc_s) - rng.binomial(judged, acc_w)) / judged
                gap = (gap * judged + mean_gap * shrink) / (judged + shrink)
                if v * gap * n > extra:
                    correct, cost = correct + acc_s * n, cost + extra
                else:
                    correct += acc_w * n
            pgr = (correct / len(outcomes.prompts) - weak_acc) / (strong_acc - weak_acc)
            c = cost / (strong_cost - weak_cost)
            ratios.append((pgr - c) / (oracle.at(c) - c))
            costs.append(c)
        cells.append(f"V={v:g}: c {np.median(costs):.2f}, {np.median(ratios):.2f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    outcomes = replay.load(args.data)
    for share in (0.3, 0.15):
        for shrink in (0.0, 40.0):
            print(
                f"feedback {share:.0%} of prompts, shrink {shrink:g}: "
                + "; ".join(bound(outcomes, share, shrink, args.reps))
            )


if __name__ == "__main__":
    main()
