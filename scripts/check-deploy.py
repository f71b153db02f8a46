#!/usr/bin/env python3
"""Checks the Helm chart, the Dockerfile and the operations guide with the real tools, plus what only this
project knows. scripts/deploy-tools.sh installs the tools; run this with the python it prints (its venv has
PyYAML, jsonschema and kubernetes-validate).

  lint       `helm lint --strict` on the chart's defaults and on every value set in helm/minirbt-stream/ci/.
  render     `helm template` of every ci/ value set (Kubernetes 1.25, the chart's floor); each output must be
             YAML without duplicate keys. Then `kubernetes-validate --strict` on every render against
             Kubernetes 1.25 and 1.37, and the custom resources it has no schema for (KEDA ScaledObject,
             Prometheus-operator ServiceMonitor and PrometheusRule) against the CRD schemas vendored in
             helm/tests/crd-schemas/. Then assertions on the rendered objects that no schema expresses: the pod
             labels carry the selector, service links are off, a StatefulSet's governing Service exists and is
             headless, a StatefulSet's pods are static group members named after the pod and a Deployment's are
             not, budgets and autoscaler bounds are sane, no empty topic, the pods are non-root with a
             read-only root filesystem and the right probes, the chart sets only MINIRBT_* variables the binary
             reads, the dashboard and alerts use only documented metrics.
  rollout    Pairs of renders that differ in one input the pods read at start-up (a setting, the Kafka
             credentials, the verification key, the TLS Secret) must differ in the pod template's
             annotations, so `helm upgrade` rolls the pods; a replica-count change must not.
  invalid    Every value set in helm/tests/invalid/ (outside the chart, so helm's ci/ convention never takes
             it as valid) must make `helm template` fail with the message its `# expect:` line names.
  package    `helm package` keeps what the chart needs (README, schema, dashboards, ci/) and .helmignore keeps
             out editor and VCS litter; Chart.yaml names home, sources and maintainers; the chart's README
             covers every top-level value.
  docker     `hadolint` on docker/Dockerfile; every base image pinned by digest; the HEALTHCHECK, run with bash,
             passes on a 200 /healthz, fails on a 503 or a closed port, and passes when MINIRBT_METRICS_PORT=0
             turns the server off; the products built and shipped exist in Package.swift; every dependency of
             Package.swift is pinned to an exact version.
  docs       docs/operations.md mentions every option of `minirbt-stream run` and every MINIRBT_* variable the
             command-line sources read.

Usage:
  python scripts/check-deploy.py              run every check; exit 1 on any failure
  python scripts/check-deploy.py --self-test  prove the checks can fail: undo each fix on a copy of the
                                              files and assert that the check meant to catch it does
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:
    import jsonschema
    import yaml
except ImportError as missing:  # pragma: no cover - depends on the machine
    print(f"check-deploy: the Python module '{missing.name}' is missing; run it with the python that "
          f"scripts/deploy-tools.sh prints", file=sys.stderr)
    sys.exit(2)

CHART = Path("helm/minirbt-stream")
CI_VALUES = CHART / "ci"
INVALID_VALUES = Path("helm/tests/invalid")
CRD_SCHEMAS = Path("helm/tests/crd-schemas")
DOCKERFILE = Path("docker/Dockerfile")
PACKAGE_MANIFEST = Path("Package.swift")
RUN_COMMAND = Path("Sources/StreamCLI/RunCommand.swift")
OPERATIONS_GUIDE = Path("docs/operations.md")
SHIPPED_BINARIES = ("minirbt-stream", "minirbt-admin")
# The chart's kubeVersion floor (Chart.yaml) and the newest version kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")
RELEASE, NAMESPACE = "check", "streaming"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class Failure:
    check: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


@dataclass
class Outcome:
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, check: str, where: str, message: str) -> None:
        self.failures.append(Failure(check, where, message))

    def extend(self, other: "Outcome") -> None:
        self.failures += other.failures
        self.notes += other.notes


# --- Tools --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tools:
    helm: str
    hadolint: str
    kubernetes_validate: str

    @staticmethod
    def find() -> "Tools":
        deps = Path(os.environ.get("MINIRBT_DEPS") or Path.home() / ".cache/minirbt")
        found = {}
        for name, path in (("helm", deps / "deploy-tools/bin/helm"),
                           ("hadolint", deps / "deploy-tools/venv/bin/hadolint"),
                           ("kubernetes-validate", deps / "deploy-tools/venv/bin/kubernetes-validate")):
            found[name] = str(path) if path.exists() else shutil.which(name)
            if not found[name]:
                print(f"check-deploy: {name} is not installed; run scripts/deploy-tools.sh", file=sys.stderr)
                sys.exit(2)
        return Tools(found["helm"], found["hadolint"], found["kubernetes-validate"])


def run(command: list[str], cwd: Path | None = None, env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def parallel(function: Callable, items: list) -> list:
    """function over items on every core: helm starts in ~0.2 s and the checks make a hundred calls."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(function, items))


def first_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[:count]) + (" | ..." if len(lines) > count else "")


# --- YAML without duplicate keys ------------------------------------------------------------------------------

