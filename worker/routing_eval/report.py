"""The evaluation's table (rich) and one PNG per scenario of each model's traffic share over time."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import cast

from rich.console import Console, JustifyMethod
from rich.table import Table

from worker.routing_eval.evaluate import Outcome
from worker.routing_eval.simulate import BIN_S, EPOCH

SMOOTH_BINS = 6  # the plotted share is over the last minute


def tables(outcomes_by_seed: dict[str, list[Outcome]]) -> tuple[Table, Table]:
    """Medians over seeds: the regret of every router per scenario, and the learned router's checks."""
    seeds = len(next(iter(outcomes_by_seed.values())))
    of = f"median of {seeds} seed{'s' if seeds > 1 else ''}"
    regret = Table(title=f"Regret against the oracle, percentage points of utility per call ({of})")
    routers = list(next(iter(outcomes_by_seed.values()))[0].runs)
    regret.add_column("scenario")
    for name in routers:
        regret.add_column(name, justify="right")
    checks = Table(title=f"Targets of the learned router ({of})")
    for column, justify in (
        ("scenario", "left"),
        ("check", "left"),
        ("measured", "right"),
        ("target", "right"),
        ("met", "center"),
    ):
        checks.add_column(column, justify=cast("JustifyMethod", justify))
    for name, outcomes in outcomes_by_seed.items():
        regret.add_row(name, *(f"{statistics.median(o.runs[r].regret_pp for o in outcomes):.3f}" for r in routers))
        for i, check in enumerate(outcomes[0].checks):
            values = [o.checks[i].measured for o in outcomes]
            known = [v for v in values if v is not None]
            value = f"{statistics.median(known):.3g}" if len(known) == len(values) else "never"
            met = all(o.checks[i].met for o in outcomes)
            checks.add_row(name, check.what, value, check.target, "yes" if met else "[red]NO[/red]")
    return regret, checks


def print_table(outcomes_by_seed: dict[str, list[Outcome]], console: Console) -> None:
    for t in tables(outcomes_by_seed):
        console.print(t)


def plot(outcome: Outcome, folder: Path) -> Path:
    """Traffic share per model over time for the learned router, one panel per task type; incidents
    shaded, breaker transitions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = next(iter(outcome.runs.values()))
    scenario = run.scenario
    tasks = list(scenario.rates)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(11, 3.2 * len(tasks)), sharex=True, squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        per_model = run.traffic.get(task, {})
        bins = len(next(iter(per_model.values()))) if per_model else 0
        totals = [sum(per_model[m][i] for m in per_model) for i in range(bins)]
        for model in sorted(per_model):
            shares = []
            for i in range(bins):
                lo = max(0, i - SMOOTH_BINS + 1)
                total = sum(totals[lo : i + 1])
                shares.append(sum(per_model[model][lo : i + 1]) / total if total else 0.0)
            ax.plot([i * BIN_S / 60 for i in range(bins)], shares, label=model, linewidth=1.4)
        for incident in scenario.incidents:
            if incident.task_type in (None, task):
                ax.axvspan(incident.start_s / 60, incident.end_s / 60, color="red", alpha=0.08)
        for at, kind, _model, scope in outcome.learned.alerts:
            if scope in ("*", task):
                colour = {"model_degraded": "red", "model_probing": "orange", "model_recovered": "green"}[kind]
                ax.axvline((at - EPOCH) / 60, color=colour, alpha=0.35, linewidth=0.8)
        for m in scenario.models:
            if m.available_from_s > 0:
                ax.axvline(m.available_from_s / 60, color="black", linestyle="--", linewidth=0.8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{task}: share of calls")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, ncol=len(per_model))
    axes[-1, 0].set_xlabel("minutes (breakers: red = excluded, orange = probing, green = restored)")
    fig.suptitle(f"{scenario.name}: {scenario.title} — regret {run.regret_pp:.3f} pp")
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"routing-{scenario.name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
