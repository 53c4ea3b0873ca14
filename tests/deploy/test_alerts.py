"""The alerting rules and the Alertmanager example, offline: promtool checks the rules and runs their
unit tests (deploy/prometheus/alerts.test.yml), amtool checks the Alertmanager configuration and where
it routes each severity, the Kubernetes PrometheusRule carries the same rules, and every metric a rule
reads is one the worker exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_deploy import rendered
from worker import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def tool(name: str) -> str:
    for candidate in (ROOT / ".cache" / "bin" / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail(f"{name} is not installed: run 'make install' (it unpacks it from Debian's package into .cache/bin)")


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    assert "SUCCESS" in run(tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert "SUCCESS" in run(tool("promtool"), "test", "rules", str(PROMETHEUS / "alerts.test.yml"))


def test_a_broken_rule_is_caught(tmp_path):
    broken = (PROMETHEUS / "alerts.yml").read_text().replace("> 0.01", "> > 0.01")
    (tmp_path / "alerts.yml").write_text(broken)
    done = subprocess.run([tool("promtool"), "check", "rules", str(tmp_path / "alerts.yml")], capture_output=True)
    assert done.returncode != 0


def test_every_alert_is_tested_and_has_a_severity_a_summary_and_a_runbook():
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts.test.yml").read_text()))
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"], rule["alert"]
        assert rule["alert"] in tested, f"{rule['alert']} has no unit test in alerts.test.yml"


def test_the_rules_read_only_metrics_the_worker_exports():
    exported = {m.name for m in metrics.REGISTRY.collect()}
    series = set()
    for metric in exported:  # counters are collected without _total, histograms without their suffixes
        series |= {metric, f"{metric}_total", f"{metric}_count", f"{metric}_sum", f"{metric}_bucket"}
    for rule in rules():
        for name in re.findall(r"\b(telemetry_\w+)", rule["expr"]):
            assert name in series, f"{rule['alert']} reads {name}, which the worker does not export"


def test_the_kubernetes_prometheusrule_carries_the_same_rules_and_its_monitor_scrapes_the_service():
    """(Both validate against the operator's CRDs in test_deploy.)"""
    (doc,) = [d for d in rendered("base") if d["kind"] == "PrometheusRule"]
    assert doc["spec"]["groups"] == yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    (monitor,) = [d for d in rendered("base") if d["kind"] == "ServiceMonitor"]
    (service,) = [d for d in rendered("base") if d["kind"] == "Service" and d["metadata"]["name"] == "telemetry-worker"]
    assert {p["name"] for p in service["spec"]["ports"]} >= {e["port"] for e in monitor["spec"]["endpoints"]}
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert labels[monitor["spec"]["jobLabel"]] == "telemetry-worker"  # the job label the rules use


@pytest.mark.parametrize(("labels", "receiver"), [("severity=critical", "pager"), ("severity=warning", "chat")])
def test_the_alertmanager_example_is_valid_and_pages_only_for_critical_alerts(labels, receiver):
    config = str(PROMETHEUS / "alertmanager.yml")
    assert "SUCCESS" in run(tool("amtool"), "check-config", config)
    routed = run(tool("amtool"), "config", "routes", "test", f"--config.file={config}", "alertname=X", labels)
    assert routed.split() == [receiver]


def test_the_readme_prometheus_snippet_loads_the_rules(tmp_path):
    found = re.search(r"```yaml\n(# prometheus.yml\n.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert found, "README.md has no prometheus.yml snippet"
    (tmp_path / "prometheus.yml").write_text(found.group(1))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    out = run(tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert "SUCCESS: 1 rule files found" in out and f"SUCCESS: {len(rules())} rules found" in out
    assert "job_name: telemetry-worker" in found.group(1)  # the job the rules' up{} reads
