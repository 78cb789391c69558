#!/usr/bin/env bash
# `make compose-check`: bring the docker-compose stack up, submit a job through it, see it complete,
# see it in /metrics and in Prometheus, and Grafana healthy. Leaves the stack running
# (`docker compose down` stops it; `down -v` also drops its data).
# Creates .env from .env.example with generated secrets when there is none (an existing .env is kept).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'compose-check: %s\n' "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
else
  fail "needs Docker with the compose plugin (docker compose) or docker-compose"
fi
docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (docker info)"

secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
if [ ! -f .env ]; then
  say "creating .env from .env.example with generated secrets"
  sed -e "s|^SECRET_KEY=.*|SECRET_KEY=$(secret)|" \
      -e "s|^JOBSITE_API_SECRET=.*|JOBSITE_API_SECRET=$(secret)|" \
      -e "s|^METRICS_TOKEN=.*|METRICS_TOKEN=$(secret)|" \
      -e "s|^GRAFANA_ADMIN_PASSWORD=.*|GRAFANA_ADMIN_PASSWORD=$(secret)|" .env.example > .env
fi
env_value() { grep -E "^$1=" .env | tail -n 1 | cut -d= -f2-; }
export JOBSITE_API_SECRET=${JOBSITE_API_SECRET:-$(env_value JOBSITE_API_SECRET)}
export METRICS_TOKEN=${METRICS_TOKEN:-$(env_value METRICS_TOKEN)}
[ -n "$JOBSITE_API_SECRET" ] || fail "set JOBSITE_API_SECRET in .env: the check submits a job with it"
PORT=${PORT:-$(env_value PORT)}; PORT=${PORT:-8000}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
GRAFANA_PORT=${GRAFANA_PORT:-3000}

say "validating docker-compose.yml"
"${COMPOSE[@]}" config --quiet
say "building and starting the stack"
"${COMPOSE[@]}" up -d --build

wait_for() {  # name, url, seconds
  local deadline=$((SECONDS + $3))
  until curl -sf -o /dev/null "$2"; do
    [ $SECONDS -lt $deadline ] || { "${COMPOSE[@]}" ps; fail "$1 did not answer at $2 within $3s"; }
    sleep 2
  done
  say "$1 answers"
}
wait_for web "http://127.0.0.1:$PORT/health" 300
SMOKE_TIMEOUT_SECONDS=180 deploy/smoke-check.sh "http://127.0.0.1:$PORT"

wait_for prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 120
say "waiting for Prometheus to scrape the completed job"
deadline=$((SECONDS + 120))
query="http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query?query=sum(jobsite_jobs_completed_total)"
until curl -sf "$query" | python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and float(r[0]["value"][1]) >= 1 else 1)'; do
  [ $SECONDS -lt $deadline ] || fail "Prometheus has no jobsite_jobs_completed_total: see http://127.0.0.1:$PROMETHEUS_PORT/targets"
  sleep 5
done
say "Prometheus scrapes /metrics: sum(jobsite_jobs_completed_total) >= 1"
wait_for grafana "http://127.0.0.1:$GRAFANA_PORT/api/health" 120
"${COMPOSE[@]}" ps
say "OK: the stack is up; Grafana at http://127.0.0.1:$GRAFANA_PORT (admin, GRAFANA_ADMIN_PASSWORD), dashboard \"jobsite\""
