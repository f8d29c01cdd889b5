#!/usr/bin/env bash
# Installs the build tree into a prefix given only at install time (the build
# was configured with another one), then, as a downstream user would:
#  - runs the installed `asg` tool (found libasg.so.0 by its RUNPATH);
#  - builds and runs a consumer linked shared and static through
#    find_package(ASG), and shared and static through pkg-config;
#  - moves the prefix elsewhere and does the tool and pkg-config again
#    (the .pc and the tool's RUNPATH are relative to where they lie).
# No installed file is edited and LD_LIBRARY_PATH is never set: every program
# must run as linked. Every step runs; the failed ones are listed at the end.
set -u
build=$1; src=$2
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset LD_LIBRARY_PATH PKG_CONFIG_PATH
failed=""
step() { # $1: what; the rest: the command
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failed="$failed
  $what"; fi
}
# a static consumer must not need libasg.so at run time
no_libasg_so() { [ -x "$1" ] && ! readelf -d "$1" | grep -q 'NEEDED.*libasg\.so'; }

configured=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
prefix=$tmp/prefix
[ "$configured" != "$prefix" ] || { echo "the configured prefix is the test's"; exit 1; }
cmake --install "$build" --prefix "$prefix" >/dev/null || { echo "cmake --install failed"; exit 1; }

pc_links() { # $1: tag of the outputs
  local libdir
  libdir=$(pkg-config --variable=libdir asg)
  if [ ! -f "$libdir/libasg.a" ] || [ ! -f "$(pkg-config --variable=includedir asg)/asg/asg.h" ]; then
    echo "asg.pc: libdir '$libdir', includedir '$(pkg-config --variable=includedir asg)'"
    return 1
  fi
  # shared: the library found by an rpath to the libdir pkg-config gives
  # shellcheck disable=SC2046
  step "pkg-config shared link ($1)" "$cc" -std=c11 "$src/consumer.c" \
    $(pkg-config --cflags --libs asg) -Wl,-rpath,"$libdir" -o "$tmp/pc_shared_$1"
  step "pkg-config shared consumer runs ($1)" "$tmp/pc_shared_$1"
  # static: the archive chosen for -lasg (GNU ld -Bstatic), its dependencies
  # from Libs.private (--static); the list's own -lasg is then not needed
  # shellcheck disable=SC2046
  step "pkg-config --static link ($1)" "$cc" -std=c11 "$src/consumer.c" \
    $(pkg-config --cflags asg) $(pkg-config --libs-only-L asg) -Wl,--as-needed \
    -Wl,-Bstatic -lasg -Wl,-Bdynamic $(pkg-config --static --libs asg) -o "$tmp/pc_static_$1"
  step "pkg-config static consumer has no libasg.so ($1)" no_libasg_so "$tmp/pc_static_$1"
  step "pkg-config static consumer runs ($1)" "$tmp/pc_static_$1"
}

check_prefix() { # $1: prefix; $2: tag of the outputs
  step "installed asg tool runs ($2)" "$1/bin/asg" version
  export PKG_CONFIG_PATH
  PKG_CONFIG_PATH=$(dirname "$(find "$1" -name asg.pc -print -quit)")
  step "asg.pc points into the prefix ($2)" pc_links "$2"
}

step "find_package(ASG)" cmake -S "$src" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
step "CMake consumers build" cmake --build "$tmp/cm" >/dev/null
step "CMake asg::asg consumer runs" "$tmp/cm/consumer"
step "CMake asg::asg_static consumer has no libasg.so" no_libasg_so "$tmp/cm/consumer_static"
step "CMake asg::asg_static consumer runs" "$tmp/cm/consumer_static"
check_prefix "$prefix" installed
mv "$prefix" "$tmp/moved"
check_prefix "$tmp/moved" moved

if [ -n "$failed" ]; then
  echo "install check FAILED:$failed"
  exit 1
fi
echo "install check passed"
