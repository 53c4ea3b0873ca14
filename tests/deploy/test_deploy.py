"""Deployment artifacts, offline: the image, the compose stack, the Kubernetes manifests and the
Grafana dashboard validate against their schemas and agree with the code (settings, commands,
endpoints, metrics) they configure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from worker import metrics
from worker.cli import parser
from worker.settings import Settings
from worker.tools.openapi import document

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
K8S_VERSION = "1.33.0"
SETTINGS = {name.upper() for name in Settings.model_fields}
SUBCOMMANDS = set(parser()._subparsers._group_actions[0].choices)


def kustomize_command() -> list[str]:
    for candidate in (ROOT / ".cache" / "bin" / "kustomize", shutil.which("kustomize")):
        if candidate and Path(candidate).exists():
            return [str(candidate), "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.fail(
        "neither kustomize nor kubectl is installed: run 'make install' (it builds kustomize from the "
        "Go module proxy into .cache/bin)"
    )


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    out = subprocess.run(
        [*kustomize_command(), str(ROOT / "deploy" / "k8s" / overlay)], check=True, capture_output=True, text=True
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def crd_schema(name: str) -> dict:
    crd = yaml.safe_load((HERE / name).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served")]
    return version["schema"]["openAPIV3Schema"]


CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
}


@pytest.mark.parametrize("overlay", ["base", "overlays/example"])
def test_every_manifest_validates_against_its_schema(overlay):
    kinds = []
    for doc in rendered(overlay):
        kinds.append(doc["kind"])
        crd = CRDS.get((doc["apiVersion"], doc["kind"]))
        if crd:
            jsonschema.Draft7Validator(crd_schema(crd)).validate(doc)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ScaledObject",
        "ServiceAccount",
        "PrometheusRule",
        "ServiceMonitor",
    } <= set(kinds)


def test_the_otlp_receiver_manifests_validate_and_agree_with_the_receiver():
    docs = rendered("otlp")
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["otlp"] and "otlp" in SUBCOMMANDS
    assert set(config["data"]) <= SETTINGS
    settings = Settings(**{k.lower(): v for k, v in config["data"].items()})
    assert container["ports"][0]["containerPort"] == settings.otlp_port == service["spec"]["ports"][0]["port"]
    assert settings.otlp_host == "0.0.0.0"
    assert {container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")} == {"/healthz", "/readyz"}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_a_broken_manifest_is_caught():
    deployment = next(d for d in rendered("base") if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"no": "such"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    scaled = json.loads(json.dumps(next(d for d in rendered("base") if d["kind"] == "ScaledObject")))
    scaled["spec"]["maxReplicaCount"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(crd_schema(CRDS[("keda.sh/v1alpha1", "ScaledObject")])).validate(scaled)


def of_kind(overlay: str, kind: str) -> dict:
    (doc,) = [d for d in rendered(overlay) if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("overlay", ["base", "overlays/example"])
def test_the_deployment_agrees_with_the_worker(overlay):
    deployment, config = of_kind(overlay, "Deployment"), of_kind(overlay, "ConfigMap")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] in SUBCOMMANDS
    assert set(config["data"]) <= SETTINGS, f"not settings: {set(config['data']) - SETTINGS}"
    settings = Settings(**{k.lower(): v for k, v in config["data"].items() if k.lower() != "kafka_security_protocol"})
    assert container["ports"][0]["containerPort"] == settings.web_port and settings.web_host == "0.0.0.0"
    endpoints = set(document()["paths"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in endpoints
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # the final flush fits in the grace period: the step in progress, then the flush itself
    assert pod["terminationGracePeriodSeconds"] > settings.flush_timeout_s + 5 + settings.revoke_flush_timeout_s
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_example_overlay_secrets_are_placeholders_and_settings():
    secrets = [d for d in rendered("overlays/example") if d["kind"] == "Secret"]
    worker_secret = next(s for s in secrets if s["metadata"]["name"] == "telemetry-worker-secrets")
    assert set(worker_secret["stringData"]) <= SETTINGS
    assert all(
        "CHANGE-ME" in value
        for s in secrets
        for key, value in s["stringData"].items()
        if "PASSWORD" in key or "TOKEN" in key or key.endswith(".crt") or key == "DATABASE_URL"
    )
    config = of_kind("overlays/example", "ConfigMap")["data"]
    settings = Settings(**{k.lower(): v for k, v in {**config, **worker_secret["stringData"]}.items()})
    assert settings.kafka_security_protocol == "SASL_SSL" and "sslmode=verify-full" in settings.database_url
    mounts = {
        m["mountPath"]
        for m in of_kind("overlays/example", "Deployment")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert str(Path(settings.kafka_ssl_cafile).parent) in mounts


def test_autoscaling_stays_within_the_partitions_and_follows_the_group():
    scaled = of_kind("base", "ScaledObject")
    config = of_kind("base", "ConfigMap")["data"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == of_kind("base", "Deployment")["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1 and scaled["spec"]["maxReplicaCount"] <= 12
    defaults = Settings()
    assert {t["metadata"]["topic"] for t in scaled["spec"]["triggers"]} == {
        defaults.topic_calls_completed,
        defaults.topic_calls_failed,
    }
    assert {t["metadata"]["consumerGroup"] for t in scaled["spec"]["triggers"]} == {config["CONSUMER_GROUP"]}
    budget = of_kind("base", "PodDisruptionBudget")
    assert budget["spec"]["selector"] == of_kind("base", "Deployment")["spec"]["selector"]


def test_the_network_policy_lets_in_only_the_scraper():
    policy = of_kind("base", "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 6066, "protocol": "TCP"}]
    egress_ports = {p["port"] for r in policy["spec"]["egress"] for p in r["ports"]}
    assert egress_ports == {9092, 9093, 5432, 53}


def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((HERE / "compose-spec.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)  # draft 2020-12: unevaluatedProperties


def test_the_compose_file_follows_the_compose_specification():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_validator().validate(compose)
    services = compose["services"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert {"kafka", "postgres", "worker", "simulator", "prometheus", "grafana"} <= set(services)
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    for name in ("worker", "simulator"):
        assert services[name]["command"][0] in SUBCOMMANDS
        assert set(services[name]["environment"]) <= SETTINGS
    for volume in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).exists(), volume


def test_a_broken_compose_file_is_caught():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose["services"]["worker"]["replica"] = 2  # misspelt, and outside `deploy`
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        compose_validator().validate(compose)


def test_the_image_runs_the_packaged_command_as_a_non_root_user():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M).group(1))
    command = json.loads(re.search(r"^CMD (.+)$", dockerfile, re.M).group(1))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["telemetry-worker"] and scripts["telemetry-worker"] == "worker.cli:main"
    assert command[0] in SUBCOMMANDS and command == ["run"]
    assert re.search(r"^USER 10001$", dockerfile, re.M) and "/healthz" in dockerfile
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2  # multi-stage
    assert all(
        re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+( AS \w+)?", line.removeprefix("FROM "))
        for line in re.findall(r"^FROM .+$", dockerfile, re.M)
    )  # pinned to a patch release


def test_the_dashboard_loads_and_queries_only_exported_metrics():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "telemetry-worker.json").read_text())
    exported = {family.name for family in metrics.REGISTRY.collect()}
    suffixes = ("_total", "_bucket", "_sum", "_count", "")
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\btelemetry_[a-z_]+", target["expr"]):
                queried.add(name)
                assert any(name.removesuffix(s) in exported for s in suffixes if name.endswith(s)), name
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in (
        "throughput",
        "lag",
        "flush latency",
        "dead letters",
        "heuristic",
        "success rate per model",
        "experiments",
        "answer quality per model",
    ):
        assert topic in titles
    assert {"telemetry_calls_total", "telemetry_consumer_lag_messages", "telemetry_flush_seconds_bucket"} <= queried
    provisioning = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioning["datasources"][0]["uid"]
    assert dashboard["templating"]["list"][0]["current"]["value"] == uid
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/metrics"
