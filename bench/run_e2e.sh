#!/usr/bin/env bash
# End-to-end benchmark at real model sizes (docs/performance.md): builds Release, makes the
# random full-size models if missing (tools/make_bench_model.py), measures the machine's limits,
# runs every configuration x weight type x thread count RUNS times through the engine
# (bench/e2e_bench.cc) and the f32 weights through the PyTorch reference (bench/e2e_torch.py),
# then writes docs/performance.md, docs/performance.json and the plots.
#
#   bash bench/run_e2e.sh                                    # the full matrix
#   CONFIGS=tinyllama DTYPES="f32 q4_0" THREADS=2 RUNS=3 bash bench/run_e2e.sh
#   REPORT_ONLY=1 bash bench/run_e2e.sh                      # re-render from the saved results
#
# Environment: MODELS (model parent dir, default build/bench-models; ~36 GB for both configs
# in four types), RESULTS (default build/bench-e2e), TORCH=0 skips PyTorch, DECODE_<config>
# (tokens decoded after the few-shot prompt; defaults 16 tinyllama, 8 flamingo3b),
# CAPTION_TOKENS (20), DOC (name of the page, JSON and plots in docs/; default performance),
# RUNS_1T (runs at 1 thread, default RUNS), TORCH_RUNS (default RUNS),
# TORCH_THREADS (default THREADS), PACK_CACHE=1 (each cell also runs RUNS times loading from
# a pack cache that one untimed run wrote first; the cache is deleted after the cell),
# ORDER=rounds (run 1 of every cell, then run 2 of every cell, ...; needs every type's files
# to fit in the page cache together, as TinyLlama's do; default: a cell's runs in a row).
# RUNS, RUNS_1T, TORCH_RUNS and ORDER can be set per configuration with a _<config> suffix
# (RUNS_flamingo3b=2 ORDER_tinyllama=rounds), so one invocation, with one pair of in-run
# machine limits, can run both configurations. Results
# of a (config, type, threads) cell are replaced only when that cell runs, so a matrix can be
# filled in several invocations.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
models=${MODELS:-$root/build/bench-models}
results=${RESULTS:-$root/build/bench-e2e}
configs=${CONFIGS:-"tinyllama flamingo3b"}
dtypes=${DTYPES:-"f32 bf16 q8_0 q4_0"}
threads=${THREADS:-"1 2"}
torch_threads=${TORCH_THREADS:-$threads}
caption_tokens=${CAPTION_TOKENS:-20}
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=/usr/bin/python3
mkdir -p "$results"

