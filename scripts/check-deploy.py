#!/usr/bin/env python3
"""Static checks of the deployment artifacts: the Helm chart, the Dockerfile and the operations guide.

There is no Helm binary and no Docker engine on the development machines, so nothing here renders a
template or builds an image. What IS checked, precisely:

  yaml        Every YAML file under helm/ parses. Non-template files (Chart.yaml, values.yaml) are parsed
              as they are. Template files are parsed as a *skeleton*: lines holding nothing but template
              actions ({{- if }}, {{- include ... | nindent 4 }}, ...) become blank, and actions inside a
              line become the scalar TEMPLATED. Both branches of an if/else are therefore parsed together;
              this catches indentation and syntax mistakes in the literal YAML, not in what the actions
              emit. Each non-empty skeleton document must be a mapping with apiVersion, kind and metadata.
  actions     Template actions are balanced: every if/range/with/define/block has its end, no stray end,
              and no unclosed "{{".
  values      values.yaml validates against values.schema.json (JSON Schema draft 7, as Helm applies it).
  refs        Every .Values.a.b path written in a template (also in _helpers.tpl and NOTES.txt) exists in
              values.yaml. Paths reached through `with`/`range` (a bare `.x`) cannot be resolved
              statically and are not checked.
  chart       Chart.yaml has apiVersion v2, name (equal to the chart directory's name), a SemVer version,
              appVersion and type (application or library).
  env         Every MINIRBT_* variable the chart sets is one the Swift sources read (appears as a string
              literal in Sources/), so the chart cannot configure a setting the binary ignores.
  dockerfile  Every `--product X` built is an executable product of Package.swift; the runtime (last) stage
              copies minirbt-stream and minirbt-admin, each of them built by an earlier stage; ENTRYPOINT
              names a shipped binary; the runtime stage runs as a non-root USER and has a HEALTHCHECK that
              probes /healthz.
  render      Only when the PyPI package helm-python-sdk (Helm's own engine as a library) is importable:
              the chart is rendered for several value sets (defaults, StatefulSet + exactly-once + KEDA +
              TLS/SASL, input pattern + HPA, control plane off), every manifest must parse as YAML, the
              workload must keep its safety properties (grace period > 30 s drain, /healthz and /readyz
              probes, non-root, read-only root filesystem, pod name as MINIRBT_INSTANCE_ID), and invalid
              combinations must be refused. Without the package this check says it was skipped.
  docs        docs/operations.md mentions every option of `minirbt-stream run` (parsed from the
              @Option/@Flag declarations of Sources/StreamCLI/RunCommand.swift and its @OptionGroup types)
              and every MINIRBT_* variable those sources read.

Usage:
  python3 scripts/check-deploy.py              run the checks on the repository; exit 1 on any failure
  python3 scripts/check-deploy.py --self-test  prove the checks can fail: break copies of the files in
                                               a temporary directory and assert each break is reported
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

try:
    import jsonschema
    import yaml
except ImportError as missing:  # pragma: no cover - depends on the machine
    print(f"check-deploy: the Python module '{missing.name}' is missing; install the checker's dependencies "
          f"with: python3 -m pip install pyyaml jsonschema", file=sys.stderr)
    sys.exit(2)

CHART_DIR = Path("helm/minirbt-stream")
DOCKERFILE = Path("docker/Dockerfile")
PACKAGE_MANIFEST = Path("Package.swift")
RUN_COMMAND = Path("Sources/StreamCLI/RunCommand.swift")
OPERATIONS_GUIDE = Path("docs/operations.md")
# The chart runs minirbt-stream and its NOTES tell operators to run minirbt-admin from the same image.
SHIPPED_BINARIES = ("minirbt-stream", "minirbt-admin")

ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)
VALUES_PATH = re.compile(r"(?<![\w.])\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
BLOCK_OPENERS = ("if", "range", "with", "define", "block")
ENV_NAME = re.compile(r"\bMINIRBT_[A-Z0-9_]+\b")
PLACEHOLDER = "TEMPLATED"


@dataclass(frozen=True)
class Failure:
    check: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


def relative(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


# --- Helm templates -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    body: str          # the text between the delimiters, trims and whitespace removed
    line: int
    start: int
    end: int

    @property
    def is_comment(self) -> bool:
        return self.body.startswith("/*")

    @property
    def keyword(self) -> str:
        words = self.body.split(None, 1)
        return words[0] if words else ""


def template_actions(text: str) -> list[Action]:
    return [Action(match.group(2).strip(), line_of(text, match.start()), match.start(), match.end())
            for match in ACTION.finditer(text)]


def check_action_balance(root: Path, path: Path, text: str) -> list[Failure]:
    where = relative(root, path)
    failures: list[Failure] = []
    unclosed = text.count("{{") - len(ACTION.findall(text))
    if unclosed:
        failures.append(Failure("actions", where, f"{unclosed} '{{{{' without a matching '}}}}'"))
    open_blocks: list[Action] = []
    for action in template_actions(text):
        if action.is_comment:
            continue
        if action.keyword in BLOCK_OPENERS:
            open_blocks.append(action)
        elif action.keyword == "end":
            if not open_blocks:
                failures.append(Failure("actions", f"{where}:{action.line}", "'end' closes no if/range/with/define"))
            else:
                open_blocks.pop()
    for action in open_blocks:
        failures.append(Failure("actions", f"{where}:{action.line}",
                                f"'{action.keyword}' is never closed by an 'end'"))
    return failures


def yaml_skeleton(text: str) -> str:
    """The template with action-only lines blanked and inline actions replaced by a scalar; lines keep their
    numbers so parse errors point at the template's own lines."""
    lines = []
    for line in text.split("\n"):
        if line.strip() and not ACTION.sub("", line).strip():
            lines.append("")
        else:
            lines.append(ACTION.sub(PLACEHOLDER, line))
    return "\n".join(lines)


