#!/usr/bin/env bash
# Prepare rootful podman on a Debian machine with no Docker engine and no registry access:
# install podman + runc (+ debootstrap) from Debian, write a containers.conf this machine needs,
# and build a local Debian base image with Python from debootstrap (no registry pull).
# Idempotent: every step is skipped when its result already exists.
#
#   scripts/tools/podman-setup.sh [TOOLS_DIR]      -> prints the CONTAINERS_CONF path
#
# Env: BASE_TAG (default localhost/automateos-base:bookworm), DEBIAN_MIRROR.
set -euo pipefail

TOOLS_DIR=$(realpath -m "${1:-.tools}")
BASE_TAG=${BASE_TAG:-localhost/automateos-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CONF="$TOOLS_DIR/podman/containers.conf"

log() { echo "podman-setup: $*" >&2; }

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || { log "need root to apt-get install ${missing[*]}"; exit 1; }
  log "installing ${missing[*]} from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap >&2; }
fi

mkdir -p "$(dirname "$CONF")"
# crun's default here fails on this kernel setup and the default ulimits are unlimited, which
# podman cannot apply inside this machine's container: both measured, both pinned here.
cat > "$CONF.tmp" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
CONF
mv "$CONF.tmp" "$CONF"
export CONTAINERS_CONF="$CONF"

if ! podman image exists "$BASE_TAG"; then
  rootfs=$(mktemp -d /tmp/automateos-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm (minbase + python3) into $rootfs"
  # python3-venv gives `python3 -m venv` + ensurepip for the build stage; ca-certificates lets
  # pip reach PyPI over TLS. Everything else comes from the Dockerfile.
  debootstrap_log="$TOOLS_DIR/podman/debootstrap.log"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "$DEBIAN_MIRROR" >"$debootstrap_log" 2>&1; then
    tail -n 30 "$debootstrap_log" >&2
    log "debootstrap failed (full log: $debootstrap_log)"
    exit 1
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet - "$BASE_TAG" >/dev/null
  log "imported $BASE_TAG"
fi
echo "$CONF"
