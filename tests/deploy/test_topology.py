"""compose.yaml with compose.cloud.yaml, and the k8s manifests, describe the two-site topology
the end-to-end test runs (``testkit/two_sites.py``): per site a NATS hub with a TLS leaf node
listener for rigs, its own S3 endpoint and its services (the token gateway in S3 mode, a trainer
storing to S3), every process exporting its spans to an OpenTelemetry collector configured under
``deploy/otel/``. Every setting the files name is one the code reads. Parse-only: no container
engine runs here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import yaml
from botocore.credentials import EnvProvider
from opentelemetry.sdk import environment_variables as otel_env

from foto3d.app.configdoc import file_tables, library_tables, service_tables
from foto3d.libs.bus.connection import CREDS_ENV
from foto3d.libs.bus.proof import ROSTER_ENV
from foto3d.libs.bus.tls import TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV
from foto3d.libs.settings import TableKind, params_of
from foto3d.proto.permissions import service_role
from tests.deploy.test_deploy_security import block, verifying_tls

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COLLECTOR_CONF = DEPLOY / "otel" / "collector.yaml"
LEAF_PORT = 7422
SITES = {"onprem", "cloud"}
# Services that read datasets or artifacts from S3 or write to it (the queue checks a dataset
# exists, the catalog's review downloads artifacts).
S3_USERS = {"queue", "catalog", "publisher", "token_gateway", "trainer"}
# The publisher's bucket: it publishes there, the gateway (S3 mode) presigns links to it.
BUCKET_USERS = {"publisher", "token_gateway"}
AWS_CHAIN = {EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY}
# Read by the code outside the settings tables (docs/configuration.md "Outside the tables").
UNTABLED = {"FOTO3D_DATA", CREDS_ENV, ROSTER_ENV, TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV}


# ---- helpers --------------------------------------------------------------------------------


def _table_envs(struct: type[msgspec.Struct]) -> Iterator[str]:
    for p in params_of(struct):
        if p.env:
            yield p.env
        if isinstance(p.kind, TableKind) and isinstance(p.default, msgspec.Struct):
            yield from _table_envs(type(p.default))


def known_settings() -> set[str]:
    """Every FOTO3D_* variable the code reads: the settings tables' and the few outside them."""
    tables = library_tables() + service_tables() + [t for _, _, t in file_tables()]
    return {env for t in tables for env in _table_envs(t.struct)} | UNTABLED


def expand(value: str) -> str:
    """A compose value with its ``${VAR-default}`` / ``${VAR:-default}`` at their defaults."""
    return re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", str(value))


def host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(expand(url).split(",")[0])
    return parts.hostname or "", parts.port


def compose_services() -> dict[str, dict[str, Any]]:
    """The services of both sites: compose.yaml's, then compose.cloud.yaml's (none overridden)."""
    onprem = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    cloud = yaml.safe_load((REPO / "compose.cloud.yaml").read_text())["services"]
    assert not set(onprem) & set(cloud), "the cloud file adds services, it does not change the site's"
    return {**onprem, **cloud}


