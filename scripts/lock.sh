#!/usr/bin/env bash
# Re-resolves the Python lock files in requirements/ from pyproject.toml and the *.in files.
#   scripts/lock.sh             keep every pin that still satisfies the ranges (make lock)
#   scripts/lock.sh --upgrade   take the newest release each range allows (make upgrade)
# The runtime and dev locks are universal (Python 3.11-3.13, every platform): the same file
# installs the same versions everywhere. The quality lock is for x86-64 Linux and Python 3.11,
# the CPU build of torch; uv finds that wheel through UV_FIND_LINKS or UV_INDEX (pip's
# PIP_FIND_LINKS is used when set).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
if [ -n "${PIP_FIND_LINKS:-}" ] && [ -z "${UV_FIND_LINKS:-}" ]; then
  export UV_FIND_LINKS="$PIP_FIND_LINKS"
fi
upgrade=()
[ "${1:-}" = "--upgrade" ] && upgrade=(--upgrade)

compile() {  # OUT, then uv's arguments
  local out=$1
  shift
  {
    echo "# Locked by scripts/lock.sh (make lock / make upgrade); do not edit by hand."
    "$UV" pip compile --generate-hashes --no-header "${upgrade[@]}" "$@"
  } >"$out.new" 2>"$out.log" || { cat "$out.log" >&2; rm -f "$out.new" "$out.log"; exit 1; }
  rm -f "$out.log"
  mv "$out.new" "$out"
}

universal=(--universal --python-version 3.11)
compile requirements/runtime.txt pyproject.toml requirements/bootstrap.in "${universal[@]}"
compile requirements/dev.txt pyproject.toml requirements/bootstrap.in --extra dev "${universal[@]}" \
  -c requirements/runtime.txt
compile requirements/quality.txt requirements/quality.in -c requirements/dev.txt \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28
compile requirements/gsplat.txt requirements/gsplat.in -c requirements/dev.txt --no-deps --python-version 3.11
echo "lock: requirements/*.txt written; run make test"