def check_template_yaml(root: Path, path: Path, text: str) -> list[Failure]:
    where = relative(root, path)
    try:
        documents = list(yaml.safe_load_all(yaml_skeleton(text)))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        location = f"{where}:{mark.line + 1}" if mark else where
        problem = getattr(error, "problem", None) or str(error)
        return [Failure("yaml", location, f"the template's YAML skeleton does not parse: {problem}")]
    failures = []
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        if not isinstance(document, dict):
            failures.append(Failure("yaml", where, f"document {number} is a {type(document).__name__}, "
                                                   f"expected a Kubernetes object (a mapping)"))
            continue
        missing = [key for key in ("apiVersion", "kind", "metadata") if key not in document]
        if missing:
            failures.append(Failure("yaml", where, f"document {number} lacks {', '.join(missing)}"))
    return failures


def resolve_values_path(values: object, segments: list[str]) -> str | None:
    """None when the path exists in values.yaml, else why not."""
    node = values
    for depth, segment in enumerate(segments):
        parent = ".".join(segments[:depth])
        if not isinstance(node, dict):
            return f"'{parent}' is a {type(node).__name__} in values.yaml, not a map with '{segment}'"
        if segment not in node:
            return f"'{segment}' is not a key of {f'{parent!r} in ' if parent else ''}values.yaml"
        node = node[segment]
    return None


