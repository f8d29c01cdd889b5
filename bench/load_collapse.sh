#!/usr/bin/env bash
# CPU threads under load (issue 16): one epoch of the Fashion-MNIST MLP
# example while a busy process per core competes for the same cores, with
# the default thread count and with each explicit one. The default must stay
# within 1.5x of the best explicit setting (with OpenMP's default spinning
# wait it was 20x slower than one thread).
#
#   bench/load_collapse.sh BIN_DIR [REPEATS]
#
# BIN_DIR holds a built fashion_mnist_mlp (and libasg.so.0, found through
# LD_LIBRARY_PATH first); nothing is built here. REPEATS (default 3) runs of
# each setting, taken in turn so that drift in the machine's load hits all
# settings alike; the table gives the median and all runs of the epoch time
# the example prints (training and evaluation, not data loading).
# DATA=dir overrides /usr/share/datasets/fashion-mnist; IDLE=0 skips the runs
# without competing load. Exit status 1 when the default is over 1.5x.
set -euo pipefail
dir=$(cd "${1:?usage: $0 BIN_DIR [REPEATS]}" && pwd)
reps=${2:-3}
data=${DATA:-/usr/share/datasets/fashion-mnist}
bin=$dir/fashion_mnist_mlp
[ -x "$bin" ] || { echo "no $bin (build the fashion_mnist_mlp target)" >&2; exit 2; }
[ -f "$data/train-images-idx3-ubyte" ] || [ -f "$data/train-images-idx3-ubyte.gz" ] ||
  { echo "no Fashion-MNIST in $data (set DATA)" >&2; exit 2; }

# The cores this shell may use; the example and the busy loops share them.
cpus=$(taskset -pc $$ | sed 's/.*: *//')
ncpu=$(nproc)
threads="1 2"
[ "$ncpu" -gt 2 ] && threads="1 2 $((ncpu / 2)) $ncpu"
threads=$(echo "$threads" | tr ' ' '\n' | awk -v n="$ncpu" '$1 <= n' | sort -nu | tr '\n' ' ')
openmp=0
LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$bin" | grep -q libgomp && openmp=1

# Settings in the order they run: label, extra environment, --threads value.
labels=() ; declare -A envs thr times
setting() { labels+=("$1"); envs[$1]=$2; thr[$1]=$3; times[$1]=""; }
if [ "${IDLE:-1}" != 0 ]; then
  setting "idle, default" "" ""
  setting "idle, --threads 1" "" 1
fi
setting "load, default" "" ""
for t in $threads; do setting "load, --threads $t" "" "$t"; done
[ $openmp = 1 ] && setting "load, default, OMP_WAIT_POLICY=passive" OMP_WAIT_POLICY=passive ""

# One epoch of setting $1; prints its seconds (the example's "epoch 1: ... (X s)").
epoch() {
  local out args=()
  [ -n "${thr[$1]}" ] && args=(--threads "${thr[$1]}")
  out=$(env LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ${envs[$1]} \
    taskset -c "$cpus" "$bin" --epochs 1 --data "$data" "${args[@]}" 2>/dev/null) ||
    { echo "run failed: $1" >&2; exit 2; }
  sed -n 's/^epoch 1:.*(\([0-9.]*\) s)$/\1/p' <<<"$out"
}
# REPEATS rounds over the settings whose label starts with $1.
run_set() {
  local r label
  for ((r = 0; r < reps; r++)); do
    for label in "${labels[@]}"; do
      [[ $label == "$1"* ]] && times[$label]+=" $(epoch "$label")"
    done
  done
  return 0
}

echo "fashion_mnist_mlp --epochs 1 from $dir; cores $cpus ($ncpu); $reps runs each; OpenMP build: $openmp"
[ "${IDLE:-1}" != 0 ] && run_set "idle"

busy=()
stop_busy() { for p in "${busy[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop_busy EXIT
for ((i = 0; i < ncpu; i++)); do
  taskset -c "$cpus" sh -c 'while :; do :; done' &
  busy+=($!)
done
run_set "load"
stop_busy
busy=()

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
printf '\n| setting | median s | runs (s) |\n|---|---|---|\n'
best=""
for label in "${labels[@]}"; do
  m=$(median <<<"${times[$label]}")
  printf '| %s | %s | %s |\n' "$label" "$m" "${times[$label]# }"
  case $label in "load, --threads "*)
    if [ -z "$best" ] || awk -v a="$m" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$m; fi ;;
  esac
done
def=$(median <<<"${times["load, default"]}")
ratio=$(awk -v a="$def" -v b="$best" 'BEGIN {printf "%.2f", a / b}')
echo
echo "under load: default ${def} s, best explicit ${best} s, ratio ${ratio} (limit 1.50)"
awk -v r="$ratio" 'BEGIN {exit !(r <= 1.5)}' && echo PASS || { echo FAIL; exit 1; }