def ours(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The foto3d containers (built from our Dockerfiles)."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def runs(svc: dict[str, Any]) -> str:
    env = svc["environment"]
    if "SERVICE" in env:
        return str(env["SERVICE"])
    argv = svc["command"]
    return str(argv[argv.index("serve") + 1])


def collector_conf() -> dict[str, Any]:
    conf: dict[str, Any] = yaml.safe_load(COLLECTOR_CONF.read_text())
    return conf


def collector_http_port() -> int:
    endpoint = collector_conf()["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    return int(endpoint.rsplit(":", 1)[1])


def mounts(svc: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts and volumes."""
    out = {}
    for v in svc.get("volumes", []):
        src, dst = v.split(":")[:2]
        out[dst] = src
    return out


def k8s_docs() -> list[dict[str, Any]]:
    kustom = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    return [
        d
        for res in kustom["resources"]
        for d in yaml.safe_load_all((DEPLOY / "k8s" / res).read_text())
        if d is not None
    ]


def k8s_pods(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in docs:
        if d["kind"] == "Deployment":
            yield d["spec"]["template"]["spec"]
        elif d["kind"] == "ScaledJob":
            yield d["spec"]["jobTargetRef"]["template"]["spec"]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


# ---- the collector's configuration --------------------------------------------------------


def test_the_collector_receives_otlp_http_spans_and_logs() -> None:
    conf = collector_conf()
    assert collector_http_port() == 4318
    pipelines = conf["service"]["pipelines"]
    for signal in ("traces", "logs"):
        pipe = pipelines[signal]
        assert pipe["receivers"] == ["otlp"], signal
        assert set(pipe["exporters"]) <= set(conf["exporters"]), signal
        assert set(pipe.get("processors", [])) <= set(conf.get("processors", {})), signal


# ---- compose: both sites -----------------------------------------------------------------


def test_compose_runs_both_sites_each_with_its_hub_leaf_listener_s3_and_services() -> None:
    services = compose_services()
    foto3d = ours(services)
    sites: dict[str, list[dict[str, Any]]] = {}
    for svc in foto3d.values():
        sites.setdefault(svc["environment"]["FOTO3D_SITE"], []).append(svc)
    assert set(sites) == SITES

    hub_names = re.findall(r"--host (\S+)", " ".join(services["log_collector"]["command"]))
    auth_conf = (DEPLOY / "docker" / "nats-auth.conf").read_text()
    leaf = block(re.sub(r"#.*", "", auth_conf), "leafnodes")
    assert re.search(rf"listen:\s*\S*:{LEAF_PORT}\b", leaf) and verifying_tls(leaf)

    hubs, stores = set(), set()
    for site, members in sites.items():
        # One hub per site, with the rigs' leaf node port published and the shipped config.
        (hub,) = {host_port(m["environment"]["FOTO3D_NATS_URL"])[0] for m in members}
        node = services[hub]
        assert node["image"].startswith("nats:") and "--jetstream" in node["command"], hub
        assert any(str(p).endswith(f":{LEAF_PORT}") for p in node["ports"]), f"{hub}: no leaf port"
        config = node["command"][node["command"].index("-c") + 1]
        assert mounts(node)[config] == "./deploy/docker/nats-auth.conf", hub
        assert hub in hub_names, f"the servers' certificate does not name {hub}"
        hubs.add(hub)
        # One S3 endpoint per site, a service of the file.
        (endpoint,) = {
            host_port(m["environment"]["FOTO3D_S3_ENDPOINT_URL"])
            for m in members
            if "FOTO3D_S3_ENDPOINT_URL" in m["environment"]
        }
        assert endpoint[0] in services and endpoint[1] == 9000, site
        stores.add(endpoint[0])
        ran = sorted(runs(m) for m in members)
        assert set(ran) >= S3_USERS, f"{site} lacks {S3_USERS - set(ran)}"
        assert ran.count("trainer") == 1, f"{site}: one trainer"
    assert len(hubs) == len(stores) == len(SITES), "each site has its own hub and S3 endpoint"


def test_compose_services_have_the_s3_and_otlp_settings_they_need() -> None:
    services = compose_services()
    for name, svc in ours(services).items():
        env, service = svc["environment"], runs(svc)
        # Spans go to the collector service, on its OTLP/HTTP port, configured by our file.
        host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        collector = services[host]
        assert collector["image"].startswith("otel/opentelemetry-collector"), name
        config = collector["command"][collector["command"].index("--config") + 1]
        assert mounts(collector)[config] == "./deploy/otel/collector.yaml"
        assert port == collector_http_port() and any(str(p).endswith(f":{port}") for p in collector["ports"])
        if service == "log_collector":
            assert host_port(env["FOTO3D_LOG_OTLP_ENDPOINT"]) == (host, port), name
        if service not in S3_USERS:
            continue
        assert env["FOTO3D_S3_REGION"] and set(env) >= AWS_CHAIN, f"{name}: no S3 region or credentials"
        store = services[host_port(env["FOTO3D_S3_ENDPOINT_URL"])[0]]
        buckets = set(re.findall(r"/data/([a-z0-9-]+)", " ".join(store["entrypoint"])))
        if service in BUCKET_USERS:
            assert expand(env["FOTO3D_S3_BUCKET"]) in buckets, f"{name}: bucket not made by its S3"
        if service == "trainer":
            store_uri = urlsplit(env["FOTO3D_ARTIFACT_STORE"])
            assert store_uri.scheme == "s3" and store_uri.hostname in buckets, name


def test_compose_cloud_services_connect_with_their_own_key() -> None:
    cloud = yaml.safe_load((REPO / "compose.cloud.yaml").read_text())
    command = " ".join(cloud["x-foto3d-cloud"]["command"])
    assert '--creds "/foto3d/auth/keys/$$ROLE.nk"' in command
    for name, svc in ours(cloud["services"]).items():
        env = svc["environment"]
        assert env["FOTO3D_NATS_URL"].startswith("tls://") and env[ROSTER_ENV], name
        assert all(env[k].startswith("/foto3d/auth/tls/") for k in (TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV))
        assert "foto3d-data:/foto3d:ro" in svc["volumes"], name
        if "ROLE" in env:
            assert env["ROLE"] == service_role(env["SERVICE"]), name
        else:
            assert "--creds" in svc["command"], name


# ---- k8s: the cloud site -----------------------------------------------------------------


def test_k8s_cloud_site_exposes_the_leaf_port_and_configures_s3_and_the_collector() -> None:
    docs = k8s_docs()
    config = named(docs, "ConfigMap", "foto3d-config")["data"]
    assert config["FOTO3D_SITE"] == "cloud"
    assert config["FOTO3D_S3_BUCKET"] and config["FOTO3D_S3_REGION"]  # the gateway in S3 mode
    assert urlsplit(config["FOTO3D_ARTIFACT_STORE"]).scheme == "s3"

    # Rigs reach the hub's leaf node port, which verifies their certificate.
    nats_conf = named(docs, "ConfigMap", "foto3d-nats-server")["data"]["nats.conf"]
    leaf = block(nats_conf, "leafnodes")
    assert re.search(rf"port:\s*{LEAF_PORT}\b", leaf) and verifying_tls(leaf)
    exposed = [
        d for d in docs if d["kind"] == "Service" and any(p["port"] == LEAF_PORT for p in d["spec"]["ports"])
    ]
    assert [d["spec"].get("type") for d in exposed] == ["LoadBalancer"]

    # Every pod reads the config (S3, OTLP); spans and logs go to the collector's Service.
    host, port = host_port(config["OTEL_EXPORTER_OTLP_ENDPOINT"])
    service = named(docs, "Service", host.split(".")[0])
    assert host == f"{service['metadata']['name']}.foto3d.svc"
    assert port == collector_http_port() and port in {p["port"] for p in service["spec"]["ports"]}
    pods = list(k8s_pods(docs))
    for pod in pods:
        for c in pod["containers"]:
            if c["name"] == "otel-collector":
                continue
            assert {"configMapRef": {"name": "foto3d-config"}} in c["envFrom"], c["name"]
            if c["name"] == "log-collector":
                (sink,) = [e["value"] for e in c["env"] if e["name"] == "FOTO3D_LOG_OTLP_ENDPOINT"]
                assert host_port(sink) == (host, port)

    # The collector runs the same configuration as compose's.
    collector = named(docs, "Deployment", "otel-collector")["spec"]["template"]["spec"]
    (container,) = collector["containers"]
    assert container["image"].startswith("otel/opentelemetry-collector")
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in collector["volumes"] if v["name"] == mount["name"]]
    data = named(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    assert yaml.safe_load(data[config_path.name]) == collector_conf(), "k8s and compose collectors differ"


# ---- names -------------------------------------------------------------------------------


def _env_names() -> Iterator[tuple[str, str, str]]:
    """(where, name, the command that may use it) for every variable the files set."""
    for name, svc in ours(compose_services()).items():
        command = " ".join(svc.get("command", []))
        for var in svc["environment"]:
            yield f"compose {name}", var, command
    docs = k8s_docs()
    for var in named(docs, "ConfigMap", "foto3d-config")["data"]:
        yield "k8s config", var, ""
    for pod in k8s_pods(docs):
        for c in pod["containers"]:
            for e in c.get("env", []):
                yield f"k8s {c['name']}", e["name"], ""


def test_every_variable_the_files_set_is_read_by_the_code() -> None:
    known = known_settings()
    (image_cmd,) = re.findall(r"^CMD .*$", (DEPLOY / "docker" / "Dockerfile.services").read_text(), re.M)
    seen = 0
    for where, var, command in _env_names():
        seen += 1
        if var.startswith("FOTO3D_"):
            assert var in known, f"{where}: {var} is not a foto3d setting"
        elif var.startswith("OTEL_"):
            assert getattr(otel_env, var, None) == var, f"{where}: {var} is not an OpenTelemetry SDK variable"
        elif var.startswith("AWS_"):
            assert var in AWS_CHAIN, f"{where}: {var} is not read by the AWS credential chain"
        else:  # read by the container's own command line
            assert f"$${var}" in command or f"${var}" in image_cmd, f"{where}: nothing reads {var}"
    assert seen > 50
