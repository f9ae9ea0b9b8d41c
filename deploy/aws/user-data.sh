#!/bin/bash
# foto3d trainer: run one trainer container, then power off (the instance terminates itself).
# The placeholders in braces are filled in by the scaler (a copy lives in deploy/aws/user-data.sh).
# shellcheck disable=SC1083
set -uo pipefail
IMDS=http://169.254.169.254/latest
TOKEN=$(curl -sf -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
INSTANCE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/instance-id")
# Its key and TLS certificate on the bus (`foto3d auth bundle`, docs/security.md), from Secrets
# Manager with the instance's role; written owner-only for the container's user, never logged.
CREDS=/etc/foto3d
if ! BUNDLE=$(aws secretsmanager get-secret-value --region {region} --secret-id {credentials_secret} \
    --query SecretString --output text); then
  echo "foto3d: no trainer credentials in Secrets Manager" >&2
  shutdown -h now
  exit 1
fi
if ! install -d -m 0700 -o 10001 -g 10001 "$CREDS" || ! printf '%s' "$BUNDLE" | CREDS="$CREDS" python3 -c '
import json, os, sys
bundle = json.load(sys.stdin)
for name, field in (("trainer.nk", "nkey"), ("ca.pem", "ca"), ("cert.pem", "cert"), ("key.pem", "key")):
    path = os.path.join(os.environ["CREDS"], name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, bundle[field].encode())
    os.close(fd)
    os.chown(path, 10001, 10001)
'; then
  echo "foto3d: the trainer credentials could not be written" >&2
  shutdown -h now
  exit 1
fi
unset BUNDLE
docker run --rm --gpus all --network host --stop-timeout 60 \
  -v "$CREDS:/etc/foto3d:ro" \
  -e FOTO3D_NATS_CREDS=/etc/foto3d/trainer.nk \
  -e FOTO3D_NATS_TLS_CA=/etc/foto3d/ca.pem \
  -e FOTO3D_NATS_TLS_CERT=/etc/foto3d/cert.pem \
  -e FOTO3D_NATS_TLS_KEY=/etc/foto3d/key.pem \
  -e FOTO3D_NATS_URL={nats_urls} \
  -e FOTO3D_TRAINER_ID="$INSTANCE_ID" \
  -e FOTO3D_ARTIFACT_STORE={artifact_store} \
  {image} serve trainer --data /data --no-http {max_jobs_arg}
shutdown -h now
