#!/usr/bin/env bash
# The demo: a worker on the local services, a bounded burst of simulated gateway traffic (one model
# degrades half-way), then the report. Run through `make demo`, which installs and starts services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=.venv/bin
EVENTS="${DEMO_EVENTS:-30000}"
RATE="${DEMO_RATE:-5000}"
export WEB_PORT="${WEB_PORT:-6066}"
mkdir -p .demo
log=.demo/worker.log

$BIN/telemetry-worker migrate
echo "starting the worker (log: $log)"
# rules recomputed every 5 s here (60 s by default), so that the short demo shows them learn
HEURISTICS_INTERVAL_S="${HEURISTICS_INTERVAL_S:-5}" $BIN/telemetry-worker run >"$log" 2>&1 &
worker=$!
stop_worker() { kill -TERM "$worker" 2>/dev/null && wait "$worker" 2>/dev/null || true; }
trap stop_worker EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$WEB_PORT/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$worker" 2>/dev/null || { tail -n 40 "$log"; echo "the worker exited during start-up (log above)" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$WEB_PORT/readyz" >/dev/null || { tail -n 40 "$log"; echo "the worker is not ready after 60 s" >&2; exit 1; }
if [ "${DEMO_GATEWAY:-simulator}" = "litellm" ]; then
  echo "worker ready; a real litellm.Router (mock responses) routes by the rules and reports every call"
  $BIN/python -m examples.litellm_gateway ${DEMO_LITELLM_ARGS:-}
  $BIN/telemetry-worker status --wait 60 >/dev/null
  $BIN/telemetry-worker report --task-type chat
  exit 0
fi
if [ "${DEMO_GATEWAY:-simulator}" = "litellm-proxy" ]; then
  echo "worker ready; the LiteLLM Proxy (litellm --config, the README's config.yaml) serves the openai client"
  $BIN/python -m examples.litellm_proxy_gateway ${DEMO_LITELLM_ARGS:-}
  $BIN/telemetry-worker status --wait 60 >/dev/null
  $BIN/telemetry-worker report
  exit 0
fi
echo "worker ready; producing $EVENTS calls at $RATE events/s, with correctness feedback on 30 % of the answers"
echo "(llama-3.1-8b-instant answers fastest and cheapest and rarely fails, but is often wrong: only feedback shows it)"

$BIN/telemetry-worker simulate --count "$EVENTS" --rate "$RATE" --resend-fraction 0.01 --invalid-fraction 0.002 \
  --feedback-fraction 0.3 --degrade-model gpt-4o --degrade-after $((EVENTS / 2)) --seed "$(date +%s)"
$BIN/telemetry-worker status --wait 120 >/dev/null
sleep 6  # one more period of the rules, with the last feedback in
$BIN/telemetry-worker report
$BIN/telemetry-worker status
echo "dead letters and worker counters per minute are in performance_metrics; stopping the worker"
