#!/bin/sh
# A rank that hangs or dies: the others must stop with an error within the
# timeout (never hang), and the last checkpoint rank 0 wrote must load.
# Usage: fault.sh MPIEXEC "FLAGS" DIST_FAULT_BINARY WORKDIR
set -u
mpiexec=$1 flags=$2 bin=$3 dir=$4
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail=0
for mode in hang die; do
  start=$(date +%s)
  # shellcheck disable=SC2086
  ASG_COMM_TIMEOUT=3 timeout 120 "$mpiexec" $flags -np 2 "$bin" train "$dir" $mode >"$dir/$mode.log" 2>&1
  rc=$? elapsed=$(($(date +%s) - start))
  cat "$dir/$mode.log"
  echo "== $mode: launcher exit $rc after ${elapsed}s"
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $elapsed -gt 60 ]; then
    echo "FAIL: $mode: the job did not end with an error in time"; fail=1
  fi
  if [ $mode = hang ] && ! grep -q "rank 0: step [0-9]* failed after .*timed out" "$dir/$mode.log"; then
    echo "FAIL: hang: rank 0 did not report the timeout"; fail=1
  fi
  "$bin" check "$dir" || { echo "FAIL: $mode: the checkpoint does not load"; fail=1; }
done
exit $fail
