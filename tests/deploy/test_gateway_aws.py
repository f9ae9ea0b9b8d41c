"""The gateway's AWS stack: valid CloudFormation (cfn-lint) with the shape production needs."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

AWS = Path(__file__).resolve().parents[2] / "deploy" / "aws"


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !Sub, ...) as plain values."""


def _tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


def test_cfn_lint_passes() -> None:
    lint = shutil.which("cfn-lint") or str(Path(sys.executable).parent / "cfn-lint")
    done = subprocess.run([lint, str(AWS / "gateway.yaml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_stack_shape() -> None:
    doc = yaml.load((AWS / "gateway.yaml").read_text(), Loader=_CfnLoader)
    res = doc["Resources"]
    assert doc["Parameters"]["DesiredCount"]["MinValue"] >= 3
    service = res["Service"]["Properties"]
    assert (
        service["LaunchType"] == "FARGATE"
        and service["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    )
    assert res["TargetGroup"]["Properties"]["HealthCheckPath"] == "/healthz"
    assert res["LoadBalancer"]["Properties"]["Scheme"] == "internet-facing"
    policies = [
        r["Properties"] for r in res.values() if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    ]
    assert {p["PolicyType"] for p in policies} == {"TargetTrackingScaling"} and len(policies) == 2
    container = res["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["Command"] == ["serve", "token_gateway", "--no-http"]  # no staff pages in public
    assert res["TaskSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]["FromPort"] == 8090


def test_locustfile_is_python_that_hits_the_model_route() -> None:
    source = (AWS / "locustfile.py").read_text()
    ast.parse(source)
    assert "/v1/models/" in source and "HttpUser" in source
