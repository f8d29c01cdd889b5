#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes (tests/fuzz) with libFuzzer under
# ASan+UBSan: builds the targets with clang in $ASG_FUZZ_BUILD (default
# build-fuzz), regenerates the seeds with the library's writers, then runs
# each target for SECONDS (default 300). The working corpus grows in
# $ASG_FUZZ_BUILD/fuzz/corpus/<target> across runs; an input that fails is
# saved under $ASG_FUZZ_BUILD/fuzz/artifacts/<target>/ (docs/testing.md says
# how to turn it into a regression seed). Exits non-zero if any target failed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (targets: safetensors json
#                                              checkpoint idx text tokenizer
#                                              npy csv
#                                              onnx)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
[ $# -gt 0 ] && shift
# onnx when protobuf-c is there to build it (scripts/deps.sh installs it)
all="safetensors json checkpoint idx text tokenizer npy csv"
command -v protoc-c >/dev/null && all="$all onnx"
targets=${*:-$all}
build=${ASG_FUZZ_BUILD:-build-fuzz}

CC=clang cmake -S . -B "$build" -DASG_FUZZ=ON -DASG_SANITIZE=ON -DASG_WERROR=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 -DASG_USE_BLAS=OFF -DASG_USE_DNNL=OFF -DASG_USE_OPENMP=OFF \
  -DASG_WITH_CUDA=OFF -DASG_WITH_VULKAN=OFF -DASG_BUILD_EXAMPLES=OFF -DASG_BUILD_BENCH=OFF \
  >/dev/null
bins=fuzz_gen_corpus
for t in $targets; do bins="$bins fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $bins >/dev/null
seeds="$build/fuzz/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"
"$build/tests/fuzz/fuzz_gen_corpus" "$seeds"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=""
for t in $targets; do
  work="$build/fuzz/corpus/$t" art="$build/fuzz/artifacts/$t/"
  mkdir -p "$work" "$art" "$seeds/$t" # onnx has committed seeds only
  echo "== fuzz_$t: ${secs}s =="
  # the first directory receives new inputs; the committed seeds are read only
  if "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$art" "$work" "tests/fuzz/corpus/$t" "$seeds/$t" >"$build/fuzz/$t.log" 2>&1; then
    grep -E "^(Done|stat::number_of_executed_units|stat::new_units_added)" "$build/fuzz/$t.log" || true
  else
    tail -n 60 "$build/fuzz/$t.log"
    echo "fuzz_$t FAILED: inputs in $art (reproduce: $build/tests/fuzz/fuzz_$t FILE)"
    failed="$failed $t"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzzing failed:$failed"
  exit 1
fi
echo "fuzzing passed (${secs}s per target)"
