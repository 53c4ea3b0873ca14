"""The CI templates of deploy/ci parse and run the script the integration tests exercise
(tests/integration/test_test_results.py), with every variable it requires."""

import re
from pathlib import Path

import yaml

CI = Path(__file__).resolve().parents[2] / "deploy" / "ci"
REQUIRED = set(re.findall(r'"\$\{(\w+):\?', (CI / "regression-stubs.sh").read_text()))


def test_the_script_requires_the_worker_address_token_and_commit():
    assert {"WORKER_URL", "WORKER_TOKEN", "COMMIT"} == REQUIRED


def test_github_actions_runs_the_script_with_what_it_requires():
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["stubs"]["steps"] if "regression-stubs.sh" in s.get("run", "")]
    assert set(step["env"]) >= REQUIRED and "run_attempt" in step["env"]["RUN_ID"]


def test_gitlab_ci_runs_the_script_with_what_it_requires_and_reports_junit():
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["regression-stubs"]
    assert any("regression-stubs.sh" in line for line in job["script"])
    assert set(job["variables"]) >= REQUIRED and job["artifacts"]["reports"]["junit"] == "regression-results.xml"
