"""The scenarios and what each must show (the targets), measured on one run each."""

from __future__ import annotations

from worker.routing_eval.world import Incident, Scenario, SimModel

MIN = 60
TASKS = {"coding": 6.0, "chat": 6.0}


def _models(**overrides: SimModel) -> tuple[SimModel, ...]:
    base = {
        "large": SimModel("large", "deep", {"coding": 0.992, "chat": 0.993}, 2400, cost_usd=0.006),
        "mid": SimModel("mid", "balanced", {"coding": 0.972, "chat": 0.978}, 1100, cost_usd=0.002),
        "small": SimModel("small", "fast", {"coding": 0.935, "chat": 0.962}, 450, cost_usd=0.0004),
        "tiny": SimModel("tiny", "fast", {"coding": 0.88, "chat": 0.94}, 250, cost_usd=0.0001),
    }
    return tuple((base | overrides).values())


OUTAGE = (20 * MIN, 30 * MIN)
COLD_START = (20 * MIN, 22 * MIN)  # a gateway restart: the first calls are slow for two minutes
SLOW = SimModel("large", "deep", {"coding": 0.992, "chat": 0.993}, 8436, cost_usd=0.006)  # p95 about 15 s
BUSY = {"coding": 50.0, "chat": 50.0}  # enough probes that the fast ones come back first

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("stationary", "Stationary world: nothing changes", _models(), TASKS, 60 * MIN),
        Scenario(
            "outage",
            "10-min outage of the best model (95 % of its calls fail)",
            _models(),
            TASKS,
            45 * MIN,
            (Incident("large", *OUTAGE, success=0.05),),
        ),
        Scenario(
            "new-model",
            "A better model is declared at minute 20",
            _models(
                new=SimModel(
                    "new",
                    "balanced",
                    {"coding": 0.997, "chat": 0.995},
                    1000,
                    cost_usd=0.002,
                    available_from_s=20 * MIN + 17,
                )
            ),
            TASKS,
            40 * MIN,
            router_knows_models=False,
        ),
        Scenario(
            "new-model-router-only",
            "A better model only the router knows, from minute 20",
            _models(
                new=SimModel(
                    "new",
                    "balanced",
                    {"coding": 0.997, "chat": 0.995},
                    1000,
                    cost_usd=0.002,
                    available_from_s=20 * MIN + 17,
                    declared=False,
                )
            ),
            TASKS,
            40 * MIN,
        ),
        Scenario(
            "task-incident",
            "40 % of coding calls fail on the best model; chat unaffected",
            _models(),
            TASKS,
            40 * MIN,
            (Incident("large", *OUTAGE, success=0.6, task_type="coding"),),
        ),
        Scenario(
            "latency",
            "The best model gets 3x slower for 10 min",
            _models(),
            TASKS,
            40 * MIN,
            (Incident("large", *OUTAGE, latency_factor=3.0),),
        ),
        Scenario(
            "slow-latency",
            "A model with a 15 s p95 gets 3x slower for 10 min, 100 calls/s",
            _models(large=SLOW),
            BUSY,
            40 * MIN,
            (Incident("large", *OUTAGE, latency_factor=3.0),),
        ),
        Scenario(
            "slow-stationary",
            "The 15 s model in a stationary world for 2 h",
            _models(large=SLOW),
            TASKS,
            120 * MIN,
        ),
        Scenario(
            "cold-start",
            "After a restart the healthy model's first calls are 3.4x slower (41 ms vs 12 ms); the other fails every call",
            (
                SimModel("steady", "fast", {"coding": 1.0, "chat": 1.0}, 6.7, cost_usd=0.001),
                SimModel("broken", "fast", {"coding": 1.0, "chat": 1.0}, 6.7, cost_usd=0.0005),
            ),
            TASKS,
            30 * MIN,
            (
                Incident("steady", *COLD_START, latency_factor=3.4),
                Incident("broken", COLD_START[0], 30 * MIN, success=0.0),
            ),
        ),
        Scenario(
            "tie",
            "Two chat models within 0.03 points of utility, noisy",
            (
                SimModel("twin-a", "balanced", {"chat": 0.9800}, 1000, cost_usd=0.002),
                SimModel("twin-b", "balanced", {"chat": 0.9797}, 1000, cost_usd=0.002),
                SimModel("small", "fast", {"chat": 0.950}, 450, cost_usd=0.0004),
            ),
            {"chat": 10.0},
            120 * MIN,
        ),
    )
}
