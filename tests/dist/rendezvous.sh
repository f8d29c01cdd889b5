#!/bin/sh
# torchrun-style launch: 3 processes with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT
# pass dist_rendezvous; then a job whose third rank never starts fails on
# both started ranks within the timeout (never hangs).
# Usage: rendezvous.sh DIST_RENDEZVOUS_BINARY
set -u
bin=$1
port=$((20000 + $$ % 20000))
run() { # world rank...
  world=$1; shift
  pids=""
  for r in "$@"; do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      timeout 60 "$bin" & pids="$pids $!"
  done
  rc=0
  for p in $pids; do wait "$p" || rc=1; done
  return $rc
}
fail=0
run 3 0 1 2 || { echo "FAIL: a 3-rank rendezvous"; fail=1; }
port=$((port + 1))
start=$(date +%s)
export ASG_COMM_TIMEOUT=3
if run 3 0 1; then echo "FAIL: a job missing rank 2 succeeded"; fail=1; fi
elapsed=$(($(date +%s) - start))
echo "missing rank: failed after ${elapsed}s"
[ "$elapsed" -le 30 ] || { echo "FAIL: took ${elapsed}s"; fail=1; }
exit $fail
