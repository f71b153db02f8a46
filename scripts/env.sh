# Sourced by every script: where set-up puts its files, and how swift finds them.
export MINIRBT_DEPS="${MINIRBT_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/minirbt}"
export PKG_CONFIG_PATH="$MINIRBT_DEPS/librdkafka/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PATH="$MINIRBT_DEPS/bin:/opt/swift/usr/bin:$PATH"
