#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages in pyproject.toml:
# a headless Chromium for page tests, the third-party splat decoder and an S3 server that
# enforces bucket CORS (Node), and the CPU build of torch plus gsplat's reference code for
# splat quality measurements.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

need_apt=()
command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test-deps: installing ${need_apt[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "test-deps: missing ${need_apt[*]}; install them (tests that need them will be skipped)" >&2
  fi
fi

# Third-party splat tools: exactly what tools/node/package-lock.json says.
if [ -f tools/node/package-lock.json ] && [ ! -f tools/node/node_modules/.package-lock.json ]; then
  echo "test-deps: npm ci in tools/node"
  (cd tools/node && npm ci --no-audit --no-fund --silent)
fi

# The S3 endpoint that enforces bucket CORS for the browser tests (testkit/cors_s3.py).
if [ -f tools/s3/package-lock.json ] && [ ! -f tools/s3/node_modules/.package-lock.json ]; then
  echo "test-deps: npm ci in tools/s3"
  (cd tools/s3 && npm ci --no-audit --no-fund --silent)
fi

# CPU torch and gsplat's pure-PyTorch reference, from their locks (requirements/quality.txt,
# requirements/gsplat.txt; both resolved by scripts/lock.sh). The CPU wheel of torch comes from
# a wheel folder or PyTorch's CPU index (PIP_FIND_LINKS / PIP_EXTRA_INDEX_URL).
if ! $BIN/python -c "import torch" >/dev/null 2>&1; then
  echo "test-deps: installing torch (CPU) from requirements/quality.txt"
  $BIN/python -m pip install -q --require-hashes -r requirements/quality.txt \
    || echo "test-deps: torch unavailable; quality tests will be skipped" >&2
fi
if $BIN/python -c "import torch" >/dev/null 2>&1 && ! $BIN/python -c "import gsplat" >/dev/null 2>&1; then
  echo "test-deps: installing gsplat (no CUDA deps) from requirements/gsplat.txt"
  $BIN/python -m pip install -q --no-deps --require-hashes -r requirements/gsplat.txt || true
fi
