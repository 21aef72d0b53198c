#!/usr/bin/env bash
# One command: set up and run every test. Uses $DATABASE_URL (Postgres in CI) or SQLite, and $REDIS_URL
# or the local Redis. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
if [[ ! -x /usr/bin/chromium ]]; then
  # Browser tests drive Debian's Chromium (Playwright's own browser download is not used).
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "could not install chromium" >&2
  fi
fi
REDIS_URL=$(scripts/redis.sh | sed 's#/0$#/9#')
export REDIS_URL
# The S3 tests' server (SeaweedFS on loopback, or $SCENEIMG_S3_ENDPOINT_URL); started now so that
# parallel test processes find it running. The tests also start it themselves when run alone.
SCENEIMG_S3_ENDPOINT_URL=$(scripts/s3.sh)
export SCENEIMG_S3_ENDPOINT_URL
exec .venv/bin/pytest "$@"