def check_values_references(root: Path, chart: Path, values: object) -> list[Failure]:
    failures = []
    for path in sorted((chart / "templates").rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for action in template_actions(text):
            if action.is_comment:
                continue
            for match in VALUES_PATH.finditer(action.body):
                dotted = match.group(1)[1:]
                reason = resolve_values_path(values, dotted.split("."))
                if reason:
                    failures.append(Failure("refs", f"{relative(root, path)}:{action.line}",
                                            f".Values.{dotted} does not exist: {reason}"))
    return failures


def chart_env_names(chart: Path) -> dict[str, tuple[Path, int]]:
    """MINIRBT_* names the chart sets (first occurrence of each)."""
    names: dict[str, tuple[Path, int]] = {}
    for path in sorted((chart / "templates").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for match in ENV_NAME.finditer(text):
            names.setdefault(match.group(0), (path, line_of(text, match.start())))
    return names


def swift_sources_text(root: Path) -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted((root / "Sources").rglob("*.swift")))


def check_env_names(root: Path, chart: Path) -> list[Failure]:
    literals = set(re.findall(r'"(MINIRBT_[A-Z0-9_]+)', swift_sources_text(root)))
    return [Failure("env", f"{relative(root, path)}:{line}",
                    f"{name} is set by the chart but no Swift source reads it (no \"{name}\" literal in Sources/)")
            for name, (path, line) in chart_env_names(chart).items() if name not in literals]


def check_chart_metadata(root: Path, chart: Path) -> list[Failure]:
    path = chart / "Chart.yaml"
    where = relative(root, path)
    try:
        metadata = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        return [Failure("chart", where, f"cannot be read: {error}")]
    if not isinstance(metadata, dict):
        return [Failure("chart", where, "is not a mapping")]
    failures = []
    if metadata.get("apiVersion") != "v2":
        failures.append(Failure("chart", where, f"apiVersion must be v2 (Helm 3), got {metadata.get('apiVersion')!r}"))
    if metadata.get("name") != chart.name:
        failures.append(Failure("chart", where, f"name must be the chart directory's name {chart.name!r}, "
                                                f"got {metadata.get('name')!r}"))
    semver = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
    if not semver.match(str(metadata.get("version", ""))):
        failures.append(Failure("chart", where, f"version must be SemVer 2, got {metadata.get('version')!r}"))
    if not isinstance(metadata.get("appVersion"), str) or not metadata["appVersion"]:
        failures.append(Failure("chart", where, f"appVersion must be a non-empty string (quote it), "
                                                f"got {metadata.get('appVersion')!r}"))
    if metadata.get("type") not in ("application", "library"):
        failures.append(Failure("chart", where, f"type must be application or library, got {metadata.get('type')!r}"))
    return failures


def check_chart(root: Path) -> list[Failure]:
    chart = root / CHART_DIR
    if not chart.is_dir():
        return [Failure("chart", str(CHART_DIR), "the chart directory is missing")]
    failures: list[Failure] = []
    values: object = None
    for path in sorted(chart.rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if "templates" in path.relative_to(chart).parts:
            failures += check_action_balance(root, path, text)
            failures += check_template_yaml(root, path, text)
            continue
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            failures.append(Failure("yaml", f"{relative(root, path)}:{mark.line + 1 if mark else '?'}",
                                    f"does not parse: {getattr(error, 'problem', None) or error}"))
            continue
        if path == chart / "values.yaml":
            values = documents[0] if documents else {}
    for path in sorted((chart / "templates").glob("*.tpl")) + sorted((chart / "templates").glob("*.txt")):
        failures += check_action_balance(root, path, path.read_text(encoding="utf-8"))

    failures += check_chart_metadata(root, chart)
    if not isinstance(values, dict):
        failures.append(Failure("values", relative(root, chart / "values.yaml"), "missing, unparseable or not a map"))
        return failures
    failures += check_values_schema(root, chart, values)
    failures += check_values_references(root, chart, values)
    failures += check_env_names(root, chart)
    return failures


def check_values_schema(root: Path, chart: Path, values: dict) -> list[Failure]:
    schema_path = chart / "values.schema.json"
    where = relative(root, schema_path)
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        return [Failure("values", where, f"cannot be read as JSON: {error}")]
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        return [Failure("values", where, f"is not a valid JSON Schema: {error.message}")]
    failures = []
    for error in sorted(validator_class(schema).iter_errors(values), key=lambda e: list(map(str, e.absolute_path))):
        location = ".".join(map(str, error.absolute_path)) or "(top level)"
        failures.append(Failure("values", relative(root, chart / "values.yaml"),
                                f"{location}: {error.message} (schema rule {'/'.join(map(str, error.schema_path))})"))
    return failures


# --- Dockerfile -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    instructions = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        joined = " ".join(part.strip() for part in pending)
        keyword, _, arguments = joined.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), arguments.strip()))
        pending = []
    return instructions


def executable_products(manifest: str) -> set[str]:
    return set(re.findall(r'\.executable\(\s*name:\s*"([^"]+)"', manifest))


