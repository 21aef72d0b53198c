#!/usr/bin/env bash
# Create .venv and install SceneImg with its dependencies (and the test extras with --test).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [[ ! -x .venv/bin/python ]]; then
  # Debian and Ubuntu ship venv without ensurepip unless python3-venv is installed: fall back to virtualenv.
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    "$PY" -m pip install --quiet --user virtualenv && "$PY" -m virtualenv --quiet .venv || {
      echo "cannot create a virtualenv: install python3-venv (apt-get install python3-venv) or pip" >&2; exit 1; }
  fi
fi
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
stamp=".venv/.installed${extras}"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  .venv/bin/pip install --quiet --upgrade pip
  # torch and torchvision are pinned in pyproject.toml; pip takes them from the local wheel store when present.
  .venv/bin/pip install --quiet -e ".${extras}"
  touch "$stamp"
fi
mkdir -p var
