#!/usr/bin/env bash
# Real nerfstudio on a tiny dataset, through the trainer, on a host with an NVIDIA GPU.
#
#   bench/gpu_smoke.sh                 # downloads nerfstudio's "poster" capture (~100 MB)
#   bench/gpu_smoke.sh /path/dataset   # a nerfstudio-format folder or raw photos
#   STEPS=2000 bench/gpu_smoke.sh
#
# Creates a venv (SMOKE_VENV, default ./.venv-gpu), installs '.[trainer]' (nerfstudio 1.1.5 with
# CUDA 11.8 torch), starts a NATS server and `foto3d serve trainer`, hands it one job, follows the
# progress, and prints the step timings and the metrics of the result. Exit 0 only when a valid
# splat .ply came out.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DATASET=${1:-}
STEPS=${STEPS:-500}
PYTHON=${PYTHON:-python3.11}
VENV=${SMOKE_VENV:-$REPO/.venv-gpu}
WORK=${SMOKE_WORK:-$(mktemp -d -t foto3d-smoke-XXXXXX)}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cu118}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }

if ! nvidia-smi -L; then
  echo "gpu_smoke: no NVIDIA GPU visible (nvidia-smi -L failed); run this on a GPU host" >&2
  exit 2
fi

t_install=$(date +%s)
if [[ ! -x "$VENV/bin/ns-train" ]]; then
  log "creating $VENV and installing nerfstudio (several GB of CUDA wheels)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip wheel setuptools
  "$VENV/bin/pip" install --quiet torch==2.1.2+cu118 torchvision==0.16.2+cu118 --extra-index-url "$TORCH_INDEX"
  "$VENV/bin/pip" install --quiet "${REPO}[trainer]"
fi
t_ready=$(date +%s)
export PATH="$VENV/bin:$PATH"

if [[ -z "$DATASET" ]]; then
  DATASET="$WORK/data/nerfstudio/poster"
  if [[ ! -d "$DATASET" ]]; then
    log "downloading nerfstudio's poster capture"
    ns-download-data nerfstudio --capture-name poster --save-dir "$WORK/data"
  fi
fi
[[ -d "$DATASET" ]] || { echo "gpu_smoke: dataset $DATASET is not a folder" >&2; exit 2; }

PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NATS_URL="nats://127.0.0.1:$PORT"
log "starting nats-server on $PORT and a trainer (work in $WORK)"
"$VENV/bin/nats-server" -p "$PORT" -js -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
"$VENV/bin/foto3d" serve trainer --nats "$NATS_URL" --data "$WORK/foto3d" --no-http >"$WORK/trainer.log" 2>&1 &
TRAINER_PID=$!
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  kill -TERM "$TRAINER_PID" 2>/dev/null || true
  wait "$TRAINER_PID" 2>/dev/null || true
  kill -TERM "$NATS_PID" 2>/dev/null || true
  wait "$NATS_PID" 2>/dev/null || true
}
trap cleanup EXIT

t_start=$(date +%s)
status=0
"$VENV/bin/python" "$REPO/bench/gpu_smoke_submit.py" --nats "$NATS_URL" --dataset "$DATASET" --steps "$STEPS" || status=$?
t_end=$(date +%s)

echo
echo "install/venv ready : $((t_ready - t_install)) s"
echo "job (submit->done) : $((t_end - t_start)) s for $STEPS steps"
echo "trainer log        : $WORK/trainer.log"
if [[ $status -ne 0 ]]; then
  echo "gpu_smoke: FAILED (last trainer log lines below)" >&2
  tail -n 40 "$WORK/trainer.log" >&2
fi
exit "$status"