def check_dockerfile(root: Path) -> list[Failure]:
    path = root / DOCKERFILE
    where = relative(root, path)
    try:
        text = path.read_text(encoding="utf-8")
        manifest = (root / PACKAGE_MANIFEST).read_text(encoding="utf-8")
    except OSError as error:
        return [Failure("dockerfile", where, f"cannot read the Dockerfile or Package.swift: {error}")]
    products = executable_products(manifest)
    if not products:
        return [Failure("dockerfile", str(PACKAGE_MANIFEST), "declares no .executable(name:) product")]
    known = ", ".join(sorted(products))
    failures: list[Failure] = []

    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    if not stages:
        return [Failure("dockerfile", where, "has no FROM instruction")]

    built: set[str] = set()
    for stage in stages[:-1]:
        for instruction in stage:
            if instruction.keyword != "RUN":
                continue
            for name in re.findall(r"--product[= ]\s*[\"']?([^\s\"'&;|]+)", instruction.arguments):
                if name in products:
                    built.add(name)
                else:
                    failures.append(Failure("dockerfile", f"{where}:{instruction.line}",
                                            f"builds --product {name}, which is not an executable product of "
                                            f"Package.swift (it has: {known})"))

    runtime = stages[-1]
    shipped: set[str] = set()
    for instruction in runtime:
        if instruction.keyword != "COPY" or "--from=" not in instruction.arguments:
            continue
        operands = [word for word in instruction.arguments.split() if not word.startswith("--")]
        sources, destination = operands[:-1], operands[-1] if operands else ""
        for source in sources:
            if "/bin/" in source or destination.rstrip("/").endswith("/bin") or "/bin/" in destination:
                name = source.rstrip("/").rsplit("/", 1)[-1]
                if name not in products:
                    failures.append(Failure("dockerfile", f"{where}:{instruction.line}",
                                            f"ships the binary {name}, which is not an executable product of "
                                            f"Package.swift (it has: {known})"))
                elif name not in built:
                    failures.append(Failure("dockerfile", f"{where}:{instruction.line}",
                                            f"ships {name}, but no earlier stage builds it with --product {name}"))
                shipped.add(name)
    for name in SHIPPED_BINARIES:
        if name not in products:
            failures.append(Failure("dockerfile", str(PACKAGE_MANIFEST), f"no executable product named {name}"))
        if name not in shipped:
            failures.append(Failure("dockerfile", where, f"the runtime stage does not COPY the {name} binary"))

    entrypoints = [i for i in runtime if i.keyword == "ENTRYPOINT"]
    if entrypoints:
        try:
            command = json.loads(entrypoints[-1].arguments)
        except json.JSONDecodeError:
            command = entrypoints[-1].arguments.split()
        program = str(command[0]).rsplit("/", 1)[-1] if command else ""
        if program not in shipped:
            failures.append(Failure("dockerfile", f"{where}:{entrypoints[-1].line}",
                                    f"ENTRYPOINT runs {program!r}, which the runtime stage does not ship"))

    users = [i for i in runtime if i.keyword == "USER"]
    if not users:
        failures.append(Failure("dockerfile", where, "the runtime stage has no USER: the container would run as root"))
    elif users[-1].arguments.split(":")[0] in ("root", "0"):
        failures.append(Failure("dockerfile", f"{where}:{users[-1].line}",
                                f"the runtime stage runs as root (USER {users[-1].arguments}); use a non-root user"))

    checks = [i for i in runtime if i.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].arguments.upper().startswith("NONE"):
        failures.append(Failure("dockerfile", where, "the runtime stage has no HEALTHCHECK"))
    elif "/healthz" not in checks[-1].arguments:
        failures.append(Failure("dockerfile", f"{where}:{checks[-1].line}", "the HEALTHCHECK does not probe /healthz"))
    return failures


# --- Rendering with Helm's engine (optional) -------------------------------------------------------------

