#!/usr/bin/env bash
# Builds and checks the container image of docker/Dockerfile on a machine without a registry, with Debian's
# podman and buildah. The Dockerfile is the one users build with `docker build`; only its two base images
# differ: made here, from Debian's archive and this machine's Swift toolchain, and passed as build arguments.
#
#   scripts/image.sh tools    apt-get install podman, buildah, mmdebstrap, runc (once)
#   scripts/image.sh bases    the base images, as localhost/minirbt-base/...:
#                               swift:6.3-bookworm   mmdebstrap of bookworm + the packages of the official swift
#                                                    image + /opt/swift's toolchain in /usr + git set to read
#                                                    github.com from /opt/swift-packages (like this machine)
#                               debian:trixie-slim   mmdebstrap of trixie without docs, man pages and locales
#   scripts/image.sh build    podman build of docker/Dockerfile from a clean export of HEAD (--rev COMMIT: of
#                             that commit; --worktree: the files git would commit), /opt/swift-packages
#                             mounted read-only
#   scripts/image.sh verify   from outside the image: size; non-root user; `minirbt-stream version` lists
#                             librdkafka and oneDNN; against a local Tansu broker and a model mounted
#                             read-only, with a read-only root filesystem: /healthz and /readyz answer 200, the
#                             HEALTHCHECK passes, an event comes back as a result; with MINIRBT_METRICS_PORT=0
#                             the HEALTHCHECK passes too
#   scripts/image.sh          all four
#
# Environment: MINIRBT_IMAGE (default localhost/minirbt-stream:0.1.0), MINIRBT_SHARED (default ../shared, for
# the model). Base images are made once and kept; `podman rmi` them to make them again. Build with
# --isolation=chroot and run with runc and bounded ulimits: what Debian's podman 4.3 manages on these machines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
log() { printf '[image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

image="${MINIRBT_IMAGE:-localhost/minirbt-stream:0.1.0}"
builder_base="localhost/minirbt-base/swift:6.3-bookworm"
runtime_base="localhost/minirbt-base/debian:trixie-slim"
shared="${MINIRBT_SHARED:-$repo/../shared}"
run_flags=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
# Containers of `verify`: no systemd here to time health checks, so `podman healthcheck run` runs them.
check_flags=("${run_flags[@]}" --health-interval=disable)
# podman 4.3 still complains that it cannot reach systemd to schedule them; that is all it says, so drop it.
quiet_podman() { $sudo_ podman "$@" 2> >(grep -v 'systemd connection' >&2); }
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"

tools() {
  local missing=()
  for p in podman buildah mmdebstrap runc uidmap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    $sudo_ apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  log "$(podman --version), $(buildah --version | cut -d' ' -f1-3)"
}

have_image() { $sudo_ podman image exists "$1"; }

# mmdebstrap VARIANT SUITE TARBALL [options...]: a root filesystem of Debian SUITE with its updates and
# security suites, as a tarball for `podman import`.
bootstrap() {
  local variant="$1" suite="$2" tarball="$3"; shift 3
  # Like Debian's official images: apt deletes the packages it downloaded (their /etc/apt/apt.conf.d/docker-clean).
  $sudo_ mmdebstrap --variant="$variant" --quiet \
    --aptopt='Acquire::Languages "none"' \
    --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
    --aptopt='APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
    --aptopt='Dir::Cache::pkgcache ""' --aptopt='Dir::Cache::srcpkgcache ""' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$@" "$suite" "$tarball" \
    "deb http://deb.debian.org/debian $suite main" \
    "deb http://deb.debian.org/debian $suite-updates main" \
    "deb http://deb.debian.org/debian-security $suite-security main"
}

bases() {
  local work; work="$(mktemp -d "${TMPDIR:-/tmp}/minirbt-bases.XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  if have_image "$runtime_base"; then
    log "$runtime_base exists"
  else
    log "making $runtime_base (mmdebstrap trixie)"
    # minbase (Essential and Priority: required, e.g. passwd's groupadd) like Debian's official images, less
    # what their -slim variants leave out.
    bootstrap minbase trixie "$work/trixie.tar" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/info/*'
    $sudo_ podman import --change 'CMD ["bash"]' "$work/trixie.tar" "$runtime_base" >/dev/null
  fi
  if have_image "$builder_base"; then
    log "$builder_base exists"
  else
    [ -x /opt/swift/usr/bin/swift ] || die "no Swift toolchain at /opt/swift"
    log "making $builder_base (mmdebstrap bookworm + /opt/swift, $(/opt/swift/usr/bin/swift --version 2>/dev/null | head -1))"
    # The packages of the official swift:6.3-bookworm image (docker-library/repo-info), then the toolchain
    # where that image has it, and git reading github.com from the mirror that /opt/swift-packages mounts.
    bootstrap apt bookworm "$work/bookworm.tar" \
      --include=binutils,libicu-dev,libcurl4-openssl-dev,libedit-dev,libsqlite3-dev,libncurses-dev,libpython3-dev,libxml2-dev,pkg-config,uuid-dev,tzdata,git,gcc,libstdc++-12-dev,ca-certificates \
      --customize-hook='tar -C /opt/swift -c usr | tar -C "$1" -x --keep-directory-symlink' \
      --customize-hook='chmod -R o+r "$1"/usr/lib/swift' \
      --customize-hook='printf "[url \"/opt/swift-packages/\"]\n\tinsteadOf = https://github.com/\n\tinsteadOf = git@github.com:\n[safe]\n\tdirectory = *\n" > "$1"/etc/gitconfig'
    $sudo_ podman import --change 'CMD ["bash"]' "$work/bookworm.tar" "$builder_base" >/dev/null
  fi
  $sudo_ podman run --rm "${check_flags[@]}" "$builder_base" swift --version 2>&1 | head -1 | sed 's/^/[image] builder: /' >&2
}

build() {
  local context revision=""; context="$(mktemp -d "${TMPDIR:-/tmp}/minirbt-context.XXXXXX")"
  trap 'rm -rf "$context"' RETURN
  if [ "${1:-}" = --worktree ]; then
    log "context: the working tree's files that git would commit"
    (cd "$repo" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
       | tar --null -T - -c) | tar -x -C "$context"
  else
    local revision="HEAD"
    [ "${1:-}" = --rev ] && revision="${2:?--rev needs a commit}"
    revision="$(git -C "$repo" rev-parse --verify "$revision^{commit}")"
    log "context: commit ${revision:0:12}"
    git -C "$repo" archive "$revision" | tar -x -C "$context"
  fi
  local started=$SECONDS
  # Docker image format: the OCI format has no SHELL and no HEALTHCHECK.
  $sudo_ podman build --format docker --isolation=chroot --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --volume /opt/swift-packages:/opt/swift-packages:ro \
    --build-arg BUILDER_IMAGE="$builder_base" --build-arg RUNTIME_IMAGE="$runtime_base" \
    --label org.opencontainers.image.revision="${revision:-worktree}" \
    -f "$repo/docker/Dockerfile" -t "$image" "$context"
  log "built $image in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }

verify() {
  local model="$shared/models/minirbt-h256-chnsenticorp/v2"
  [ -f "$model/config.json" ] || die "no model at $model (set MINIRBT_SHARED)"
  have_image "$image" || die "no image $image: run scripts/image.sh build"
  local failures=0
  check() { if eval "$2"; then log "ok    $1"; else log "FAIL  $1"; failures=$((failures + 1)); fi; }

  local size user
  size="$($sudo_ podman image inspect "$image" --format '{{.Size}}')"
  user="$($sudo_ podman image inspect "$image" --format '{{.Config.User}}')"
  log "image $image: $((size / 1000000)) MB ($($sudo_ podman image ls "$image" --format '{{.Size}}'))"
  check "the image runs as user $user, not root" '[ "${user%%:*}" = 10001 ]'

  local version
  version="$(quiet_podman run --rm "${check_flags[@]}" --read-only "$image" version)"
  printf '%s\n' "$version" | sed 's/^/[image]   /' >&2
  check "minirbt-stream version names librdkafka" 'grep -Eq "^librdkafka [0-9]+\.[0-9]+" <<<"$version"'
  check "minirbt-stream version names oneDNN" 'grep -Eq "^oneDNN [0-9]+\.[0-9]+" <<<"$version"'
  check "minirbt-admin runs" 'quiet_podman run --rm "${check_flags[@]}" --entrypoint minirbt-admin "$image" --help >/dev/null'

  # A broker of our own, its own state directory, stopped whatever happens.
  local state; state="$(mktemp -d "${TMPDIR:-/tmp}/minirbt-image-broker.XXXXXX")"
  local brokers port name="minirbt-image-check-$$" off="minirbt-image-check-off-$$"
  brokers="$(MINIRBT_BROKER_STATE="$state" bash "$here/broker.sh" start)"
  # shellcheck disable=SC2064
  trap "quiet_podman rm -f $name $off >/dev/null 2>&1 || true; MINIRBT_BROKER_STATE='$state' bash '$here/broker.sh' stop || true; rm -rf '$state'" RETURN
  for topic in reviews minirbt-results minirbt-dead-letters; do
    tansu topic create "$topic" --broker "tcp://$brokers" --partitions 1 >/dev/null
  done
  port="$(free_port)"
  log "service: broker $brokers, metrics port $port, model $model read-only, root filesystem read-only"
  quiet_podman run -d --name "$name" "${check_flags[@]}" --network host --read-only --read-only-tmpfs=false \
    --tmpfs /tmp:rw,size=64m -v "$model:/models/minirbt-h256-chnsenticorp/v2:ro" \
    -e MINIRBT_BROKERS="$brokers" -e MINIRBT_INPUT_TOPIC=reviews -e MINIRBT_METRICS_PORT="$port" \
    -e MINIRBT_MODEL=/models/minirbt-h256-chnsenticorp/v2 -e MINIRBT_SHARDS=1 "$image" run >/dev/null

  local deadline=$((SECONDS + 120)) ready=""
  while [ $SECONDS -lt $deadline ]; do
    [ "$(http_status "http://127.0.0.1:$port/readyz")" = 200 ] && { ready=1; break; }
    $sudo_ podman container exists "$name" && [ "$($sudo_ podman inspect "$name" --format '{{.State.Running}}')" = true ] || break
    sleep 1
  done
  check "/healthz answers 200" '[ "$(http_status "http://127.0.0.1:$port/healthz")" = 200 ]'
  check "/readyz answers 200 (model loaded, consumer running) within 120 s" '[ -n "$ready" ]'
  check "the process runs as uid 10001" '[ "$($sudo_ podman exec "$name" id -u)" = 10001 ]'
  check "the root filesystem is read-only" '! $sudo_ podman exec "$name" touch /usr/local/bin/x 2>/dev/null && $sudo_ podman inspect "$name" --format "{{.HostConfig.ReadonlyRootfs}}" | grep -q true'
  check "the HEALTHCHECK passes" '$sudo_ podman healthcheck run "$name" >/dev/null'
  printf '%s\n' '{"key":"image-check-1","value":{"id":"image-check-1","text":"这家酒店的服务非常好，房间也很干净。"}}' \
    | tansu cat produce reviews --broker "tcp://$brokers" --partition 0 >/dev/null 2>&1 || true
  local result="" until=$((SECONDS + 60))
  while [ $SECONDS -lt $until ] && [ -z "$result" ]; do
    result="$(timeout 10 tansu cat consume minirbt-results --broker "tcp://$brokers" --partition 0 2>/dev/null | grep -m1 image-check-1 || true)"
    [ -n "$result" ] || sleep 2
  done
  [ -n "$result" ] && log "result: ${result:0:240}"
  check "an event sent to the broker comes back as an enriched result" '[ -n "$result" ]'
  if [ -n "$failures" ] && [ "$failures" != 0 ]; then $sudo_ podman logs --tail 30 "$name" 2>&1 | sed 's/^/[image]   log: /' >&2; fi
  quiet_podman stop -t 40 "$name" >/dev/null
  check "SIGTERM stops the service cleanly (exit 0)" '[ "$($sudo_ podman inspect "$name" --format "{{.State.ExitCode}}")" = 0 ]'

  quiet_podman run -d --name "$off" "${check_flags[@]}" --network host --read-only \
    -v "$model:/models/m/v2:ro" -e MINIRBT_BROKERS="$brokers" -e MINIRBT_INPUT_TOPIC=reviews \
    -e MINIRBT_METRICS_PORT=0 -e MINIRBT_MODEL=/models/m/v2 -e MINIRBT_SHARDS=1 "$image" run >/dev/null
  sleep 3
  check "with MINIRBT_METRICS_PORT=0 the HEALTHCHECK still passes" '$sudo_ podman healthcheck run "$off" >/dev/null'

  if [ "$failures" != 0 ]; then die "$failures check(s) failed"; fi
  log "all checks passed"
}

case "${1:-all}" in
  tools) tools ;;
  bases) bases ;;
  build) shift; build "$@" ;;
  verify) verify ;;
  all) tools; bases; build; verify ;;
  *) die "usage: scripts/image.sh [tools|bases|build [--rev COMMIT|--worktree]|verify|all]" ;;
esac
