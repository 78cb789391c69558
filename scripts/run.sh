#!/usr/bin/env bash
# Run the web server, a Dramatiq worker and the scheduler (periodic recovery)
# together until Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8000}
THREADS=${WORKER_THREADS:-4}

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "Stopping web server, worker and scheduler..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

# Each in a session of its own, so that Ctrl-C reaches only this script, which
# then stops each one with SIGTERM: the worker's graceful shutdown applies.
setsid "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload &
pids+=($!)
setsid "$PY" manage.py worker --threads "$THREADS" &
pids+=($!)
setsid "$PY" manage.py crontab &
pids+=($!)

cat <<MSG

jobsite is starting on http://127.0.0.1:$PORT  (admin: /admin/, API docs: /api/docs/)
Submit a job:

  curl -s -X POST http://127.0.0.1:$PORT/api/v1/jobs/ \\
       -H 'Content-Type: application/json' -H 'X-API-Secret: ${JOBSITE_API_SECRET:-<JOBSITE_API_SECRET>}' \\
       -d '{"pipeline": "text-analysis", "input_data": {"html": "<p>Hello jobsite. Jobs run in the background.</p>"}}'

Then follow it at /api/v1/jobs/<id>/ and fetch /api/v1/jobs/<id>/result/.
Press Ctrl-C to stop all three processes.

MSG
# Stop everything as soon as either process exits.
wait -n "${pids[@]}"
