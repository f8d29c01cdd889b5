#!/usr/bin/env bash
# Installs what building, testing and the examples need on Debian/Ubuntu
# (skipped when everything is already there). When another apt or dpkg
# process holds a lock (unattended upgrades, a second build), it waits up to
# ASG_APT_LOCK_WAIT seconds (default 600), saying so, then gives up.
set -eu
pkgs="build-essential cmake pkg-config libopenblas-dev libdnnl-dev zlib1g-dev dataset-fashion-mnist fortunes
  libvulkan-dev glslc mesa-vulkan-drivers protobuf-c-compiler libprotobuf-c-dev graphviz chromium
  libopenmpi-dev openmpi-bin"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
limit=${ASG_APT_LOCK_WAIT:-600}

# apt-get "$@", retried while a lock is held. `apt-get update` fails at once on
# the lists lock (it ignores DPkg::Lock::Timeout); install waits on the dpkg
# lock for what is left of the limit and fails at once on the archives lock.
apt_get() {
  local start=$SECONDS out rc left
  while :; do
    rc=0 left=$((limit - (SECONDS - start)))
    [ "$left" -gt 0 ] || left=0
    out=$($SUDO apt-get -o DPkg::Lock::Timeout="$left" "$@" 2>&1) || rc=$?
    [ "$rc" = 0 ] && return 0
    if ! grep -qE 'Could not get lock|Unable to (lock|acquire)' <<<"$out"; then
      printf '%s\n' "$out" >&2
      return "$rc"
    fi
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      printf '%s\n' "$out" >&2
      echo "deps.sh: apt-get $1: another apt/dpkg process held its lock for ${limit}s; giving up" >&2
      return "$rc"
    fi
    echo "deps.sh: apt-get $1: waiting for another apt/dpkg process to release its lock" \
      "($((SECONDS - start))s of ${limit}s)" >&2
    sleep 2
  done
}
echo "deps.sh: installing$missing (waits up to ${limit}s for another apt/dpkg to finish)" >&2
apt_get update -qq
# shellcheck disable=SC2086
apt_get install -y -qq --no-install-recommends $missing
