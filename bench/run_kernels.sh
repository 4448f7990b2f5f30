#!/usr/bin/env bash
# Builds Release, runs the kernel benchmarks (bench/*_bench.cc listed in BENCHES) with
# repetitions, and writes the medians as docs/kernels-benchmarks.md and .json.
#
#   bash bench/run_kernels.sh                 # everything, 3 repetitions
#   REPS=5 BENCHES="machine_limits matmul" FILTER_matmul='M:1/' bash bench/run_kernels.sh
#   DOC=kernels-benchmarks-conv BENCHES="machine_limits conv attention" bash bench/run_kernels.sh
#                                             # a subset into docs/$DOC.md and .json
#   INTERLEAVE=1 REPS=7 DOC=kernels-benchmarks-gemm BENCHES="machine_limits matmul" \
#     FILTER_matmul='^BM_PeakFma|matmul/(f32|q8_0|q4_0|openblas)/M:(64|512)/' bash bench/run_kernels.sh
#                                             # repetitions in random order (below)
#
# The machine's limits (peak FMA, triad bandwidth) run first and again last in the same
# invocation, so every percentage is relative to what the machine gave during this run.
# INTERLEAVE=1 runs each binary's repetitions in random order
# (--benchmark_enable_random_interleaving): on a shared host whose speed drifts within minutes,
# a kernel and its baseline then sample the same drift, and matmul_bench's own BM_PeakFma rows
# give a peak measured among them, which the matmul table then uses.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
reps=${REPS:-3}
interleave=false
[ "${INTERLEAVE:-0}" = 1 ] && interleave=true
benches=${BENCHES:-"machine_limits matmul conv attention elementwise"}
out=$build/bench-results
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAMINGO_BUILD_TESTS=OFF \
  -DFLAMINGO_BUILD_TOOLS=OFF -DFLAMINGO_BUILD_BENCH=ON >/dev/null
targets=()
for b in $benches; do targets+=("${b}_bench"); done
cmake --build "$build" -j2 --target "${targets[@]}"
mkdir -p "$out"
rm -f "$out"/*.json
# Debian's OpenBLAS 0.3.21 does not know CPUs newer than it (e.g. Emerald Rapids, family 6
# model 207) and falls back to its SSE3 "Prescott" kernels, a baseline no user would keep. Unless
# told otherwise, compare against its AVX2 kernels, the same ISA as ours.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run() {  # run <bench> <output name>
  local b=$1 name=$2 filter_var="FILTER_$1"
  "$build/bench/${b}_bench" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_min_time="${MIN_TIME:-0.2}" --benchmark_filter="${!filter_var:-.}" \
    --benchmark_enable_random_interleaving=$interleave \
    --benchmark_out="$out/$name.json" --benchmark_out_format=json
}
for b in $benches; do run "$b" "$b"; done
# Limits once more at the end: the spread between the two runs shows how busy the machine was.
case " $benches " in *" machine_limits "*) run machine_limits machine_limits_after ;; esac
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
doc=${DOC:-kernels-benchmarks}
# The command line that reproduces this table, filters included.
settings="${INTERLEAVE:+INTERLEAVE=$INTERLEAVE }${REPS:+REPS=$REPS }${DOC:+DOC=$DOC }BENCHES=\"$benches\""
for b in $benches; do
  filter_var="FILTER_$b"
  [ -n "${!filter_var:-}" ] && settings+=" $filter_var='${!filter_var}'"
done
python3 "$root/bench/kernels_table.py" --results "$out" --md "$root/docs/$doc.md" \
  --json "$root/docs/$doc.json" \
  --note "load average (1/5/15 min) before: $load_before, after: $load_after; $reps repetitions, medians$($interleave && echo ", in random order")" \
  --command "$settings bash bench/run_kernels.sh"
echo "wrote docs/$doc.md and docs/$doc.json"
