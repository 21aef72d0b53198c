#!/usr/bin/env bash
# One command on a fresh machine: set up, migrate, make an admin, start the web server and the workers.
#
# TERM or INT (Ctrl-C) stops every process started here: workers get TERM (RQ's warm shutdown: the job
# in hand finishes) and SCENEIMG_STOP_GRACE seconds, then whatever is left is killed. A worker that
# exits on its own (Redis away for longer than RQ retries, a crash) is started again after a pause that
# doubles each time it fails quickly, up to a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n "${SCENEIMG_SKIP_SETUP:-}" ]] || scripts/setup.sh
export DEBUG=${DEBUG:-1}
REDIS_URL=$(scripts/redis.sh)
export REDIS_URL
PORT=${PORT:-8000}
VAR=${SCENEIMG_VAR_DIR:-var}
GRACE=${SCENEIMG_STOP_GRACE:-30}
mkdir -p "$VAR"
py=.venv/bin/python
$py manage.py migrate --noinput -v0
$py manage.py sync_prompts >/dev/null 2>&1 || true
$py manage.py ensure_admin

# supervise NAME COMMAND...: run COMMAND (logging to $VAR/worker-NAME.log), start it again when it exits.
supervise() {
  local name=$1 child="" delay=1 started
  shift
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM
  while true; do
    started=$SECONDS
    "$@" >>"$VAR/worker-$name.log" 2>&1 &
    child=$!
    wait "$child" || true
    if (( SECONDS - started > 60 )); then delay=1; fi  # it ran a good while: a new failure, not the same one
    echo "$(date -u +%FT%TZ) run.sh: the $name worker exited; starting it again in ${delay}s" >>"$VAR/worker-$name.log"
    sleep "$delay" &
    child=$!
    wait "$child" || true
    delay=$(( delay * 2 > 60 ? 60 : delay * 2 ))
  done
}

# maintenance: every SCENEIMG_MAINTENANCE_SECONDS, fail runs whose worker or jobs are gone and remove
# seed uploads past their retention (on many machines, run these two commands from cron instead).
maintenance() {
  local sleeper=""
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  while true; do
    $py manage.py reap_runs || true
    $py manage.py purge_seeds || true
    sleep "${SCENEIMG_MAINTENANCE_SECONDS:-3600}" &
    sleeper=$!
    wait "$sleeper" || true
  done
}

descendants() {  # every process below $1, deepest last (RQ's work horse leaves its parent's group)
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

alive() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

pids=()
stop() {
  trap '' TERM INT
  local tree
  tree=$(descendants $$)
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq $(( GRACE * 10 ))); do
    # shellcheck disable=SC2086
    alive $tree || break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $tree $(descendants $$) 2>/dev/null || true
  wait 2>/dev/null || true
  exit "${1:-0}"
}
trap stop TERM INT

# One worker per kind of work, so slow VLM calls never hold up crawling or scoring, and a long crawl
# never starves an export or a bulk review.
supervise crawl $py manage.py rqworker crawl --with-scheduler & pids+=($!)
supervise export $py manage.py rqworker export default & pids+=($!)
supervise score $py manage.py rqworker score & pids+=($!)
supervise vlm $py manage.py rqworker vlm & pids+=($!)
supervise maintenance maintenance & pids+=($!)
$py manage.py runserver "127.0.0.1:$PORT" --noreload & server=$!
pids+=("$server")
echo "SceneImg is at http://127.0.0.1:$PORT/ (workers log to $VAR/worker-*.log; Ctrl-C stops everything)"
status=0
wait "$server" || status=$?
# The server stopped on its own (a signal to this script never gets here): take the rest down with it.
stop "$status"
