#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a
# consumer with find_package(ASG) and with pkg-config.
set -eu
build=$1; src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64:$tmp/prefix/lib/$(gcc -print-multiarch 2>/dev/null || true)" "$tmp/cm/consumer"
pc=$(find "$tmp/prefix" -name asg.pc -print -quit)
export PKG_CONFIG_PATH=$(dirname "$pc")
# the .pc carries the install prefix it was configured with; point it here
sed -i "s|^prefix=.*|prefix=$tmp/prefix|" "$pc"
cc -std=c11 "$src/consumer.c" $(pkg-config --cflags --libs asg) -o "$tmp/pc_consumer"
LD_LIBRARY_PATH=$(pkg-config --variable=libdir asg) "$tmp/pc_consumer"
echo "install check passed"
