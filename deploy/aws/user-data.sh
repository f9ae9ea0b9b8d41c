#!/bin/bash
# foto3d trainer: run one trainer container, then power off (the instance terminates itself).
# The placeholders in braces are filled in by the scaler (a copy lives in deploy/aws/user-data.sh).
# shellcheck disable=SC1083
set -uo pipefail
IMDS=http://169.254.169.254/latest
TOKEN=$(curl -sf -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
INSTANCE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/instance-id")
docker run --rm --gpus all --network host --stop-timeout 60 \
  -e FOTO3D_NATS_URL={nats_urls} \
  -e FOTO3D_TRAINER_ID="$INSTANCE_ID" \
  -e FOTO3D_ARTIFACT_STORE={artifact_store} \
  {image} serve trainer --data /data --no-http {max_jobs_arg}
shutdown -h now
