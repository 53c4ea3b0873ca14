"""The functional core stays pure: no module of it imports Kafka, PostgreSQL, Faust, the shell, the router's
side (worker.gateway), the report's views or the routing evaluation."""

import ast
from pathlib import Path

WORKER = Path(__file__).resolve().parents[2] / "worker"
CORE = ("calls", "failures", "feedback", "routing", "experiments", "costs", "notifications", "flush")
FORBIDDEN = (
    "faust", "mode", "aiokafka", "asyncpg", "worker.store", "worker.pipeline", "worker.tools", "worker.app",
    "worker.gateway", "worker.reporting", "worker.routing_eval",  # the router's side, the views, the evaluation
)  # fmt: skip


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_core_imports_no_service_client_and_no_shell_module():
    offences = []
    for folder in CORE:
        for path in sorted((WORKER / folder).glob("*.py")):
            for name in imports(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offences.append(f"{path.relative_to(WORKER.parent)} imports {name}")
    assert offences == []
    assert len(list((WORKER / "experiments").glob("*.py"))) >= 5  # the check reads the files it claims to


# The core's layers, lowest first: a package may import its own layer or a lower one, never a higher one.
# The flush plan gathers what every other package adds per flush, so it sits on top.
LAYERS = [{"calls", "costs", "notifications"}, {"routing", "failures", "feedback"}, {"experiments"}, {"flush"}]


def test_no_core_package_imports_a_higher_layer():
    level = {package: i for i, layer in enumerate(LAYERS) for package in layer}
    offences = []
    for package, mine in level.items():
        for path in sorted((WORKER / package).glob("*.py")):
            for name in imports(path):
                parts = name.split(".")
                if len(parts) > 1 and parts[0] == "worker" and level.get(parts[1], -1) > mine:
                    offences.append(f"{path.relative_to(WORKER.parent)} imports {name}")
    assert offences == []
    assert len(list((WORKER / "flush").glob("*.py"))) >= 4  # the check reads the files it claims to