class StrictLoader(yaml.SafeLoader):
    """Refuses a mapping with a repeated key: Kubernetes' strict decoding does too, and PyYAML would silently
    keep the last value (a ConfigMap with KAFKA_SSL_CA_LOCATION twice, labels overriding each other)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- Rendering ----------------------------------------------------------------------------------------------

@dataclass
class Render:
    name: str
    path: Path               # the rendered manifests on disk, for kubernetes-validate
    documents: list[dict]
    values: dict             # the value set it was rendered from

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.documents if d.get("kind") == kind]

    def named(self, kind: str, name: str) -> dict | None:
        return next((d for d in self.of_kind(kind) if d.get("metadata", {}).get("name") == name), None)

    def workload(self) -> dict | None:
        workloads = [d for d in self.documents if d.get("kind") in WORKLOAD_KINDS]
        return workloads[0] if len(workloads) == 1 else None


def helm_template(tools: Tools, root: Path, values: list[Path], extra: list[str] = ()) -> subprocess.CompletedProcess:
    command = [tools.helm, "template", RELEASE, str(root / CHART), "--namespace", NAMESPACE,
               "--kube-version", KUBERNETES_VERSIONS[0]]
    for path in values:
        command += ["-f", str(path)]
    return run(command + list(extra))


def render_value_sets(tools: Tools, root: Path, scratch: Path, outcome: Outcome,
                      only: tuple[str, ...] | None = None) -> list[Render]:
    renders = []
    value_sets = [p for p in sorted((root / CI_VALUES).glob("*.yaml")) if not only or p.name in only]
    if not value_sets:
        outcome.fail("render", str(CI_VALUES), "no value sets")
    results = parallel(lambda values: helm_template(tools, root, [values]), value_sets)
    for values, result in zip(value_sets, results):
        if result.returncode != 0:
            outcome.fail("render", values.name, f"helm template failed: {first_lines(result.stderr)}")
            continue
        path = scratch / f"{values.stem}.yaml"
        path.write_text(result.stdout, encoding="utf-8")
        try:
            documents = [d for d in yaml.load_all(result.stdout, Loader=StrictLoader) if d]
        except yaml.YAMLError as error:
            outcome.fail("render", values.name, f"the rendered manifests are not valid YAML: {' '.join(str(error).split())}")
            continue
        renders.append(Render(values.name, path, documents, yaml.safe_load(values.read_text(encoding="utf-8")) or {}))
    return renders


# --- kubernetes-validate and the CRD schemas ----------------------------------------------------------------------

def crd_schemas(root: Path) -> dict[tuple[str, str], dict]:
    schemas = {}
    for path in sorted((root / CRD_SCHEMAS).glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        key = (schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"])
        schemas[key] = schema
    return schemas


def check_kubernetes_validate(tools: Tools, root: Path, renders: list[Render], outcome: Outcome) -> None:
    if not renders:
        return
    command = [tools.kubernetes_validate, "--strict"]
    for version in KUBERNETES_VERSIONS:
        command += ["-k", version]
    result = run(command + [str(r.path) for r in renders], timeout=300)
    by_path = {str(r.path): r.name for r in renders}
    schemas = crd_schemas(root)
    passed, skipped = 0, set()
    for line in result.stdout.splitlines():
        level, _, rest = line.partition(" ")
        path, _, message = rest.partition(" ")
        name = by_path.get(path, path)
        if level == "INFO" and message.startswith("passed "):
            passed += 1
        elif level == "WARN" and (match := re.search(r"kind (\S+) with api version (\S+)", message)):
            kind, api_version = match.groups()
            skipped.add((api_version, kind))
            if (api_version, kind) not in schemas:
                outcome.fail("render", name, f"kubernetes-validate has no schema for {api_version} {kind}, and "
                                             f"{CRD_SCHEMAS} has none either: {message}")
        elif level in ("ERROR", "FATAL"):
            outcome.fail("render", name, f"kubernetes-validate --strict: {message}")
    if result.returncode != 0 and not any(f.message.startswith("kubernetes-validate") for f in outcome.failures):
        outcome.fail("render", "kubernetes-validate", f"exit {result.returncode}: {first_lines(result.stdout + result.stderr)}")

    custom = 0
    for render in renders:
        for document in render.documents:
            schema = schemas.get((document.get("apiVersion"), document.get("kind")))
            if schema is None:
                continue
            custom += 1
            validator = jsonschema.Draft202012Validator(schema)
            for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
                location = ".".join(map(str, error.absolute_path)) or "(top level)"
                outcome.fail("render", render.name, f"{document['kind']} {location}: {error.message} "
                                                    f"(vendored CRD schema, {CRD_SCHEMAS})")
    kinds = ", ".join(sorted(kind for _, kind in skipped)) or "none"
    outcome.notes.append(f"render: kubernetes-validate --strict passed {passed} resource checks "
                         f"({len(renders)} renders x Kubernetes {' and '.join(KUBERNETES_VERSIONS)}); "
                         f"{custom} custom resources ({kinds}) valid against the vendored CRD schemas")


# --- Assertions on the rendered objects -----------------------------------------------------------------------

def pod_spec(workload: dict) -> dict:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def selector_matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def metric_names(text: str) -> set[str]:
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"\bminirbt_[a-z_]+", text)}


def documented_metrics(root: Path) -> set[str]:
    guide = (root / OPERATIONS_GUIDE).read_text(encoding="utf-8")
    # A row may document related series together: every name in its first cell counts.
    first_cells = re.findall(r"^\| (`minirbt_[^|]*)\|", guide, re.M)
    return {name for cell in first_cells for name in re.findall(r"`(minirbt_[a-z_]+)", cell)}


def run_setting_variables(root: Path) -> set[str]:
    """The variables of `minirbt-stream run`'s settings. Their names derive from the flags (RunSetting in
    Sources/StreamCLI/RunSettings.swift), so they are read from the guide's tables generated from that table,
    which a Swift test (operationsGuideTablesAreCurrent) keeps current."""
    guide = (root / OPERATIONS_GUIDE).read_text(encoding="utf-8")
    names: set[str] = set()
    for table in re.findall(r"<!-- run-settings:[a-z-]+ begin -->\n(.*?)\n<!-- run-settings:[a-z-]+ end -->", guide, re.S):
        names |= set(re.findall(r"^\| `--[a-z0-9-]+` \| `(MINIRBT_[A-Z0-9_]+)", table, re.M))
    return names


def env_names_read_by_binary(root: Path) -> set[str]:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted((root / "Sources").rglob("*.swift")))
    return set(re.findall(r'"(MINIRBT_[A-Z0-9_]+)', sources)) | run_setting_variables(root)


def check_manifests(root: Path, renders: list[Render], outcome: Outcome) -> None:
    read_by_binary = env_names_read_by_binary(root)
    metrics = documented_metrics(root)
    checked = 0
    for render in renders:
        fail = lambda message, r=render: outcome.fail("render", r.name, message)  # noqa: E731
        workload = render.workload()
        if workload is None:
            fail(f"expected exactly one Deployment or StatefulSet, got "
                 f"{[d.get('kind') for d in render.documents if d.get('kind') in WORKLOAD_KINDS]}")
            continue
        checked += 1
        selector = workload["spec"]["selector"]["matchLabels"]
        template = workload["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        pod = pod_spec(workload)
        container = (pod.get("containers") or [{}])[0]

        if not selector_matches(selector, labels):
            fail(f"the pod labels {labels} do not carry the selector {selector}: the workload would not own its pods")
        if pod.get("enableServiceLinks") is not False:
            fail("the pod spec does not set enableServiceLinks: false (a Service named kafka would inject "
                 "KAFKA_PORT=tcp://..., which the service hands to librdkafka)")
        if not pod.get("terminationGracePeriodSeconds", 30) > 30:
            fail("terminationGracePeriodSeconds does not exceed the service's 30 s drain")
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if container.get(probe, {}).get("httpGet", {}).get("path") != path:
                fail(f"{probe} does not GET {path}")
        if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            fail("the pod does not set runAsNonRoot: true")
        if container.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
            fail("the container's root filesystem is not read-only")
        instance = [e for e in container.get("env", []) if e.get("name") == "MINIRBT_INSTANCE_ID"]
        if not instance or instance[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
            fail("MINIRBT_INSTANCE_ID is not the pod name (downward API metadata.name)")

        static = [e for e in container.get("env", []) if e.get("name") == "MINIRBT_GROUP_INSTANCE_ID"]
        if workload["kind"] == "StatefulSet" and (
                not static or static[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name"):
            fail("the StatefulSet does not set MINIRBT_GROUP_INSTANCE_ID to the pod name (downward API metadata.name): "
                 "every restart would rebalance the group")
        if workload["kind"] == "Deployment" and static:
            fail("the Deployment sets MINIRBT_GROUP_INSTANCE_ID: its pods get new names at every rollout, and each old "
                 "static member would hold its partitions, unconsumed, until session.timeout.ms")

        if workload["kind"] == "StatefulSet":
            governing = render.named("Service", workload["spec"].get("serviceName", ""))
            if governing is None:
                fail(f"the StatefulSet's serviceName {workload['spec'].get('serviceName')!r} names no Service of the release")
            elif governing["spec"].get("clusterIP") != "None":
                fail(f"the StatefulSet's governing Service {governing['metadata']['name']} is not headless "
                     f"(clusterIP: None): the pods get no stable DNS names")
        for service in render.of_kind("Service"):
            if not selector_matches(service["spec"].get("selector", {}), labels):
                fail(f"Service {service['metadata']['name']} selects {service['spec'].get('selector')}, not the pods")

        for budget in render.of_kind("PodDisruptionBudget"):
            spec = budget["spec"]
            for key in ("minAvailable", "maxUnavailable"):
                if key in spec and str(spec[key]).rstrip("%") == "0":
                    fail(f"PodDisruptionBudget {key}: {spec[key]} (0 protects nothing or blocks every drain)")
            if spec.get("selector", {}).get("matchLabels") != selector:
                fail("the PodDisruptionBudget does not select the workload's pods")
        for hpa in render.of_kind("HorizontalPodAutoscaler"):
            spec = hpa["spec"]
            if spec.get("minReplicas", 1) > spec["maxReplicas"]:
                fail(f"HPA minReplicas {spec.get('minReplicas')} > maxReplicas {spec['maxReplicas']}")
            if (spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"]) != (workload["kind"], workload["metadata"]["name"]):
                fail("the HPA does not target the workload")
        for scaled in render.of_kind("ScaledObject"):
            spec = scaled["spec"]
            if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
                fail(f"ScaledObject minReplicaCount {spec.get('minReplicaCount')} > maxReplicaCount {spec.get('maxReplicaCount')}")
            if (spec["scaleTargetRef"].get("kind"), spec["scaleTargetRef"]["name"]) != (workload["kind"], workload["metadata"]["name"]):
                fail("the ScaledObject does not target the workload")
            for trigger in spec.get("triggers", []):
                if "topic" in trigger.get("metadata", {}) and not trigger["metadata"]["topic"]:
                    fail("a KEDA trigger has an empty topic")
        if render.of_kind("HorizontalPodAutoscaler") and render.of_kind("ScaledObject"):
            fail("both an HPA and a KEDA ScaledObject scale the workload")

        config = render.named("ConfigMap", workload["metadata"]["name"])
        if config is None:
            fail("no ConfigMap named like the workload (the service's settings)")
        else:
            data = config.get("data", {})
            if ("MINIRBT_INPUT_TOPIC" in data) == ("MINIRBT_INPUT_PATTERN" in data):
                fail("the ConfigMap must set exactly one of MINIRBT_INPUT_TOPIC and MINIRBT_INPUT_PATTERN")
            topics = data.get("MINIRBT_INPUT_TOPIC")
            if topics is not None and (not topics or any(not t.strip() for t in topics.split(","))):
                fail(f"MINIRBT_INPUT_TOPIC {topics!r} has an empty topic")
            for name, value in data.items():
                if not re.fullmatch(r"(MINIRBT|KAFKA)_[A-Z0-9_]+", name):
                    fail(f"the ConfigMap sets {name}, which is neither a MINIRBT_* nor a KAFKA_* variable")
                if value in ("", None):
                    fail(f"the ConfigMap sets {name} to an empty value")
        names = set((config or {}).get("data", {})) | {e["name"] for e in container.get("env", [])}
        for secret in render.of_kind("Secret"):
            names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
        for name in sorted(n for n in names if n.startswith("MINIRBT_") and n not in read_by_binary):
            fail(f"the chart sets {name}, which the binary does not read (no run setting, no \"{name}\" literal in Sources/)")

        for policy in render.of_kind("NetworkPolicy"):
            spec = policy["spec"]
            if spec["podSelector"].get("matchLabels") != selector:
                fail("the NetworkPolicy does not select the workload's pods")
            ports = {p.get("name") for p in container.get("ports", [])} | {p.get("containerPort") for p in container.get("ports", [])}
            for rule in spec.get("ingress", []):
                for port in rule.get("ports", []):
                    if port.get("port") not in ports:
                        fail(f"the NetworkPolicy admits port {port.get('port')}, which the container does not serve")
            if not any(p.get("port") == 53 for rule in spec.get("egress", []) for p in rule.get("ports", [])):
                fail("the NetworkPolicy's egress has no DNS rule (port 53): broker host names would not resolve")

        check_values_reflected(render, workload, outcome)

        used = set()
        for rule_set in render.of_kind("PrometheusRule"):
            used |= metric_names(json.dumps(rule_set["spec"]))
        for dashboard in [d for d in render.of_kind("ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]:
            for key, text in dashboard.get("data", {}).items():
                try:
                    used |= metric_names(json.dumps(json.loads(text)))
                except json.JSONDecodeError as error:
                    fail(f"dashboard {key} is not JSON: {error}")
        for name in sorted(used - metrics):
            fail(f"the alerts or the dashboard use {name}, which {OPERATIONS_GUIDE} section 6 does not list")
    outcome.notes.append(f"render: {checked} workloads carry their selector, service links off, probes, non-root, "
                         f"read-only root, static group membership on StatefulSets only; Services, budgets, autoscalers, NetworkPolicies, alerts and dashboards "
                         f"checked; every MINIRBT_* variable set is read by the binary")


def check_values_reflected(render: Render, workload: dict, outcome: Outcome) -> None:
    """The optional features a value set turns on are in its render, as the values say."""
    values, pod = render.values, pod_spec(workload)
    container = pod["containers"][0]
    selector = workload["spec"]["selector"]["matchLabels"]
    fail = lambda message: outcome.fail("render", render.name, message)  # noqa: E731
    if values.get("priorityClassName") and pod.get("priorityClassName") != values["priorityClassName"]:
        fail(f"priorityClassName {values['priorityClassName']!r} is not in the pod spec")
    constraints = pod.get("topologySpreadConstraints", [])
    if len(constraints) != len(values.get("topologySpreadConstraints", [])):
        fail("the pod spec does not carry the value set's topologySpreadConstraints")
    for constraint in constraints:
        if not selector_matches(constraint.get("labelSelector", {}).get("matchLabels", {}), selector):
            fail(f"a topology spread constraint on {constraint.get('topologyKey')} does not select the release's pods")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    mounts = {m["name"] for m in container.get("volumeMounts", [])}
    for volume in values.get("extraVolumes", []):
        if volume["name"] not in volumes:
            fail(f"extra volume {volume['name']} is not in the pod spec")
    for mount in values.get("extraVolumeMounts", []):
        if mount["name"] not in mounts:
            fail(f"extra volume mount {mount['name']} is not in the container")
    for value, kind in (("networkPolicy", "NetworkPolicy"), ("serviceMonitor", "ServiceMonitor"),
                        ("prometheusRule", "PrometheusRule")):
        if values.get(value, {}).get("enabled") and not render.of_kind(kind):
            fail(f"{value}.enabled renders no {kind}")
    if values.get("grafanaDashboard", {}).get("enabled"):
        dashboards = [d for d in render.of_kind("ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
        if not dashboards or dashboards[0]["metadata"]["labels"].get("grafana_dashboard") != "1":
            fail("grafanaDashboard.enabled renders no ConfigMap labelled grafana_dashboard: \"1\"")


# --- Rollout triggers -----------------------------------------------------------------------------------------

KEY_A = "vVoHcG6FKPsUWscrFJmi47/Xt7laKVvLGzhooPopKWE="
KEY_B = "DsNeoxJmuy0fmCjCxL0WhaVsAV2CPc8wgNBGE9UAKVA="
ROLLOUT_PAIRS: list[tuple[str, dict, dict, bool]] = [
    # (what changes, values before, values after, must the pods roll?)
    ("a setting (stream.maxBatch)",
     {"control": {"verifyKey": {"existingSecret": "k"}}},
     {"control": {"verifyKey": {"existingSecret": "k"}}, "stream": {"maxBatch": 64}}, True),
    ("the Kafka credentials of a chart-made Secret",
     {"control": {"verifyKey": {"existingSecret": "k"}},
      "kafka": {"credentials": {"create": True, "values": {"KAFKA_SASL_PASSWORD": "old"}}}},
     {"control": {"verifyKey": {"existingSecret": "k"}},
      "kafka": {"credentials": {"create": True, "values": {"KAFKA_SASL_PASSWORD": "new"}}}}, True),
    ("the existing Kafka credentials Secret",
     {"control": {"verifyKey": {"existingSecret": "k"}}, "kafka": {"credentials": {"existingSecret": "kafka-2024"}}},
     {"control": {"verifyKey": {"existingSecret": "k"}}, "kafka": {"credentials": {"existingSecret": "kafka-2025"}}}, True),
    ("the verification key pasted into values",
     {"control": {"verifyKey": {"publicKey": KEY_A}}},
     {"control": {"verifyKey": {"publicKey": KEY_B}}}, True),
    ("the existing verification key Secret",
     {"control": {"verifyKey": {"existingSecret": "verify-2024"}}},
     {"control": {"verifyKey": {"existingSecret": "verify-2025"}}}, True),
    ("the Kafka TLS Secret",
     {"control": {"verifyKey": {"existingSecret": "k"}}, "kafka": {"tls": {"enabled": True, "existingSecret": "tls-2024"}}},
     {"control": {"verifyKey": {"existingSecret": "k"}}, "kafka": {"tls": {"enabled": True, "existingSecret": "tls-2025"}}}, True),
    ("the replica count only",
     {"control": {"verifyKey": {"existingSecret": "k"}}},
     {"control": {"verifyKey": {"existingSecret": "k"}}, "replicaCount": 5}, False),
]


def check_rollout(tools: Tools, root: Path, scratch: Path, outcome: Outcome, only: tuple[str, ...] | None = None) -> None:
    def annotations(values: dict, tag: str) -> dict | None:
        path = scratch / f"rollout-{tag}.yaml"
        path.write_text(json.dumps(values), encoding="utf-8")
        result = helm_template(tools, root, [path], ["--show-only", "templates/workload.yaml"])
        if result.returncode != 0:
            outcome.fail("rollout", tag, f"helm template failed: {first_lines(result.stderr)}")
            return None
        workload = yaml.safe_load(result.stdout)
        return workload["spec"]["template"]["metadata"].get("annotations", {})

    chosen = [pair for pair in ROLLOUT_PAIRS if not only or pair[0] in only]
    pairs = parallel(lambda item: (annotations(item[1][1], f"{item[0]}a"), annotations(item[1][2], f"{item[0]}b")),
                     list(enumerate(chosen)))
    for (what, _, _, rolls), (old, new) in zip(chosen, pairs):
        if old is None or new is None:
            continue
        if rolls and old == new:
            outcome.fail("rollout", what, "the pod template's annotations do not change, so `helm upgrade` would "
                                          "not restart the pods, which read it only at start-up")
        if not rolls and old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            outcome.fail("rollout", what, f"the pod template's annotations change ({', '.join(changed)}): "
                                          f"the pods would restart for nothing")
    outcome.notes.append(f"rollout: {len(chosen)} value changes roll the pods exactly when they should")


# --- Invalid value sets --------------------------------------------------------------------------------------

def check_invalid(tools: Tools, root: Path, outcome: Outcome, only: str | None = None) -> None:
    cases = sorted((root / INVALID_VALUES).glob("*.yaml"))
    if only:
        cases = [c for c in cases if c.name == only]
    if not cases:
        outcome.fail("invalid", str(INVALID_VALUES), "no invalid value sets")
    results = parallel(lambda path: helm_template(tools, root, [path]), cases)
    for path, result in zip(cases, results):
        expected = re.search(r"^# expect: (.+)$", path.read_text(encoding="utf-8"), re.M)
        if not expected:
            outcome.fail("invalid", path.name, "has no '# expect: <message>' line")
        elif result.returncode == 0:
            outcome.fail("invalid", path.name, f"rendered; expected a refusal naming {expected.group(1)!r}")
        elif expected.group(1) not in result.stderr:
            outcome.fail("invalid", path.name, f"refused, but not with {expected.group(1)!r}: {first_lines(result.stderr)}")
    outcome.notes.append(f"invalid: {len(cases)} invalid value sets refused, each with the message it names")


# --- Chart package, metadata, README --------------------------------------------------------------------------

PACKAGE_MUST_HAVE = ("Chart.yaml", "values.yaml", "values.schema.json", "README.md", ".helmignore",
                     "templates/NOTES.txt", "templates/_helpers.tpl", "dashboards/minirbt-stream.json",
                     "ci/default-values.yaml")
LITTER = ("notes.txt~", "values.yaml.orig", ".values.yaml.swp", "templates/.workload.yaml.swp")


def check_package(tools: Tools, root: Path, scratch: Path, outcome: Outcome) -> None:
    chart_copy = scratch / "package" / CHART.name
    shutil.copytree(root / CHART, chart_copy)
    for litter in LITTER:  # what .helmignore must keep out of the archive
        (chart_copy / litter).write_text("litter\n", encoding="utf-8")
    result = run([tools.helm, "package", str(chart_copy), "-d", str(scratch / "package")])
    archives = list((scratch / "package").glob("*.tgz"))
    if result.returncode != 0 or not archives:
        outcome.fail("package", str(CHART), f"helm package failed: {first_lines(result.stderr + result.stdout)}")
        return
    with tarfile.open(archives[0]) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in PACKAGE_MUST_HAVE:
        if name not in members:
            outcome.fail("package", archives[0].name, f"the chart archive lacks {name}")
    for name in LITTER:
        if name in members:
            outcome.fail("package", archives[0].name, f"the chart archive contains {name}: .helmignore does not keep it out")

    metadata = yaml.safe_load((root / CHART / "Chart.yaml").read_text(encoding="utf-8"))
    if not str(metadata.get("home", "")).startswith("https://"):
        outcome.fail("package", "Chart.yaml", "home is not an https URL")
    if not metadata.get("sources") or not all(str(s).startswith("https://") for s in metadata["sources"]):
        outcome.fail("package", "Chart.yaml", "sources is missing or not a list of https URLs")
    if not metadata.get("maintainers") or not all(m.get("name") for m in metadata["maintainers"]):
        outcome.fail("package", "Chart.yaml", "maintainers is missing or has an entry without a name")
    values = yaml.safe_load((root / CHART / "values.yaml").read_text(encoding="utf-8"))
    readme_path = root / CHART / "README.md"
    readme = readme_path.read_text(encoding="utf-8") if readme_path.exists() else ""
    for key in values:
        if f"`{key}`" not in readme:
            outcome.fail("package", f"{CHART}/README.md", f"the value `{key}` is not described")
    outcome.notes.append(f"package: helm package keeps {len(PACKAGE_MUST_HAVE)} required files and leaves out "
                         f"{len(LITTER)} litter files; Chart.yaml home/sources/maintainers; README covers "
                         f"{len(values)} top-level values")


# --- Dockerfile -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    instructions, pending, start = [], [], 0
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        keyword, _, arguments = " ".join(part.strip() for part in pending).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), arguments.strip()))
        pending = []
    return instructions


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        try:
            self.send_response(self.status if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok\n")
        except OSError:
            pass  # the health check hangs up once it has read the status line

    def log_message(self, *args):
        pass


def run_healthcheck(command: list[str], port: int | str) -> int:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MINIRBT_METRICS_PORT": str(port)}
    return subprocess.run(command, env=env, capture_output=True, timeout=10).returncode


def healthcheck_failures(command: list[str]) -> list[str]:
    problems = []
    if run_healthcheck(command, 0) != 0:
        problems.append("with MINIRBT_METRICS_PORT=0 (no HTTP server) it fails, so the container turns unhealthy")
    for status, should_pass in ((200, True), (503, False)):
        handler = type("Handler", (_Health,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            passed = run_healthcheck(command, server.server_address[1]) == 0
        finally:
            server.shutdown()
            server.server_close()
        if passed != should_pass:
            problems.append(f"a /healthz answering {status} makes it {'pass' if passed else 'fail'}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    if run_healthcheck(command, closed) == 0:
        problems.append("it passes with nothing listening on the port")
    return problems


def check_dockerfile(tools: Tools, root: Path, outcome: Outcome) -> None:
    path = root / DOCKERFILE
    result = run([tools.hadolint, "--no-color", str(path)])
    if result.returncode != 0:
        for line in (result.stdout + result.stderr).strip().splitlines():
            outcome.fail("docker", str(DOCKERFILE), f"hadolint: {line.split(' ', 1)[-1]}")

    instructions = dockerfile_instructions(path.read_text(encoding="utf-8"))
    arguments = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, default = instruction.arguments.partition("=")
            arguments.setdefault(name.strip(), default.strip().strip('"'))
    stages, digest = set(), re.compile(r"^[^\s@]+:[^\s@]+@sha256:[0-9a-f]{64}$")
    for instruction in (i for i in instructions if i.keyword == "FROM"):
        words = instruction.arguments.split()
        image = words[0]
        variable = re.fullmatch(r"\$\{?(\w+)\}?", image)
        resolved = arguments.get(variable.group(1), "") if variable else image
        if image not in stages and not digest.match(resolved):
            outcome.fail("docker", f"{DOCKERFILE}:{instruction.line}",
                         f"the base image {resolved or image!r} is not pinned by digest (name:tag@sha256:...)")
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2])

    checks = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    if not checks or "CMD" not in checks[-1].arguments:
        outcome.fail("docker", str(DOCKERFILE), "the runtime stage has no HEALTHCHECK CMD")
    else:
        command = json.loads(checks[-1].arguments[checks[-1].arguments.index("CMD") + 3:].strip())
        for problem in healthcheck_failures(command):
            outcome.fail("docker", f"{DOCKERFILE}:{checks[-1].line}", f"HEALTHCHECK: {problem}")

    manifest = (root / PACKAGE_MANIFEST).read_text(encoding="utf-8")
    products = set(re.findall(r'\.executable\(\s*name:\s*"([^"]+)"', manifest))
    built = {name for i in instructions if i.keyword == "RUN"
             for name in re.findall(r"--product[= ]\s*([^\s&;|]+)", i.arguments)}
    for name in sorted(built - products):
        outcome.fail("docker", str(DOCKERFILE), f"builds --product {name}, which Package.swift does not declare")
    runtime = instructions[max(n for n, i in enumerate(instructions) if i.keyword == "FROM"):]
    copied = " ".join(i.arguments for i in runtime if i.keyword == "COPY")
    for name in SHIPPED_BINARIES:
        if name not in built or f"/{name} " not in copied + " ":
            outcome.fail("docker", str(DOCKERFILE), f"the image does not build and ship {name}")
    floating = re.findall(r'\.package\(\s*url:\s*"[^"]+/([^"/]+?)(?:\.git)?",\s*(?!exact:)\w+:', manifest)
    for name in floating:
        outcome.fail("docker", "Package.swift", f"the dependency {name} is not pinned with `exact:`: without a "
                     f"committed Package.resolved, the versions in the image would float")
    outcome.notes.append(f"docker: hadolint passed; {len(stages) + 1} stages on digest-pinned base images; "
                         f"HEALTHCHECK passes on 200, fails on 503 and a closed port, passes with the server off; "
                         f"ships {', '.join(SHIPPED_BINARIES)}")


# --- Operations guide ---------------------------------------------------------------------------------------

def kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


def declared_options(source: str, type_sources: str) -> list[str]:
    """`--flag` names of the @Option/@Flag properties in `source`, following @OptionGroup types declared in
    `type_sources`."""
    flags = []
    for match in re.finditer(r"@(Option|Flag|OptionGroup)\b(.*?)\bvar\s+(\w+)\s*(?::\s*(\w+))?", source, re.S):
        kind, attribute, name, type_name = match.groups()
        if kind == "OptionGroup":
            body = re.search(r"struct\s+" + re.escape(type_name or "?") + r"\b[^{]*\{(.*?)\n\}", type_sources, re.S)
            if body:
                flags += declared_options(body.group(1), type_sources)
            continue
        custom = re.search(r'customLong\("([^"]+)"\)', attribute)
        flags.append("--" + (custom.group(1) if custom else kebab(name)))
    return flags


def check_docs(root: Path, outcome: Outcome) -> None:
    guide = (root / OPERATIONS_GUIDE).read_text(encoding="utf-8")
    command = (root / RUN_COMMAND).read_text(encoding="utf-8")
    cli_sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted((root / RUN_COMMAND.parent).glob("*.swift")))
    run_struct = re.search(r"struct\s+RunCommand\b[^{]*\{(.*?)\n\}", command, re.S)
    flags = declared_options(run_struct.group(1) if run_struct else command, cli_sources)
    for flag in flags:
        if not re.search(re.escape(flag) + r"(?![\w-])", guide):
            outcome.fail("docs", str(OPERATIONS_GUIDE), f"`minirbt-stream run {flag}` ({RUN_COMMAND.parent}) is not documented")
    # The settings' own variables are in the generated tables (a Swift test keeps them current); what the
    # command line reads besides them must be documented too.
    variables = sorted(set(re.findall(r'"(MINIRBT_[A-Z0-9_]+)"', cli_sources)) | run_setting_variables(root))
    for name in variables:
        if not re.search(r"\b" + name + r"\b", guide):
            outcome.fail("docs", str(OPERATIONS_GUIDE), f"the environment variable {name} is not documented")
    outcome.notes.append(f"docs: {OPERATIONS_GUIDE} documents all {len(flags)} run options and {len(variables)} variables")


# --- Driver ---------------------------------------------------------------------------------------------------

GROUPS = ("lint", "render", "rollout", "invalid", "package", "docker", "docs")


def check_lint(tools: Tools, root: Path, outcome: Outcome) -> None:
    value_sets = [None] + sorted((root / CI_VALUES).glob("*.yaml"))
    results = parallel(lambda values: run([tools.helm, "lint", "--strict", str(root / CHART)]
                                          + (["-f", str(values)] if values else [])), value_sets)
    for values, result in zip(value_sets, results):
        if result.returncode != 0:
            outcome.fail("lint", values.name if values else "defaults", first_lines(result.stdout + result.stderr, 10))
    outcome.notes.append(f"lint: helm lint --strict passed on the defaults and {len(value_sets) - 1} value sets")


def run_checks(tools: Tools, root: Path, groups: tuple[str, ...] = GROUPS, invalid_only: str | None = None,
               render_only: tuple[str, ...] | None = None, validate: bool = True) -> Outcome:
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="check-deploy-") as scratch_name:
        scratch = Path(scratch_name)
        if "lint" in groups:
            check_lint(tools, root, outcome)
        if "render" in groups:
            renders = render_value_sets(tools, root, scratch, outcome, render_only)
            outcome.notes.append(f"render: helm template rendered {len(renders)} value sets: "
                                 f"{', '.join(r.name for r in renders)}")
            if validate:
                check_kubernetes_validate(tools, root, renders, outcome)
            check_manifests(root, renders, outcome)
        if "rollout" in groups:
            check_rollout(tools, root, scratch, outcome, render_only)
        if "invalid" in groups:
            check_invalid(tools, root, outcome, invalid_only)
        if "package" in groups:
            check_package(tools, root, scratch, outcome)
        if "docker" in groups:
            check_dockerfile(tools, root, outcome)
        if "docs" in groups:
            check_docs(root, outcome)
    return outcome


# --- Self-test: undo each fix on a copy and expect the check to notice ------------------------------------------

@dataclass(frozen=True)
class Sabotage:
    name: str
    groups: tuple[str, ...]
    apply: Callable[[Path], None]
    expected_check: str
    expected_text: str
    invalid_only: str | None = None      # the one invalid value set to try
    render_only: tuple[str, ...] = ()    # the ci/ value sets to render, or the rollout pairs to try (all when empty)
    validate: bool = False               # run kubernetes-validate and the CRD schemas on them


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise AssertionError(f"self-test setup: {old!r} not found in {path}")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


T = CHART / "templates"
# The ConfigMap's librdkafka properties as the chart wrote them before the fix: kafka.properties, then the TLS
# file locations, with nothing to stop both from naming the same property.
OLD_KAFKA_ENVIRONMENT = """  {{- range $property, $value := .Values.kafka.properties }}
  {{ printf "KAFKA_%s" ($property | upper | replace "." "_") }}: {{ $value | toString | quote }}
  {{- end }}
  {{- if .Values.kafka.tls.enabled }}
  {{- with .Values.kafka.tls.caKey }}
  KAFKA_SSL_CA_LOCATION: {{ printf "%s/%s" $.Values.kafka.tls.mountPath . | quote }}
  {{- end }}
  {{- end }}
