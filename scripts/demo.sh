#!/usr/bin/env bash
# The whole pipeline offline, for a newcomer: loopback fakes stand in for the web and the VLM service.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DEBUG=${DEBUG:-1}
REDIS_URL=$(scripts/redis.sh)
export REDIS_URL
# The import may reach the fake image host's port, nothing else on loopback; the app started at the
# end gets no exemption at all.
IMAGE_HOST_PORT=${SCENEIMG_DEMO_IMAGE_PORT:-8765}
export SCENEIMG_CLIP_PRETRAINED=${SCENEIMG_CLIP_PRETRAINED:-none}   # no weights offline: random, marked uncalibrated
py=.venv/bin/python
$py manage.py migrate --noinput -v0
mkdir -p var/demo
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
$py -m tests.fakes.image_host "$IMAGE_HOST_PORT" > var/demo/image_host.log 2>&1 & pids+=($!)
sleep 1
curl -sf "http://127.0.0.1:$IMAGE_HOST_PORT/list.txt?n=300" -o var/demo/urls.txt
echo "== importing 300 URLs (with duplicates and broken files) from the fake image host"
SCENEIMG_FETCH_ALLOW_PRIVATE=127.0.0.1:$IMAGE_HOST_PORT $py manage.py import_urls var/demo/urls.txt --label demo
if $py manage.py help filter_clip >/dev/null 2>&1; then
  echo "== CLIP scoring (random weights: scores are uncalibrated)"
  $py manage.py filter_clip --input all --batch-size 16
fi
if $py manage.py help find_duplicates >/dev/null 2>&1; then
  echo "== near-duplicate groups"
  $py manage.py find_duplicates
fi
if $py manage.py help filter_vlm >/dev/null 2>&1 && [[ -f tests/fakes/openai_responses.py ]]; then
  echo "== VLM verdicts from the loopback OpenAI fake"
  $py manage.py sync_prompts
  $py -m tests.fakes.openai_responses 8766 > var/demo/openai.log 2>&1 & pids+=($!)
  sleep 1
  OPENAI_BASE_URL=http://127.0.0.1:8766/v1 OPENAI_API_KEY=demo-key \
    $py manage.py filter_vlm --decision keep --backend openai --model demo-model --workers 8 --limit 100
fi
cleanup
trap - EXIT
echo "== starting the app"
exec scripts/run.sh
