#!/usr/bin/env bash
# Checks a running jobsite end to end: ready, a job submitted and completed, and counted in /metrics.
#   deploy/smoke-check.sh http://127.0.0.1:8000
# Needs JOBSITE_API_SECRET and METRICS_TOKEN in the environment, curl and python3.
# `make compose-check` runs it against the docker-compose stack; the test suite against local processes.
set -euo pipefail
URL=${1:?usage: smoke-check.sh BASE_URL}
: "${JOBSITE_API_SECRET:?set JOBSITE_API_SECRET}" "${METRICS_TOKEN:?set METRICS_TOKEN}"
TIMEOUT=${SMOKE_TIMEOUT_SECONDS:-120}
REQUEST_ID="smoke-check-$(date +%s)-$$"

say() { printf "smoke-check: [%ss] %s\n" "$SECONDS" "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

say "waiting for $URL/health/ready (the database, the broker and a worker on every queue)"
deadline=$((SECONDS + TIMEOUT))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health/ready")" = 200 ]; do
  [ $SECONDS -lt $deadline ] || fail "/health/ready did not answer 200 within ${TIMEOUT}s: $(curl -s "$URL/health/ready" -H "X-API-Secret: $JOBSITE_API_SECRET")"
  sleep 1
done

say "submitting a text-analysis job (X-Request-ID: $REQUEST_ID)"
body=$(curl -sf -X POST "$URL/api/v1/jobs/" -H 'Content-Type: application/json' \
  -H "X-API-Secret: $JOBSITE_API_SECRET" -H "X-Request-ID: $REQUEST_ID" \
  -d '{"pipeline": "text-analysis", "input_data": {"html": "<p>Hello jobsite. Jobs run in the background.</p>"}}') \
  || fail "the submission was refused"
job=$(printf '%s' "$body" | json '["job_id"]')

deadline=$((SECONDS + TIMEOUT))
while :; do
  status=$(curl -sf "$URL/api/v1/jobs/$job/" -H "X-API-Secret: $JOBSITE_API_SECRET" | json '["status"]')
  case $status in
    completed) break ;;
    failed|cancelled) fail "job $job ended $status" ;;
  esac
  [ $SECONDS -lt $deadline ] || fail "job $job still $status after ${TIMEOUT}s"
  sleep 1
done
say "job $job completed"

metrics=$(curl -sf "$URL/metrics" -H "Authorization: Bearer $METRICS_TOKEN") || fail "/metrics refused the token"
completed=$(printf '%s\n' "$metrics" | awk '/^jobsite_jobs_completed_total\{pipeline="text-analysis"\}/ {print $2}')
workers=$(printf '%s\n' "$metrics" | awk '/^jobsite_workers_alive / {print $2}')
python3 -c "import sys; sys.exit(0 if float('${completed:-0}') >= 1 else 1)" \
  || fail "/metrics shows no completed text-analysis job"
python3 -c "import sys; sys.exit(0 if float('${workers:-0}') >= 1 else 1)" || fail "/metrics shows no live worker"
say "/metrics: jobsite_jobs_completed_total{pipeline=\"text-analysis\"} $completed, jobsite_workers_alive $workers"
say "OK"