if [ "${REPORT_ONLY:-0}" != 1 ]; then
  # An existing build directory (e.g. BUILD_DIR=build, the Release test build) is reused as it is.
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAMINGO_BUILD_TESTS=OFF \
      -DFLAMINGO_BUILD_TOOLS=OFF -DFLAMINGO_BUILD_BENCH=ON >/dev/null
  fi
  cmake --build "$build" -j2 --target e2e_bench machine_limits_bench
  echo "load_before $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%FT%TZ)" >>"$results/load.txt"
  "$build/bench/machine_limits_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 --benchmark_out="$results/machine_limits.json" --benchmark_out_format=json >/dev/null

  for cfg in $configs; do
    need=()
    for dt in $dtypes; do [ -f "$models/$cfg-$dt/model.safetensors" ] || need+=("$dt"); done
    # PyTorch reads the f32 directory.
    if [ "${TORCH:-1}" = 1 ] && [ ! -f "$models/$cfg-f32/model.safetensors" ]; then
      case " ${need[*]-} " in *" f32 "*) ;; *) need+=(f32) ;; esac
    fi
    if [ ${#need[@]} -gt 0 ]; then
      "$py" "$root/tools/make_bench_model.py" --config "$cfg" --dtypes "${need[@]}" --out "$models"
    fi
    inputs=$results/inputs-$cfg
    first=$(echo $dtypes | cut -d' ' -f1)
    "$py" "$root/bench/e2e_inputs.py" --model "$models/$cfg-$first" --out "$inputs"
    dvar="DECODE_$cfg"
    default_decode=16
    [ "$cfg" = flamingo3b ] && default_decode=8
    decode=${!dvar:-$default_decode}
    v=RUNS_$cfg && runs=${!v:-${RUNS:-3}}
    v=RUNS_1T_$cfg && runs_1t=${!v:-${RUNS_1T:-$runs}}
    v=TORCH_RUNS_$cfg && torch_runs=${!v:-${TORCH_RUNS:-$runs}}
    v=ORDER_$cfg && order=${!v:-${ORDER:-cells}}
    run_engine() {  # model dir, threads, extra flags
      local d=$1 th=$2
      shift 2
      "$build/bench/e2e_bench" --model "$d" --threads "$th" --prompt-file "$inputs/prompt.txt" \
        --image "$inputs/image0.jpg" --image "$inputs/image1.jpg" --image "$inputs/image2.jpg" \
        --decode-tokens "$decode" --caption-tokens "$caption_tokens" "$@"
    }
    if [ "$order" = rounds ]; then
      # Round r runs every (type, threads) cell whose count reaches r, so that a slow spell
      # of the shared host lands on one run of many cells rather than on every run of one.
      for dt in $dtypes; do
        for t in $threads; do : >"$results/engine-$cfg-$dt-t$t.jsonl"; done
      done
      most=$runs
      [ "$runs_1t" -gt "$most" ] && most=$runs_1t
      for r in $(seq "$most"); do
        for dt in $dtypes; do
          dir=$models/$cfg-$dt
          cat "$dir"/*.safetensors >/dev/null
          for t in $threads; do
            n=$runs
            [ "$t" = 1 ] && n=$runs_1t
            [ "$r" -le "$n" ] || continue
            echo "engine $cfg $dt threads $t run $r (rounds)" >&2
            run_engine "$dir" "$t" >>"$results/engine-$cfg-$dt-t$t.jsonl"
          done
        done
      done
    fi
    for dt in $dtypes; do
      dir=$models/$cfg-$dt
      cat "$dir"/*.safetensors >/dev/null  # page cache, so load time is not disk time
      for t in $threads; do
        n=$runs
        [ "$t" = 1 ] && n=$runs_1t
        out=$results/engine-$cfg-$dt-t$t.jsonl
        if [ "$order" != rounds ]; then
          : >"$out"
          for r in $(seq "$n"); do
            echo "engine $cfg $dt threads $t run $r" >&2
            run_engine "$dir" "$t" >>"$out"
          done
        fi
        if [ "${PACK_CACHE:-0}" = 1 ]; then
          cache=$results/pack-cache
          rm -rf "$cache"
          out=$results/cached-$cfg-$dt-t$t.jsonl
          : >"$out"
          echo "engine $cfg $dt threads $t: writing the pack cache" >&2
          run_engine "$dir" "$t" --pack-cache "$cache" >/dev/null
          for r in $(seq "$n"); do
            echo "engine $cfg $dt threads $t run $r, from the pack cache" >&2
            run_engine "$dir" "$t" --pack-cache "$cache" >>"$out"
          done
          rm -rf "$cache"
        fi
      done
    done
    if [ "${TORCH:-1}" = 1 ]; then
      for t in $torch_threads; do
        echo "pytorch $cfg threads $t ($torch_runs runs)" >&2
        "$py" "$root/bench/e2e_torch.py" --model "$models/$cfg-f32" --threads "$t" \
          --prompt-ids "$inputs/prompt_ids.json" --caption-ids "$inputs/caption_ids.json" \
          --image "$inputs/image0.jpg" --image "$inputs/image1.jpg" --image "$inputs/image2.jpg" \
          --decode-tokens "$decode" --caption-tokens "$caption_tokens" --runs "$torch_runs" \
          >"$results/torch-$cfg-t$t.jsonl"
      done
    fi
  done
  "$build/bench/machine_limits_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 --benchmark_out="$results/machine_limits_after.json" --benchmark_out_format=json >/dev/null
  echo "load_after $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%FT%TZ)" >>"$results/load.txt"
fi
"$py" "$root/bench/e2e_report.py" --results "$results" --models "$models" --docs "$root/docs" \
  --name "${DOC:-performance}"
