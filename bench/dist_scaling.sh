#!/bin/sh
# CPU data-parallel scaling: ASG (bench_dist under mpirun) and PyTorch DDP
# (gloo, bench/torch_ddp.py) on the same model and per-rank batch, for each
# rank count, with the machine's cores split evenly between the ranks.
#   bench/dist_scaling.sh BUILD_DIR "1 2 4 8" [PYTHON]
set -eu
build=$1 ranks=$2 py=${3:-python3}
cores=$(nproc)
flags="--oversubscribe"; [ "$(id -u)" = 0 ] && flags="$flags --allow-run-as-root"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -n), $cores cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for n in $ranks; do
  t=$((cores / n)); [ $t -ge 1 ] || t=1
  # shellcheck disable=SC2086
  mpirun $flags --bind-to none -np "$n" "$build/bench_dist" --threads $t
  OMP_NUM_THREADS=$t "$py" "$(dirname "$0")/torch_ddp.py" --ranks "$n" --threads $t
done
