"""Load test of the token gateway as visitors use it: look up a model, then fetch its smallest file.

Run it against a staging stack (never production), from a machine outside the VPC:

    pip install locust
    GATEWAY_KEY=pk_... GATEWAY_ORIGIN=https://shop.example.com MODEL_IDS=acme-chair-001,acme-lamp-002 \
        locust -f deploy/aws/locustfile.py --host https://api.staging.example.com \
        --users 2000 --spawn-rate 50 --run-time 30m --headless --csv stress

The runbook (docs/token-gateway.md, "Stress test") says what to watch and what passes.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, task

KEY = os.environ["GATEWAY_KEY"]  # a publishable key of a staging customer
ORIGIN = os.environ["GATEWAY_ORIGIN"]  # one of the key's allowed origins
MODELS = [m.strip() for m in os.environ["MODEL_IDS"].split(",") if m.strip()]
FORMATS = os.environ.get("GATEWAY_FORMATS", "spz,sog,ply")


class Visitor(HttpUser):
    # A visitor opens a product page, the viewer loads one model, then they read for a while.
    wait_time = between(5, 20)

    @task(10)
    def view_model(self) -> None:
        object_id = random.choice(MODELS)
        headers = {"Origin": ORIGIN}
        with self.client.get(
            f"/v1/models/{object_id}",
            params={"key": KEY, "formats": FORMATS},
            headers=headers,
            name="/v1/models/[id]",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
                return
            files = resp.json()["files"]
        if files:
            # the smallest file first, as the viewer does; S3 links leave the host, so name them
            self.client.get(files[0]["url"], headers=headers, name="file (smallest)")

    @task(1)
    def health(self) -> None:
        self.client.get("/healthz", name="/healthz")