TEST_VERIFY_KEY = {"control": {"verifyKey": {"existingSecret": "minirbt-verify-key"}}}
RENDER_SCENARIOS: list[tuple[str, dict]] = [
    ("defaults with a verification key Secret", TEST_VERIFY_KEY),
    ("StatefulSet, exactly-once, KEDA, TLS and SASL", {
        **TEST_VERIFY_KEY,
        "workloadKind": "StatefulSet",
        "stream": {"delivery": "exactly-once", "inputTopics": ["reviews", "comments"]},
        "kafka": {"properties": {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512"},
                  "credentials": {"create": True, "values": {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}},
                  "tls": {"enabled": True, "existingSecret": "kafka-tls"}},
        "autoscaling": {"keda": {"enabled": True}},
        "serviceMonitor": {"enabled": True},
        "podAntiAffinity": {"mode": "hard"}}),
    ("input pattern and HPA", {**TEST_VERIFY_KEY, "stream": {"inputTopics": [], "inputPattern": "^reviews-.*$"},
                               "autoscaling": {"hpa": {"enabled": True}}, "podDisruptionBudget": {"minAvailable": "50%"}}),
    ("control plane off", {"control": {"enabled": False}, "registry": {"enabled": False},
                           "model": {"dir": "/models/minirbt/v1"}}),
]
REFUSED_SCENARIOS: list[tuple[str, dict, str]] = [
    ("control without a verification key", {}, "verifyKey"),
    ("KEDA and HPA together", {**TEST_VERIFY_KEY, "autoscaling": {"keda": {"enabled": True}, "hpa": {"enabled": True}}},
     "autoscaling"),
    ("nothing to consume", {**TEST_VERIFY_KEY, "stream": {"inputTopics": []}}, "stream"),
]


def workload_problems(manifest: dict) -> list[str]:
    pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
    container = (pod.get("containers") or [{}])[0]
    problems = []
    if not pod.get("terminationGracePeriodSeconds", 30) > 30:
        problems.append("terminationGracePeriodSeconds does not exceed the 30 s drain")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"{probe} does not GET {path}")
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        problems.append("the pod does not set runAsNonRoot: true")
    if container.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
        problems.append("the container's root filesystem is not read-only")
    instance = [e for e in container.get("env", []) if e.get("name") == "MINIRBT_INSTANCE_ID"]
    if not instance or instance[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append("MINIRBT_INSTANCE_ID is not the pod name (downward API metadata.name)")
    return problems


def check_render(root: Path) -> tuple[list[Failure], str]:
    try:
        from helm_python.chart import Chart
    except ImportError:
        return [], "render: skipped (python3 -m pip install helm-python-sdk renders the chart with Helm's engine)"
    chart_path = root / CHART_DIR
    where = relative(root, chart_path)
    failures = []
    for name, values in RENDER_SCENARIOS:
        try:
            manifests = Chart.load(str(chart_path)).render(values, name="check", namespace="check", is_install=True)
        except Exception as error:  # the library raises its own error types; any of them is a failure here
            failures.append(Failure("render", where, f"{name}: {error}"))
            continue
        workloads = 0
        for template, text in sorted(manifests.items()):
            if template.endswith("NOTES.txt"):
                continue
            try:
                documents = [d for d in yaml.safe_load_all(text) if d]
            except yaml.YAMLError as error:
                failures.append(Failure("render", template, f"{name}: rendered output is not YAML: {error}"))
                continue
            for document in documents:
                if document.get("kind") in ("Deployment", "StatefulSet"):
                    workloads += 1
                    failures += [Failure("render", template, f"{name}: {p}") for p in workload_problems(document)]
        if workloads != 1:
            failures.append(Failure("render", where, f"{name}: rendered {workloads} workloads, expected 1"))
    for name, values, expected in REFUSED_SCENARIOS:
        try:
            Chart.load(str(chart_path)).render(values, name="check", namespace="check", is_install=True)
            failures.append(Failure("render", where, f"{name}: the chart rendered, expected a refusal naming {expected}"))
        except Exception as error:
            if expected not in str(error):
                failures.append(Failure("render", where, f"{name}: refused, but the message does not name "
                                                         f"{expected}: {error}"))
    total = len(RENDER_SCENARIOS) + len(REFUSED_SCENARIOS)
    return failures, (f"render: {total} scenarios rendered or refused by Helm's engine as expected" if not failures
                      else f"render: {len(failures)} problem(s) in {total} scenarios")


# --- Operations guide ----------------------------------------------------------------------------------

def kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


def declared_options(source: str, type_sources: str) -> list[str]:
    """`--flag` names of the @Option/@Flag properties in `source`, following @OptionGroup types whose
    declarations are found in `type_sources`."""
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


def check_operations_guide(root: Path) -> list[Failure]:
    guide_path = root / OPERATIONS_GUIDE
    try:
        guide = guide_path.read_text(encoding="utf-8")
        command = (root / RUN_COMMAND).read_text(encoding="utf-8")
    except OSError as error:
        return [Failure("docs", str(OPERATIONS_GUIDE), f"cannot read the guide or {RUN_COMMAND}: {error}")]
    cli_sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted((root / RUN_COMMAND.parent).glob("*.swift")))
    run_struct = re.search(r"struct\s+RunCommand\b[^{]*\{(.*?)\n\}", command, re.S)
    failures = []
    for flag in declared_options(run_struct.group(1) if run_struct else command, cli_sources):
        if not re.search(re.escape(flag) + r"(?![\w-])", guide):
            failures.append(Failure("docs", str(OPERATIONS_GUIDE),
                                    f"`minirbt-stream run {flag}` (declared in {RUN_COMMAND.parent}) is not documented"))
    for name in sorted(set(re.findall(r'"(MINIRBT_[A-Z0-9_]+)"', cli_sources))):
        if not re.search(r"\b" + name + r"\b", guide):
            failures.append(Failure("docs", str(OPERATIONS_GUIDE), f"the environment variable {name} is not documented"))
    return failures


