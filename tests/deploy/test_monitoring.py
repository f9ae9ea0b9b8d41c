"""The Prometheus rules and the Grafana dashboard in deploy/ parse, have the shape their tools
load, and ask only for metrics (and labels) that a running system really exports.
(promtool is not installable here: this is the schema check that stands in for it.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.services.token_gateway.service import TokenGateway
from testkit.running import running_services

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "foto3d-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "foto3d-overview.json"
# A metric name with an optional {label matchers} block.
SELECTOR = re.compile(r"\b(f3d_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
DURATION = re.compile(r"^\d+[smhd]$")


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "rules", "interval"} and group["name"] and group["rules"]
        out += group["rules"]
    return out


def dashboard_exprs() -> Iterator[str]:
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel["targets"]:
            yield target["expr"]


def balanced(expr: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"[^"]*"', "", expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def test_alert_rules_have_the_shape_prometheus_loads() -> None:
    names = set()
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"]), rule
        assert rule["alert"] not in names, f"two rules named {rule['alert']}"
        names.add(rule["alert"])
        assert isinstance(rule["expr"], str) and balanced(rule["expr"]), rule["expr"]
        if "for" in rule:
            assert DURATION.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]


def test_dashboard_has_the_shape_grafana_imports() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    (ds,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${" + ds["name"] + "}"
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        assert all(balanced(t["expr"]) for t in panel["targets"])


async def test_every_metric_and_label_they_use_is_exported(settings: Settings, bus: Bus) -> None:
    settings.raw["metrics"] = {"token": "t0ken"}
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["queue", "log_collector", "notifier", "token_gateway"]) as rt:
        gw = next(s for s in rt.services if isinstance(s, TokenGateway))
        assert gw.listener is not None
        async with aiohttp.ClientSession() as s:
            # One refused customer request, so the gateway's labelled series exist.
            async with s.get(f"{gw.listener.url}/v1/models/acme-x-001"):
                pass
            headers = {"Authorization": "Bearer t0ken"}
            async with s.get(f"{rt.http_url}/metrics", headers=headers) as r:
                assert r.status == 200
                text = await r.text()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        # Declared, with no series yet (no open alert, no bytes served): the names it will have.
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        for suffix in suffixes.get(family.type, ("",)):
            labels.setdefault(family.name + suffix, set())
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    exprs = [r["expr"] for r in rules()] + list(dashboard_exprs())
    used = 0
    for expr in exprs:
        for name, matchers in SELECTOR.findall(expr):
            used += 1
            assert name in labels, f"{name} (in {expr!r}) is not exported"
            for label in MATCHER.findall(matchers):
                assert label in labels[name], f"{name} has no label {label!r} (in {expr!r})"
    assert used >= 20
