#!/usr/bin/env bash
# The whole pipeline offline, for a newcomer: loopback fakes stand in for the web, Baidu and the VLM
# service, and stay up while the app runs, so runs launched from the web UI reach them too.
#
# Ports: SCENEIMG_DEMO_IMAGE_PORT, SCENEIMG_DEMO_BAIDU_PORT, SCENEIMG_DEMO_OPENAI_PORT and PORT (the
# app) when set, else free ones. SCENEIMG_DEMO_URLS (300) URLs are imported; SCENEIMG_DEMO_KEPT (20)
# images are collected from the fake Baidu. Ctrl-C stops the app, its workers and the fakes.
set -euo pipefail
cd "$(dirname "$0")/.."

step=""
fail() { echo "demo.sh: FAILED: $*" >&2; exit 1; }
trap 'status=$?; [[ $status -eq 0 || -z "$step" ]] || echo "demo.sh: FAILED while $step (exit status $status)" >&2' ERR

step="setting up (scripts/setup.sh)"
scripts/setup.sh || fail "scripts/setup.sh could not set up .venv; its output is above"
export DEBUG=${DEBUG:-1}
step="finding or starting Redis (scripts/redis.sh)"
REDIS_URL=$(scripts/redis.sh) || fail "no Redis: scripts/redis.sh could not start one; set REDIS_URL"
export REDIS_URL
py=.venv/bin/python
VAR=${SCENEIMG_VAR_DIR:-var}
LOGS="$VAR/demo"
mkdir -p "$LOGS"

free_port() { $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# pick_port NAME VARIABLE: the port in $VARIABLE if set (and it must be free), else a free one.
pick_port() {
  local name=$1 var=$2 port=${!2:-}
  if [[ -z "$port" ]]; then free_port; return; fi
  [[ "$port" =~ ^[0-9]+$ ]] || fail "$var=$port is not a port number"
  if $py -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $port))" 2>/dev/null; then
    echo "$port"
  else
    fail "port $port for the $name ($var) is already in use; unset $var to use a free port"
  fi
}

IMAGE_PORT=$(pick_port "fake image host" SCENEIMG_DEMO_IMAGE_PORT)
BAIDU_PORT=$(pick_port "fake Baidu" SCENEIMG_DEMO_BAIDU_PORT)
OPENAI_PORT=$(pick_port "fake OpenAI" SCENEIMG_DEMO_OPENAI_PORT)
APP_PORT=$(pick_port "web app" PORT)

pids=()
app=""
cleanup() {
  [[ -n "$app" ]] && kill -TERM "$app" 2>/dev/null && wait "$app" 2>/dev/null
  kill "${pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for NAME URL LOG PID: until URL answers; else say which fake failed and show its log.
wait_for() {
  local name=$1 url=$2 log=$3 pid=$4
  for _ in $(seq 100); do
    curl -s -o /dev/null "$url" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; fail "the $name exited at start (log: $log)"; }
    sleep 0.2
  done
  tail -n 20 "$log" >&2
  fail "the $name did not answer at $url within 20 s (log: $log)"
}

DEMO_KEY=demo-key
$py -m tests.fakes.image_host "$IMAGE_PORT" >"$LOGS/image_host.log" 2>&1 & pids+=($!)
wait_for "fake image host" "http://127.0.0.1:$IMAGE_PORT/list.txt?n=1" "$LOGS/image_host.log" "${pids[-1]}"
$py -m tests.fakes.baidu --port "$BAIDU_PORT" >"$LOGS/baidu.log" 2>&1 & pids+=($!)
wait_for "fake Baidu" "http://127.0.0.1:$BAIDU_PORT/" "$LOGS/baidu.log" "${pids[-1]}"
$py -m tests.fakes.openai_responses "$OPENAI_PORT" --api-key "$DEMO_KEY" >"$LOGS/openai.log" 2>&1 & pids+=($!)
wait_for "fake OpenAI" "http://127.0.0.1:$OPENAI_PORT/" "$LOGS/openai.log" "${pids[-1]}"

# Everything started from here on (commands, workers, the app) reaches the fakes and only them.
export SCENEIMG_FETCH_ALLOW_PRIVATE="127.0.0.1:$IMAGE_PORT,127.0.0.1:$BAIDU_PORT"
export SCENEIMG_BAIDU_IMAGE_URL="http://127.0.0.1:$BAIDU_PORT" SCENEIMG_BAIDU_GRAPH_URL="http://127.0.0.1:$BAIDU_PORT"
export SCENEIMG_BAIDU_PACING=0
export OPENAI_BASE_URL="http://127.0.0.1:$OPENAI_PORT/v1" OPENAI_API_KEY=$DEMO_KEY SCENEIMG_VLM_BACKEND=openai
export SCENEIMG_VLM_PROMPT=${SCENEIMG_VLM_PROMPT:-v3}
export SCENEIMG_CLIP_PRETRAINED=${SCENEIMG_CLIP_PRETRAINED:-none}   # no weights offline: random, marked uncalibrated
# Random CLIP weights say nothing about rooms: let CLIP pass everything and the (fake) VLM decide.
export SCENEIMG_PIPELINE_INDOOR_MARGIN=${SCENEIMG_PIPELINE_INDOOR_MARGIN:--1}

step="migrating the database"
$py manage.py migrate --noinput -v0
$py manage.py sync_prompts >/dev/null

# drain: work the crawl, score, vlm and default (vector index) queues until empty, as the app's workers will later.
drain() {
  $py manage.py rqworker crawl score vlm default --burst --worker-class rq.worker.SimpleWorker >>"$LOGS/workers.log" 2>&1 \
    || fail "a worker failed while $step (log: $LOGS/workers.log)"
}

step="importing URLs from the fake image host"
curl -sf "http://127.0.0.1:$IMAGE_PORT/list.txt?n=${SCENEIMG_DEMO_URLS:-300}" -o "$LOGS/urls.txt" \
  || fail "could not list URLs from the fake image host"
echo "== importing ${SCENEIMG_DEMO_URLS:-300} URLs (duplicates and broken files among them), then the pipeline"
$py manage.py import_urls "$LOGS/urls.txt" --label demo --pipeline
step="running the import's pipeline (CLIP, then the VLM under $SCENEIMG_VLM_PROMPT)"
drain

step="collecting from the fake Baidu"
echo "== collecting until ${SCENEIMG_DEMO_KEPT:-20} images passed the pipeline, query after query"
$py manage.py crawl_baidu -q 客厅 -q 厨房 -q 书桌 -q 卧室 --limit-per-query 15 --until-kept "${SCENEIMG_DEMO_KEPT:-20}" \
  --max-fetches 400 --label demo-collect --enqueue
drain

step="judging again under prompt v2 for the compare page"
echo "== the same images under prompt v2, so the compare page has two versions"
$py manage.py filter_vlm --passed-clip --prompt v2 --workers 8
$py manage.py shell -c "
from curation.models import Run
for r in Run.objects.filter(parent=None).order_by('pk'):
    print(f'run #{r.pk} {r.kind} {r.status}: {r.notice or r.error or \"\"}'.strip())
"

step="starting the app"
echo "== starting the app on port $APP_PORT; the fakes stay up (image host :$IMAGE_PORT, Baidu :$BAIDU_PORT, OpenAI :$OPENAI_PORT)"
PORT=$APP_PORT SCENEIMG_SKIP_SETUP=1 scripts/run.sh &
app=$!
wait "$app"
