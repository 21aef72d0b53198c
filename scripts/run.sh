#!/usr/bin/env bash
# One command on a fresh machine: set up, migrate, make an admin, start the web server and the workers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DEBUG=${DEBUG:-1}
REDIS_URL=$(scripts/redis.sh)
export REDIS_URL
PORT=${PORT:-8000}
py=.venv/bin/python
$py manage.py migrate --noinput -v0
$py manage.py sync_prompts >/dev/null 2>&1 || true
$py manage.py ensure_admin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
# One worker per kind of work, so slow VLM calls never hold up crawling or scoring.
$py manage.py rqworker crawl export default --with-scheduler >>var/worker-crawl.log 2>&1 & pids+=($!)
$py manage.py rqworker score >>var/worker-score.log 2>&1 & pids+=($!)
$py manage.py rqworker vlm >>var/worker-vlm.log 2>&1 & pids+=($!)
echo "SceneImg is at http://127.0.0.1:$PORT/ (workers log to var/worker-*.log; Ctrl-C stops everything)"
$py manage.py runserver "127.0.0.1:$PORT" --noreload
