#!/usr/bin/env bash
# `make image`: build the operator image from the Dockerfile, tagged with the version.
#
# With docker where a docker engine answers, else with Debian's podman (storage driver
# vfs, chroot isolation: what works on these machines, where image registries cannot be
# reached). Without a registry the bases are made from Debian's packages with
# mmdebstrap and imported (cached in ~/.cache/pullsync/image):
#   localhost/pullsync-base:bookworm        python3, python3-venv, ca-certificates
#   localhost/pullsync-build-base:bookworm  the same plus python3-dev (headers for the
#                                           libyaml extension; used only to build)
# Set BASE (and BUILD_BASE) to build on other bases, e.g. BASE=python:3.11.11-slim-bookworm.
# The image name is printed last; IMAGE overrides it.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PULLSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsync}/image
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/operator/pullsync/__init__.py")
IMAGE=${IMAGE:-localhost/pullsync:$VERSION}
SUITE=bookworm

log() { printf '[image] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if docker info >/dev/null 2>&1; then
  TOOL=(docker)
  BUILD=(docker build)
else
  if ! command -v podman >/dev/null || ! command -v mmdebstrap >/dev/null; then
    log "installing Debian packages: podman mmdebstrap"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq podman mmdebstrap >/dev/null
  fi
  TOOL=(podman --storage-driver=vfs)
  BUILD=(podman --storage-driver=vfs build --isolation=chroot)
fi

# A base made from Debian's packages, imported once (the tar is kept across runs).
debian_base() {
  local name=$1 packages=$2 tar="$CACHE/$1-$SUITE.tar"
  if ! "${TOOL[@]}" image inspect "localhost/$name:$SUITE" >/dev/null 2>&1; then
    if [ ! -s "$tar" ]; then
      log "making $name from Debian's packages ($packages)"
      mkdir -p "$CACHE"
      as_root mmdebstrap --quiet --variant=minbase --format=tar --include="$packages" \
        --aptopt='Acquire::Languages "none"' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' "$SUITE" "$tar.part" http://deb.debian.org/debian
      mv "$tar.part" "$tar"
    fi
    "${TOOL[@]}" import "$tar" "localhost/$name:$SUITE" >/dev/null
  fi
  echo "localhost/$name:$SUITE"
}

if [ -z "${BASE:-}" ]; then
  BASE=$(debian_base pullsync-base python3,python3-venv,ca-certificates)
  BUILD_BASE=${BUILD_BASE:-$(debian_base pullsync-build-base python3,python3-venv,python3-dev,libc6-dev,ca-certificates)}
fi
args=(--build-arg "BASE=$BASE" --build-arg "BUILD_BASE=${BUILD_BASE:-$BASE}" --build-arg "VERSION=$VERSION")
# pip in the build trusts what this machine trusts (a TLS-intercepting proxy's CA, say).
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$CA" ] && args+=(--secret "id=pip-ca,src=$CA")
log "building $IMAGE on $BASE"
"${BUILD[@]}" "${args[@]}" --tag "$IMAGE" "$ROOT" >&2
echo "$IMAGE"
