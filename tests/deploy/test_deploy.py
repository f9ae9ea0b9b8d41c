"""Deployment files parse, and what they name (services, commands, streams, consumers) exists."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from foto3d.app.registry import SERVICES
from foto3d.app.topology import assemble
from foto3d.services.scaler.backends.aws_ec2 import USER_DATA

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SERVICE_NAMES = {e.name for e in SERVICES}
CONSUMERS = {(c.stream, c.durable) for c in assemble().consumers}


def yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def serve_target(argv: list[str]) -> str | None:
    """The service a `foto3d serve NAME ...` command line runs."""
    if "serve" not in argv:
        return None
    return argv[argv.index("serve") + 1]


def test_compose_services_run_known_services_with_restart_policies() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    ran: set[str] = set()
    for name, svc in services.items():
        assert svc.get("restart") == "always", f"{name} has no restart policy"
        if "build" not in svc:  # NATS, S3, the collector: not ours
            continue
        target = svc.get("environment", {}).get("SERVICE") or serve_target(svc.get("command", []))
        assert target in SERVICE_NAMES, f"compose service {name} runs unknown service {target!r}"
        ran.add(target)
        dockerfile = REPO / svc["build"]["dockerfile"]
        assert dockerfile.is_file()
    assert ran == SERVICE_NAMES, f"services missing from compose.yaml: {SERVICE_NAMES - ran}"
    assert services["trainer"]["profiles"] == ["gpu"]
    assert {"nats-1", "nats-2", "nats-3"} <= set(services)


def test_kubernetes_manifests_parse_and_keda_watches_our_consumers() -> None:
    kustom = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    kinds: dict[str, list[Any]] = {}
    for res in kustom["resources"]:
        for doc in yaml_docs(DEPLOY / "k8s" / res):
            kinds.setdefault(doc["kind"], []).append(doc)
    deployed = {
        env["value"]
        for d in kinds["Deployment"]
        for c in d["spec"]["template"]["spec"]["containers"]
        for env in c.get("env", [])
        if env["name"] == "SERVICE"
    }
    assert deployed == SERVICE_NAMES - {"trainer"}
    (job,) = kinds["ScaledJob"]
    triggers = job["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"nats-jetstream"}
    watched = {(t["metadata"]["stream"], t["metadata"]["consumer"]) for t in triggers}
    assert watched == {("WORK", "trainer-vip"), ("WORK", "trainer-normal")}
    assert watched <= CONSUMERS, "KEDA watches consumers the topology does not declare"
    container = job["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]
    assert serve_target(container["args"]) == "trainer" and "--max-jobs" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_systemd_units_restart_always_and_run_known_services() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"foto3d-nats.service", "foto3d@.service", "foto3d-trainer.service"}
    for unit in units:
        cp = configparser.ConfigParser(strict=False, interpolation=None)
        cp.read_string(unit.read_text())
        svc = cp["Service"]
        assert svc["Restart"] == "always", unit.name
        argv = shlex.split(svc["ExecStart"])
        target = serve_target(argv)
        if unit.name == "foto3d@.service":
            assert target == "%i"
        elif unit.name == "foto3d-trainer.service":
            assert target == "trainer" and svc["KillMode"] == "mixed"
        elif unit.name.startswith("foto3d-rig"):
            assert argv[1:3] in (["rig", "up"], ["rig", "panel"]), unit.name
        else:
            assert argv[0].endswith("nats-server")


@pytest.mark.parametrize(
    "name", ["launch-template.json", "iam-scaler-policy.json", "iam-trainer-policy.json"]
)
def test_aws_json_parses(name: str) -> None:
    doc = json.loads((DEPLOY / "aws" / name).read_text())
    assert doc


def test_aws_launch_template_terminates_on_shutdown_and_user_data_matches_the_scaler() -> None:
    lt = json.loads((DEPLOY / "aws" / "launch-template.json").read_text())
    assert lt["LaunchTemplateData"]["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert (DEPLOY / "aws" / "user-data.sh").read_text() == USER_DATA
    rendered = USER_DATA.format(
        nats_urls="nats://a:4222",
        image="img",
        artifact_store="s3://b/p",
        max_jobs_arg="",
        region="eu-central-1",
        credentials_secret="foto3d/trainer",
    )
    assert "{" not in rendered.replace("${", "")


def test_dockerfiles_copy_what_exists_and_run_foto3d() -> None:
    for name in ("Dockerfile.services", "Dockerfile.trainer"):
        text = (DEPLOY / "docker" / name).read_text()
        assert text.splitlines()[0].startswith("#") and re.search(r"^FROM ", text, re.M)
        for src in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.M):
            for part in src.split():
                assert (REPO / part).exists(), f"{name} copies missing {part}"
    assert "'.[trainer]'" in (DEPLOY / "docker" / "Dockerfile.trainer").read_text()