"""
SABOTAGES = [
    Sabotage("only the ConfigMap has a checksum annotation (finding 1)", ("rollout",),
             lambda r: edit(r / T / "workload.yaml",
                            "        checksum/kafka-credentials: {{ toJson .Values.kafka.credentials.values | sha256sum }}\n", ""),
             "rollout", "the Kafka credentials of a chart-made Secret: the pod template's annotations do not change",
             render_only=("the Kafka credentials of a chart-made Secret",)),
    Sabotage("the verification key has no checksum annotation (finding 1)", ("rollout",),
             lambda r: edit(r / T / "workload.yaml", '.Values.control.verifyKey.secretKey .Values.control.verifyKey.publicKey',
                            '.Values.control.verifyKey.secretKey ""'),
             "rollout", "the verification key pasted into values", render_only=("the verification key pasted into values",)),
    Sabotage("the StatefulSet's governing Service is not headless (finding 2)", ("render",),
             lambda r: edit(r / T / "service.yaml", "  clusterIP: None\n", ""),
             "render", "is not headless", render_only=("statefulset-exactly-once-keda-values.yaml",)),
    Sabotage("the StatefulSet has no static group membership", ("render",),
             lambda r: edit(r / T / "workload.yaml", '{{- if eq .Values.workloadKind "StatefulSet" }}\n            # Static group',
                            '{{- if false }}\n            # Static group'),
             "render", "does not set MINIRBT_GROUP_INSTANCE_ID", render_only=("statefulset-exactly-once-keda-values.yaml",)),
    Sabotage("the Deployment has static group membership", ("render",),
             lambda r: edit(r / T / "workload.yaml", '{{- if eq .Values.workloadKind "StatefulSet" }}\n            # Static group',
                            '{{- if true }}\n            # Static group'),
             "render", "the Deployment sets MINIRBT_GROUP_INSTANCE_ID", render_only=("default-values.yaml",)),
    Sabotage("podLabels can override app.kubernetes.io/name (finding 3)", ("invalid",),
             lambda r: edit(r / T / "_helpers.tpl", 'list "app.kubernetes.io/name" "app.kubernetes.io/instance"', "list"),
             "invalid", "pod-labels-override-name.yaml: rendered", "pod-labels-override-name.yaml"),
    Sabotage("podLabels win over the selector labels in the pod template (finding 3)", ("render",),
             lambda r: (edit(r / T / "workload.yaml", '{{- merge (include "minirbt-stream.selectorLabels" . | fromYaml) .Values.podLabels',
                             '{{- merge (dict) .Values.podLabels (include "minirbt-stream.selectorLabels" . | fromYaml)'),
                        edit(r / CI_VALUES / "pattern-hpa-values.yaml", "  team: nlp\n", "  team: nlp\n  app.kubernetes.io/name: other\n"),
                        edit(r / T / "_helpers.tpl", 'list "app.kubernetes.io/name" "app.kubernetes.io/instance"', "list")),
             "render", "do not carry the selector", render_only=("pattern-hpa-values.yaml",)),
    Sabotage("KEDA and HPA together fail with the schema's opaque `not` (finding 4)", ("invalid",),
             lambda r: edit(r / T / "_helpers.tpl", "{{- if and $v.autoscaling.keda.enabled $v.autoscaling.hpa.enabled }}",
                            "{{- if false }}"),
             "invalid", "keda-and-hpa.yaml: rendered", "keda-and-hpa.yaml"),
    Sabotage("HPA minReplicas > maxReplicas renders silently (finding 5)", ("invalid",),
             lambda r: edit(r / T / "_helpers.tpl", "(gt (int $scaler.minReplicas) (int $scaler.maxReplicas))", "false"),
             "invalid", "hpa-min-above-max.yaml: rendered", "hpa-min-above-max.yaml"),
    Sabotage("minAvailable: 0 renders silently (finding 5)", ("invalid",),
             lambda r: edit(r / T / "_helpers.tpl", '{{- if eq (trimSuffix "%" (toString $pdb.minAvailable)) "0" }}', "{{- if false }}"),
             "invalid", "pdb-min-available-zero.yaml: rendered", "pdb-min-available-zero.yaml"),
    Sabotage("stream.inputTopics={} keeps its empty string (finding 6)", ("render",),
             lambda r: edit(r / T / "_helpers.tpl", "{{- compact .Values.stream.inputTopics | toJson }}",
                            "{{- .Values.stream.inputTopics | toJson }}"),
             "render", "pattern-hpa-values.yaml: helm template failed", render_only=("pattern-hpa-values.yaml",)),
    Sabotage("an empty topic reaches the ConfigMap (finding 6)", ("render",),
             lambda r: (edit(r / T / "configmap.yaml", '{{ include "minirbt-stream.inputTopics" . | fromJsonArray | join "," | quote }}',
                             '{{ join "," .Values.stream.inputTopics | quote }}'),
                        edit(r / CI_VALUES / "default-values.yaml", "control:", "stream:\n  inputTopics: [reviews, \"\"]\ncontrol:")),
             "render", "has an empty topic", render_only=("default-values.yaml",)),
    Sabotage("TLS and kafka.properties write KAFKA_SSL_CA_LOCATION twice (finding 7)", ("render",),
             lambda r: (edit(r / T / "configmap.yaml", '{{- range $name, $value := include "minirbt-stream.kafkaEnvironment" . | fromJson }}\n'
                             '  {{ $name }}: {{ $value | quote }}\n  {{- end }}\n', OLD_KAFKA_ENVIRONMENT),
                        edit(r / CI_VALUES / "dashboards-values.yaml", "    security.protocol: SSL\n",
                             "    security.protocol: SSL\n    ssl.ca.location: /etc/ssl/certs/ca-certificates.crt\n")),
             "render", "duplicate key 'KAFKA_SSL_CA_LOCATION'", render_only=("dashboards-values.yaml",)),
    Sabotage("service links stay on (finding 8)", ("render",),
             lambda r: edit(r / T / "workload.yaml", "      enableServiceLinks: false\n", ""),
             "render", "enableServiceLinks: false", render_only=("kafka-named-service-values.yaml",)),
    Sabotage("a misspelt field reaches the cluster (kubernetes-validate --strict)", ("render",),
             lambda r: edit(r / T / "workload.yaml", "      enableServiceLinks: false\n",
                            "      enableServiceLinks: false\n      enableServiceLink: false\n"),
             "render", "kubernetes-validate --strict", render_only=("default-values.yaml",), validate=True),
    Sabotage("a KEDA trigger value is not a string (vendored CRD schema)", ("render",),
             lambda r: edit(r / T / "scaledobject.yaml", "lagThreshold: {{ $.Values.autoscaling.keda.lagThreshold | quote }}",
                            "lagThreshold: {{ $.Values.autoscaling.keda.lagThreshold }}"),
             "render", "vendored CRD schema", render_only=("statefulset-exactly-once-keda-values.yaml",), validate=True),
    Sabotage("the chart sets a variable the binary does not read", ("render",),
             lambda r: edit(r / T / "configmap.yaml", "\ndata:\n", "\ndata:\n  MINIRBT_NOT_A_SETTING: \"1\"\n"),
             "render", "MINIRBT_NOT_A_SETTING, which the binary does not read", render_only=("default-values.yaml",)),
    Sabotage("the alerts use an undocumented metric", ("render",),
             lambda r: edit(r / T / "prometheusrule.yaml", "max(minirbt_shard_queue_depth", "max(minirbt_shard_queue_dept"),
             "render", "minirbt_shard_queue_dept, which", render_only=("dashboards-values.yaml",)),
    Sabotage("priorityClassName is ignored (finding 9)", ("render",),
             lambda r: edit(r / T / "workload.yaml", "      priorityClassName: {{ . }}\n", ""),
             "render", "priorityClassName 'streaming-high' is not in the pod spec",
             render_only=("statefulset-exactly-once-keda-values.yaml",)),
    Sabotage("extra volumes are not mounted (finding 9)", ("render",),
             lambda r: edit(r / T / "workload.yaml", "            {{- with .Values.extraVolumeMounts }}", "            {{- with false }}"),
             "render", "extra volume mount models is not in the container", render_only=("standalone-values.yaml",)),
    Sabotage("topology spread constraints select no pods (finding 9)", ("render",),
             lambda r: edit(r / T / "workload.yaml", '{{- if not (hasKey $constraint "labelSelector") }}', "{{- if false }}"),
             "render", "does not select the release's pods", render_only=("statefulset-exactly-once-keda-values.yaml",)),
    Sabotage("a Chart.yaml without maintainers, home, sources (finding 9)", ("package",),
             lambda r: edit(r / CHART / "Chart.yaml", "maintainers:", "nobody:"),
             "package", "maintainers is missing"),
    Sabotage("no .helmignore (finding 9)", ("package",),
             lambda r: (r / CHART / ".helmignore").unlink(),
             "package", "lacks .helmignore"),
    Sabotage("the README misses a value (finding 9)", ("package",),
             lambda r: edit(r / CHART / "README.md", "`networkPolicy`", "network policy"),
             "package", "the value `networkPolicy` is not described"),
    Sabotage("base images pinned by tag only (Dockerfile finding)", ("docker",),
             lambda r: edit(r / DOCKERFILE, "swift:6.3-bookworm@sha256:7060a792f4cd9eaa0d00826d941cec00ab8d252d33b8b28bc8e105f51f2dba73",
                            "swift:6.3-bookworm"),
             "docker", "is not pinned by digest"),
    Sabotage("a dependency floats (Dockerfile finding: no Package.resolved)", ("docker",),
             lambda r: edit(r / PACKAGE_MANIFEST, 'swift-log", exact: "1.16.2"', 'swift-log", from: "1.16.2"'),
             "docker", "swift-log is not pinned"),
    Sabotage("HEALTHCHECK with MINIRBT_METRICS_PORT=0 (Dockerfile finding)", ("docker",),
             lambda r: edit(r / DOCKERFILE, r'[ \"$port\" = 0 ] && exit 0; ', ""),
             "docker", "MINIRBT_METRICS_PORT=0"),
    Sabotage("cd inside RUN (hadolint DL3003)", ("docker",),
             lambda r: edit(r / DOCKERFILE, "RUN ./configure", "RUN cd /usr/src/rdkafka/librdkafka && ./configure"),
             "docker", "DL3003"),
    Sabotage("unpinned apt package (hadolint DL3008)", ("docker",),
             lambda r: edit(r / DOCKERFILE, "libdnnl-dev=2.6.3-1", "libdnnl-dev"),
             "docker", "DL3008"),
    Sabotage("a pipe without pipefail (hadolint DL4006)", ("docker",),
             lambda r: edit(r / DOCKERFILE, 'FROM ${RUNTIME_IMAGE} AS runtime\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n',
                            "FROM ${RUNTIME_IMAGE} AS runtime\n"),
             "docker", "DL4006"),
    Sabotage("the guide misses a run flag", ("docs",),
             lambda r: (r / OPERATIONS_GUIDE).write_text((r / OPERATIONS_GUIDE).read_text(encoding="utf-8")
                                                         .replace("--max-wait-ms", "--max-wait"), encoding="utf-8"),
             "docs", "`minirbt-stream run --max-wait-ms`"),
]


def copy_tree_for_checks(source: Path, destination: Path) -> None:
    for relative_path in (Path("helm"), DOCKERFILE.parent, Path("Sources"), OPERATIONS_GUIDE, PACKAGE_MANIFEST):
        origin, target = source / relative_path, destination / relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, target)


def self_test(tools: Tools, root: Path) -> int:
    problems = []
    with tempfile.TemporaryDirectory(prefix="check-deploy-self-test-") as scratch:
        for number, sabotage in enumerate(SABOTAGES):
            started = time.monotonic()
            tree = Path(scratch) / f"case-{number}"
            copy_tree_for_checks(root, tree)
            sabotage.apply(tree)
            failures = run_checks(tools, tree, sabotage.groups, sabotage.invalid_only,
                                  sabotage.render_only or None, sabotage.validate).failures
            caught = [f for f in failures if f.check == sabotage.expected_check and sabotage.expected_text in str(f)]
            if caught:
                print(f"ok    {sabotage.name} ({time.monotonic() - started:.1f} s)\n        -> {caught[0]}")
            else:
                problems.append(sabotage.name)
                print(f"FAIL  {sabotage.name}: expected a [{sabotage.expected_check}] failure containing "
                      f"{sabotage.expected_text!r}; got: {[str(f) for f in failures] or 'no failures'}")
            shutil.rmtree(tree)
    if problems:
        print(f"self-test: {len(problems)} of {len(SABOTAGES)} sabotages went unnoticed", file=sys.stderr)
        return 1
    print(f"self-test: all {len(SABOTAGES)} sabotages were caught by the check meant to catch them")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository root to check (default: this script's repository)")
    parser.add_argument("--self-test", action="store_true", help="prove that the checks catch each undone fix")
    parser.add_argument("--only", action="append", choices=GROUPS, help="run only these check groups")
    arguments = parser.parse_args()
    root, tools = arguments.root.resolve(), Tools.find()
    if arguments.self_test:
        return self_test(tools, root)
    started = time.monotonic()
    outcome = run_checks(tools, root, tuple(arguments.only or GROUPS))
    for note in outcome.notes:
        print(note)
    for failure in outcome.failures:
        print(failure, file=sys.stderr)
    if outcome.failures:
        print(f"check-deploy: {len(outcome.failures)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-deploy: chart, renders, invalid values, Dockerfile and operations guide are consistent "
          f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
