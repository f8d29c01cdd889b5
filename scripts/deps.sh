#!/usr/bin/env bash
# Installs what building, testing and the examples need on Debian/Ubuntu
# (skipped when everything is already there).
set -eu
pkgs="build-essential cmake pkg-config libopenblas-dev zlib1g-dev dataset-fashion-mnist fortunes
  libvulkan-dev glslc mesa-vulkan-drivers"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
