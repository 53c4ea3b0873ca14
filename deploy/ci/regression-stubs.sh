#!/usr/bin/env bash
# The bug loop in a gateway's CI: fetch the worker's regression stubs through its tools, run them against
# this build, send the results back (record_test_results) and fail the job on a regression (a stub that
# passed before and fails now). Used by github-actions.yml and gitlab-ci.yml beside it; runs anywhere
# with bash, curl and python3.
#
#   WORKER_URL    the worker's tools address, e.g. https://telemetry-worker.internal:6066   (required)
#   WORKER_TOKEN  its TOOLS_TOKEN                                                          (required)
#   COMMIT        the commit under test                                                    (required)
#   RUN_ID        idempotency key, e.g. the CI run id and attempt (default: a hash of the report)
#   ENVIRONMENT   where the stubs run (default: ci)
#   STUBS_DIR     where the stubs are written (default: regressions)
#   JUNIT         the JUnit XML the run writes (default: regression-results.xml)
#   RUN_STUBS     the command that runs the stubs and writes $JUNIT
#                 (default: npx vitest run "$STUBS_DIR" --reporter=junit --outputFile="$JUNIT")
#
# Exit: 0 no regression; 1 a regression; 2 the worker could not be reached or the run wrote no report.
set -uo pipefail
: "${WORKER_URL:?set WORKER_URL}" "${WORKER_TOKEN:?set WORKER_TOKEN}" "${COMMIT:?set COMMIT}"
STUBS_DIR=${STUBS_DIR:-regressions} JUNIT=${JUNIT:-regression-results.xml} ENVIRONMENT=${ENVIRONMENT:-ci}
RUN_STUBS=${RUN_STUBS:-npx vitest run "$STUBS_DIR" --reporter=junit --outputFile="$JUNIT"}
export STUBS_DIR JUNIT ENVIRONMENT COMMIT RUN_ID="${RUN_ID:-}"
auth=(-H "Authorization: Bearer $WORKER_TOKEN")

mkdir -p "$STUBS_DIR"
offset=0
while [ -n "$offset" ]; do
  page=$(curl -fsS --retry 3 "${auth[@]}" "$WORKER_URL/tools/get_regression_tests?limit=500&offset=$offset") ||
    { echo "regression stubs: cannot read $WORKER_URL/tools/get_regression_tests" >&2; exit 2; }
  offset=$(printf '%s' "$page" | python3 -c '
import json, os, re, sys
page = json.load(sys.stdin)
for test in page["items"]:
    if re.fullmatch(r"[A-Za-z0-9_]{1,200}", test["test_name"]):  # the file name comes from the stub name only
        with open(os.path.join(os.environ["STUBS_DIR"], test["test_name"] + ".test.ts"), "w") as f:
            f.write(test["test_code"])
print(page["next_offset"] if page["next_offset"] is not None else "")')
done
echo "regression stubs: $(ls "$STUBS_DIR" | wc -l) written to $STUBS_DIR"

rm -f "$JUNIT"
bash -c "$RUN_STUBS"  # failing stubs make this fail: what counts is the report, sent below
[ -s "$JUNIT" ] || { echo "regression stubs: the run wrote no report at $JUNIT" >&2; exit 2; }

answer=$(python3 -c '
import json, os
body = {"junitXml": open(os.environ["JUNIT"], encoding="utf-8", errors="replace").read(),
        "commit": os.environ["COMMIT"], "environment": os.environ["ENVIRONMENT"]}
if os.environ["RUN_ID"]:
    body["runId"] = os.environ["RUN_ID"]
print(json.dumps(body))' | curl -sS --retry 3 "${auth[@]}" -H "Content-Type: application/json" --data-binary @- \
  -w '\n%{http_code}' "$WORKER_URL/tools/record_test_results") ||
  { echo "regression stubs: cannot reach $WORKER_URL/tools/record_test_results" >&2; exit 2; }
status=${answer##*$'\n'} body=${answer%$'\n'*}
[ "$status" = 200 ] || { echo "regression stubs: the worker answered $status: $body" >&2; exit 2; }
printf '%s' "$body" | python3 -c '
import json, sys
a = json.load(sys.stdin)
state = "recorded" if a["recorded"] else "already recorded"
print("regression stubs: run {} {}: {} passed, {} failed, {} skipped".format(
    a["runId"], state, a["passed"], a["failed"], a["skipped"]))
if a["regressions"]:
    print("regressed (failed after passing): " + ", ".join(a["regressions"]), file=sys.stderr)
    sys.exit(1)'
