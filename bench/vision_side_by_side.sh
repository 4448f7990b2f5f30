#!/usr/bin/env bash
# Is it the code or the host? Sets the NFNet encoder's two-thread speed-up beside what two
# independent one-thread encoders reach side by side, one pinned to each CPU, in the same
# minutes:
#
#   bash bench/vision_side_by_side.sh                       # TinyLlama's F0 @256, 4 rounds
#   MODEL=build/bench-models/flamingo3b-f32 ROUNDS=3 bash bench/vision_side_by_side.sh
#
# Each round runs vision_bench at 1 thread, at 2 threads, then two 1-thread processes at once
# (taskset -c 0 and -c 1), and prints the 2-thread speed-up (1-thread time ÷ 2-thread time)
# beside the side-by-side throughput (1-thread time ÷ each process's time, summed). The two
# processes share nothing but the machine (L3, memory, the host's other tenants), so when the
# two figures agree, what the encoder loses at 2 threads is lost to the machine, not to how
# the encoder splits its work. The FMA loop is run the same three ways for scale (GFLOP/s per
# thread; its × is the total over the 1-thread figure).
# Builds the two benchmarks as run_e2e.sh does (BUILD_DIR, default build-bench; an existing
# build directory is reused as it is); the model comes from tools/make_bench_model.py, as for
# run_e2e.sh (MODEL, default build/bench-models/tinyllama-f32).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
model=${MODEL:-$root/build/bench-models/tinyllama-f32}
rounds=${ROUNDS:-4}
[ -f "$model/config.json" ] || { echo "error: no model at $model (tools/make_bench_model.py)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "error: needs 2 CPUs" >&2; exit 2; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAMINGO_BUILD_TESTS=OFF \
    -DFLAMINGO_BUILD_TOOLS=OFF -DFLAMINGO_BUILD_BENCH=ON >/dev/null
fi
cmake --build "$build" -j2 --target vision_bench machine_limits_bench >/dev/null
vision=("$build/bench/vision_bench" "--model=$model" --benchmark_min_time=4)
fma=("$build/bench/machine_limits_bench" --benchmark_min_time=3)

# ms per image (vision) or GFLOP/s per thread (FMA loop) from one benchmark's console output.
ms() { awk '/^vision\/forward/ {print $2; exit}'; }
gflops() { grep -o 'FLOP/s_per_thread=[0-9.]*G' | head -1 | tr -dc '0-9.'; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| round | FMA 1 thr | FMA 2 thr, per thread (×) | FMA side by side (×) | vision 1 thr ms | 2 thr ms (×) | side by side ms (×) |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  f1=$("${fma[@]}" --benchmark_filter='BM_PeakFma/1/' 2>&1 | gflops)
  f2=$("${fma[@]}" --benchmark_filter='BM_PeakFma/2/' 2>&1 | gflops)
  taskset -c 0 "${fma[@]}" --benchmark_filter='BM_PeakFma/1/' >"$tmp/f0" 2>&1 &
  taskset -c 1 "${fma[@]}" --benchmark_filter='BM_PeakFma/1/' >"$tmp/f1" 2>&1
  wait
  v1=$("${vision[@]}" --benchmark_filter='threads:1' 2>&1 | ms)
  v2=$("${vision[@]}" --benchmark_filter='threads:2' 2>&1 | ms)
  taskset -c 0 "${vision[@]}" --benchmark_filter='threads:1' >"$tmp/v0" 2>&1 &
  taskset -c 1 "${vision[@]}" --benchmark_filter='threads:1' >"$tmp/v1" 2>&1
  wait
  python3 - "$r" "$f1" "$f2" "$(gflops <"$tmp/f0")" "$(gflops <"$tmp/f1")" \
    "$v1" "$v2" "$(ms <"$tmp/v0")" "$(ms <"$tmp/v1")" <<'PY'
import sys
r = sys.argv[1]
f1, f2, fa, fb, v1, v2, va, vb = map(float, sys.argv[2:])
print(f"| {r} | {f1:.1f} | {f2:.1f} (×{2 * f2 / f1:.2f}) | {fa:.1f} / {fb:.1f} (×{(fa + fb) / f1:.2f}) "
      f"| {v1:.0f} | {v2:.0f} (×{v1 / v2:.2f}) | {va:.0f} / {vb:.0f} (×{v1 / va + v1 / vb:.2f}) |")
PY
done
