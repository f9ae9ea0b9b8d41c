#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages in pyproject.toml:
# a headless Chromium for page tests, the third-party splat decoder (Node), and the
# CPU build of torch plus gsplat's reference code for splat quality measurements.
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

# Third-party splat tools, pinned in tools/node/package.json.
if [ -f tools/node/package.json ] && [ ! -d tools/node/node_modules ]; then
  echo "test-deps: npm install in tools/node"
  (cd tools/node && npm install --no-audit --no-fund --silent)
fi

# CPU torch (a wheel on this kind of machine's disk) and gsplat's pure-PyTorch reference.
if ! $BIN/python -c "import torch" >/dev/null 2>&1; then
  echo "test-deps: installing torch==2.13.0 (CPU)"
  $BIN/python -m pip install -q torch==2.13.0 || echo "test-deps: torch unavailable; quality tests will be skipped" >&2
fi
if $BIN/python -c "import torch" >/dev/null 2>&1 && ! $BIN/python -c "import gsplat" >/dev/null 2>&1; then
  echo "test-deps: installing gsplat (no CUDA deps)"
  $BIN/python -m pip install -q --no-deps gsplat jaxtyping wadler-lindig rich || true
fi