def run_checks(root: Path) -> list[Failure]:
    return check_chart(root) + check_dockerfile(root) + check_operations_guide(root)


# --- Self-test ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sabotage:
    name: str
    apply: Callable[[Path], None]
    expected_check: str
    expected_text: str


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise AssertionError(f"self-test setup: {old!r} not found in {path}")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


SABOTAGES = [
    Sabotage("a template names a value that does not exist",
             lambda root: write(root / CHART_DIR / "templates/extra.yaml",
                                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n"
                                "data:\n  x: {{ .Values.does.not.exist | quote }}\n"),
             "refs", ".Values.does.not.exist does not exist: 'does' is not a key"),
    Sabotage("a template goes below a leaf value",
             lambda root: write(root / CHART_DIR / "templates/extra.yaml",
                                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n"
                                "data:\n  x: {{ .Values.stream.shards.count }}\n"),
             "refs", "'stream.shards' is a int"),
    Sabotage("values.yaml breaks the schema",
             lambda root: edit(root / CHART_DIR / "values.yaml", "replicaCount: 2", 'replicaCount: "two"'),
             "values", "replicaCount: 'two' is not of type 'integer'"),
    Sabotage("values.yaml sets a grace period shorter than the drain",
             lambda root: edit(root / CHART_DIR / "values.yaml", "terminationGracePeriodSeconds: 45",
                               "terminationGracePeriodSeconds: 10"),
             "values", "terminationGracePeriodSeconds: 10 is less than the minimum of 35"),
    Sabotage("values.yaml has a key the schema does not know",
             lambda root: edit(root / CHART_DIR / "values.yaml", "replicaCount: 2", "replicaCount: 2\nreplicas: 3"),
             "values", "'replicas' was unexpected"),
    Sabotage("a template's YAML is broken",
             lambda root: edit(root / CHART_DIR / "templates/service.yaml", "  type: {{", "type: [{{"),
             "yaml", "templates/service.yaml"),
    Sabotage("a template leaves an if open",
             lambda root: edit(root / CHART_DIR / "templates/servicemonitor.yaml", "{{- end }}\n", ""),
             "actions", "'if' is never closed"),
    Sabotage("Chart.yaml is a Helm 2 chart",
             lambda root: edit(root / CHART_DIR / "Chart.yaml", "apiVersion: v2", "apiVersion: v1"),
             "chart", "apiVersion must be v2"),
    Sabotage("Chart.yaml lacks appVersion",
             lambda root: edit(root / CHART_DIR / "Chart.yaml", 'appVersion: "0.1.0"\n', ""),
             "chart", "appVersion must be a non-empty string"),
    Sabotage("the chart sets a variable the binary does not read",
             lambda root: edit(root / CHART_DIR / "templates/configmap.yaml", "data:\n",
                               "data:\n  MINIRBT_NOT_A_SETTING: \"1\"\n"),
             "env", "MINIRBT_NOT_A_SETTING is set by the chart but no Swift source reads it"),
    Sabotage("the Dockerfile builds a binary the package does not have",
             lambda root: edit(root / DOCKERFILE, "--product minirbt-admin", "--product minirbt-ghost"),
             "dockerfile", "builds --product minirbt-ghost, which is not an executable product"),
    Sabotage("the Dockerfile ships a binary the package does not have",
             lambda root: edit(root / DOCKERFILE, "/out/bin/minirbt-admin /usr/local/bin/minirbt-admin",
                               "/out/bin/minirbt-ghost /usr/local/bin/minirbt-ghost"),
             "dockerfile", "ships the binary minirbt-ghost"),
    Sabotage("the Dockerfile runs as root",
             lambda root: edit(root / DOCKERFILE, "USER 10001:10001", "USER root"),
             "dockerfile", "runs as root"),
    Sabotage("the Dockerfile has no health check on /healthz",
             lambda root: edit(root / DOCKERFILE, "GET /healthz", "GET /"),
             "dockerfile", "does not probe /healthz"),
    Sabotage("the guide misses a run flag",
             lambda root: write(root / OPERATIONS_GUIDE, (root / OPERATIONS_GUIDE).read_text(encoding="utf-8")
                                .replace("--max-wait-ms", "--max-wait")),
             "docs", "`minirbt-stream run --max-wait-ms`"),
]


def copy_tree_for_checks(source: Path, destination: Path) -> None:
    for relative_path in (CHART_DIR, DOCKERFILE.parent, Path("Sources"), OPERATIONS_GUIDE, PACKAGE_MANIFEST):
        origin = source / relative_path
        target = destination / relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target)
        else:
            shutil.copy2(origin, target)


def self_test(root: Path) -> int:
    problems = []
    with tempfile.TemporaryDirectory(prefix="check-deploy-") as scratch:
        baseline = Path(scratch) / "baseline"
        copy_tree_for_checks(root, baseline)
        # Sabotages must add a failure of their own; whatever the unmodified tree already reports (shown by
        # a run without --self-test) does not count as catching them.
        preexisting = set(run_checks(baseline))
        if preexisting:
            print(f"note: the unmodified tree already has {len(preexisting)} failure(s); only new ones count below")
        for number, sabotage in enumerate(SABOTAGES):
            tree = Path(scratch) / f"case-{number}"
            copy_tree_for_checks(root, tree)
            sabotage.apply(tree)
            failures = [f for f in run_checks(tree) if f not in preexisting]
            caught = [f for f in failures if f.check == sabotage.expected_check and sabotage.expected_text in str(f)]
            if caught:
                print(f"ok    {sabotage.name}\n        -> {caught[0]}")
            else:
                problems.append(sabotage.name)
                print(f"FAIL  {sabotage.name}: expected a [{sabotage.expected_check}] failure containing "
                      f"{sabotage.expected_text!r}; got: {[str(f) for f in failures] or 'no failures'}")

        # The command line, not just the function, must exit non-zero and say why.
        tree = Path(scratch) / "cli"
        copy_tree_for_checks(root, tree)
        SABOTAGES[0].apply(tree)
        result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--root", str(tree)],
                                capture_output=True, text=True)
        if result.returncode == 1 and ".Values.does.not.exist" in result.stdout + result.stderr:
            print("ok    the command exits 1 and names .Values.does.not.exist")
        else:
            problems.append("command-line exit status")
            print(f"FAIL  the command exited {result.returncode} with output:\n{result.stdout}{result.stderr}")
    if problems:
        print(f"self-test: {len(problems)} sabotage(s) went unnoticed", file=sys.stderr)
        return 1
    print(f"self-test: all {len(SABOTAGES) + 1} sabotages were reported")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository root to check (default: this script's repository)")
    parser.add_argument("--self-test", action="store_true", help="prove that the checks catch broken files")
    arguments = parser.parse_args()
    root = arguments.root.resolve()
    if arguments.self_test:
        return self_test(root)
    failures = run_checks(root)
    render_failures, render_note = check_render(root)
    failures += render_failures
    if render_note:
        print(render_note)
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        print(f"check-deploy: {len(failures)} problem(s)", file=sys.stderr)
        return 1
    print("check-deploy: chart, values schema, template references, Dockerfile and operations guide are consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
