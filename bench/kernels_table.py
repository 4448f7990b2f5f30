#!/usr/bin/env python3
"""Turns Google Benchmark JSON results of the kernel benchmarks into docs tables.

    python3 bench/kernels_table.py --results DIR --md OUT.md --json OUT.json

DIR holds one <binary>.json per benchmark binary (bench/<binary>_bench.cc), written with
--benchmark_repetitions and --benchmark_report_aggregates_only, so each benchmark appears as
mean/median/stddev aggregates; only medians are used. Each binary gets a section rendered by
the function registered for it in SECTIONS (add one for a new benchmark binary); binaries
without one get a generic table of their counters. Plain python3, standard library only.
"""
import argparse
import json
import os
import re
import sys


def load_medians(path):
    """name (without the /real_time suffix) -> {"real_time_ms": .., counters..}"""
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data.get("benchmarks", []):
        if b.get("aggregate_name") != "median" or b.get("error_occurred"):
            continue
        name = re.sub(r"/real_time$", "", b["run_name"])
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        row = {"real_time_ms": b["real_time"] * unit, "cpu_time_ms": b["cpu_time"] * unit}
        for key, value in b.items():
            if isinstance(value, (int, float)) and key not in (
                    "real_time", "cpu_time", "iterations", "repetitions", "repetition_index",
                    "threads", "family_index", "per_family_instance_index"):
                row[key] = value
        out[name] = row
    return out, data.get("context", {})


# ---------------------------------------------------------------------------- machine limits

def limits_from(results):
    """Peak FLOP/s per thread and triad bandwidth per thread count, the larger of the runs
    before and after the other benchmarks (the conservative yardstick)."""
    limits = {"peak_flops_per_thread": None, "triad": {}, "read": {}, "f16_fma_bytes_per_thread": None}
    for name in ("machine_limits", "machine_limits_after"):
        r = results.get(name)
        if not r:
            continue
        for bench, row in r.items():
            if bench == "BM_PeakF16Fma/1" and "bytes/s" in row:
                cur = limits["f16_fma_bytes_per_thread"]
                limits["f16_fma_bytes_per_thread"] = max(cur or 0, row["bytes/s"])
                continue
            m = re.match(r"BM_(PeakFma|Triad|ReadSum)/(\d+)$", bench)
            if not m:
                continue
            kind, t = m.group(1), int(m.group(2))
            if kind == "PeakFma" and t == 1:
                v = row["FLOP/s"]
                cur = limits["peak_flops_per_thread"]
                limits["peak_flops_per_thread"] = v if cur is None else max(cur, v)
            elif kind == "Triad":
                limits["triad"][t] = max(limits["triad"].get(t, 0), row["bytes/s"])
            elif kind == "ReadSum":
                limits["read"][t] = max(limits["read"].get(t, 0), row["bytes/s"])
    return limits


def render_limits(results, limits, doc):
    lines = ["## Machine limits (measured in this run)", "",
             "| measurement | before | after |", "|---|---|---|"]
    before, after = results.get("machine_limits", {}), results.get("machine_limits_after", {})
    for bench in sorted(set(before) | set(after)):
        def fmt(row):
            if not row:
                return "–"
            if "FLOP/s" in row:
                return f"{row['FLOP/s'] / 1e9:.1f} GFLOP/s"
            return f"{row['bytes/s'] / 1e9:.2f} GB/s"
        lines.append(f"| {bench} | {fmt(before.get(bench))} | {fmt(after.get(bench))} |")
    lines += ["", "PeakFma/N: N threads each running 12 independent ymm FMA chains: the ceiling "
              "of our AVX2 kernels and the peak all percentages use. PeakFma512/N (only on "
              "machines with AVX-512): the same with zmm, the machine's real ceiling, which "
              "AVX2 code cannot reach. PeakF16Fma/N: 12 chains of vcvtph2ps from L1 + FMA per thread, "
              "in bytes of fp16 weights (16 a pair): the f16 GEMV's roof where converting, not "
              "memory, limits it. Triad/N: "
              "STREAM triad on three arrays of together 4× the L3 (at least 384 MiB), 24 bytes per "
              "element. ReadSum/N: read-only sweep of as many bytes. Both arrays in transparent "
              "huge pages, as the packed weights are. Percentages below use the "
              "larger of the two runs" + (
                  ", except the matmul GFLOP/s rows, which use the FMA loop run among them "
                  "(below)" if own_peaks(results.get("matmul", {})) else "") + ".", ""]
    doc["machine_limits"] = {"before": before, "after": after, "used": {
        "peak_flops_per_thread": limits["peak_flops_per_thread"],
        "triad_bytes_per_s": limits["triad"], "read_bytes_per_s": limits["read"],
        "f16_fma_bytes_per_thread": limits["f16_fma_bytes_per_thread"]}}
    return lines


# ---------------------------------------------------------------------------------- matmul

MATMUL_IMPLS = ["f32", "f16", "bf16", "q8_0", "q4_0", "openblas", "eigen"]


def parse_matmul(results):
    rows = {}
    for name, row in results.items():
        m = re.match(r"matmul/(\w+)/M:(\d+)/K:(\d+)/N:(\d+)/threads:(\d+)$", name)
        if m:
            impl, M, K, N, t = m.group(1), *map(int, m.groups()[1:])
            rows.setdefault((M, K, N, t), {})[impl] = row
    return rows


def pct(x):
    return f"{100 * x:.0f} %"


def pct_against(x, threshold):
    """pct(x), with a decimal where rounding would show a miss as the threshold itself."""
    if x < threshold and round(100 * x) >= round(100 * threshold):
        return f"{100 * x:.1f} %"
    return pct(x)


def own_peaks(rows):
    """FLOP/s of the BM_PeakFma/<threads> rows a kernel binary ran among its own (peak_fma.h):
    with random interleaving they were measured in the same minutes as the kernels."""
    out = {}
    for name, r in rows.items():
        m = re.match(r"BM_PeakFma/(\d+)$", name)
        if m and "FLOP/s" in r:
            out[int(m.group(1))] = r["FLOP/s"]
    return out


def render_matmul(results, limits, doc):
    rows = parse_matmul(results.get("matmul", {}))
    own = own_peaks(results.get("matmul", {}))
    peak = limits["peak_flops_per_thread"]

    def peak_at(t):
        """The FMA peak at t threads the percentages use."""
        if t in own:
            return own[t]
        return peak * t if peak else None

    if own:
        yardstick = ("% of the FMA peak at the same thread count measured among these rows "
                     "(matmul_bench's own BM_PeakFma: " +
                     ", ".join(f"{own[t] / 1e9:.1f} GFLOP/s at {t} thread{'s' if t > 1 else ''}"
                               for t in sorted(own)) + ")")
    else:
        yardstick = "% of the measured FMA peak × threads"
    lines = ["## Matmul (C[M,N] = A[M,K]·Wᵀ, fp32 activations)", "",
             "M < 8 (GEMV: the weights streamed once for all the rows): weight GB/s (bytes of the "
             "weights in their storage type per call) and "
             "% of the memory bandwidth at the same thread count (the larger of the triad and the "
             "read-only sweep; every call reads a different copy of the weights, 4× the L3 in "
             "all, so they come from DRAM). M > 1: GFLOP/s and " + yardstick + ". `×blas`: "
             "ratio to OpenBLAS (cblas_sgemv / cblas_sgemm) on the same shape and thread count.",
             ""]
    header = "| M | K | N | thr | " + " | ".join(MATMUL_IMPLS) + " |"
    lines += [header, "|" + "---|" * (4 + len(MATMUL_IMPLS))]
    table = []
    for (M, K, N, t) in sorted(rows):
        impls = rows[(M, K, N, t)]
        blas = impls.get("openblas")
        cells = []
        entry = {"M": M, "K": K, "N": N, "threads": t}
        for impl in MATMUL_IMPLS:
            r = impls.get(impl)
            if r is None:
                cells.append("–")
                continue
            e = {"GFLOP/s": r["FLOP/s"] / 1e9, "weight_GB/s": r["weight_bytes/s"] / 1e9,
                 "time_ms": r["real_time_ms"]}
            if blas:
                e["ratio_openblas"] = r["FLOP/s"] / blas["FLOP/s"]
            if M < 8:
                bw = max(limits["triad"].get(t, 0), limits["read"].get(t, 0)) or None
                text = f"{e['weight_GB/s']:.1f} GB/s"
                if bw:
                    e["pct_bandwidth"] = r["weight_bytes/s"] / bw
                    text += f" ({pct(e['pct_bandwidth'])})"
            else:
                text = f"{e['GFLOP/s']:.1f}"
                if peak_at(t):
                    e["pct_peak"] = r["FLOP/s"] / peak_at(t)
                    text += f" ({pct(e['pct_peak'])})"
            if blas and impl != "openblas":
                text += f" {e['ratio_openblas']:.2f}×blas"
            cells.append(text)
            entry[impl] = e
        table.append(entry)
        lines.append(f"| {M} | {K} | {N} | {t} | " + " | ".join(cells) + " |")
    lines.append("")
    micro = []
    for name, r in sorted(results.get("matmul", {}).items()):
        m = re.match(r"microkernel/(\w+)/kc:(\d+)$", name)
        if m:
            e = {"kernel": m.group(1), "kc": int(m.group(2)), "GFLOP/s": r["FLOP/s"] / 1e9}
            text = f"{m.group(1)}, kc = {e['kc']}: {e['GFLOP/s']:.1f} GFLOP/s"
            if peak_at(1):
                e["pct_peak"] = r["FLOP/s"] / peak_at(1)
                text += f" ({pct(e['pct_peak'])})"
            micro.append((e, text))
    if micro:
        lines += ["The GEMM's 6×16 register tile alone, hot (one kc×16 weight sub-panel in L1, 32 "
                  "packed A tiles in L2, one thread): the ceiling of any blocking around it. "
                  + "; ".join(t for _, t in micro) + ".", ""]
    hot = []
    for name, r in sorted(results.get("matmul", {}).items()):
        m = re.match(r"microkernel/gemv_(\w+)_(avx2|scalar)/K:(\d+)$", name)
        if m and "weight_bytes/s" in r:
            hot.append({"type": m.group(1), "isa": m.group(2), "K": int(m.group(3)),
                        "GB/s": r["weight_bytes/s"] / 1e9})
    if hot:
        lines += ["Each GEMV kernel alone, hot (M = 1, a matrix of about 768 KiB resident in L2, one "
                  "thread, no pool), in weight GB/s: the rate it can consume when memory is not "
                  "the limit. Against the DRAM bandwidth per core above it says how much of a "
                  "decode's time the kernel's own instructions take.", "",
                  "| kernel | K | GB/s |", "|---|---|---|"]
        roof = limits.get("f16_fma_bytes_per_thread")
        for e in hot:
            text = f"{e['GB/s']:.1f}"
            if roof and e["type"].startswith("f16") and e["isa"] == "avx2":
                e["pct_f16_fma_roof"] = e["GB/s"] * 1e9 / roof
                text += f" ({pct(e['pct_f16_fma_roof'])} of PeakF16Fma/1)"
            lines.append(f"| gemv_{e['type']}_{e['isa']} | {e['K']} | {text} |")
        lines.append("")
    beside = parse_beside_sweep(results.get("matmul", {}))
    if beside:
        lines += ["GEMV (M = 1) alternated call by call with a read sweep of as many bytes on the "
                  "same threads (matmul_beside_sweep: each call a DRAM-cold copy of the weights, "
                  "each sweep a DRAM-cold stretch of its own array, both in huge pages): weight "
                  "GB/s and its share of the sweep's GB/s, the bandwidth the machine gave in the "
                  "same milliseconds. Medians of the per-repetition ratios.", "",
                  "| K | N | thr | " + " | ".join(MATMUL_IMPLS[:5]) + " |",
                  "|" + "---|" * 8]
        for (K, N, t) in sorted(beside):
            cells = []
            for impl in MATMUL_IMPLS[:5]:
                e = beside[(K, N, t)].get(impl)
                cells.append("–" if e is None else
                             f"{e['weight_GB/s']:.1f} GB/s ({pct(e['of_sweep'])} of "
                             f"{e['sweep_GB/s']:.1f})")
            lines.append(f"| {K} | {N} | {t} | " + " | ".join(cells) + " |")
        lines.append("")
    targets = matmul_targets(table, own, beside)
    lines += ["### Targets (issue 3)", "", "| target | measured | status |", "|---|---|---|"]
    for t in targets:
        lines.append(f"| {t['target']} | {t['measured']} | {'met' if t['met'] else 'MISSED'} |")
    lines.append("")
    doc["matmul"] = {"rows": table, "targets": targets, "microkernel": [e for e, _ in micro],
                     "gemv_hot": hot, "gemv_beside_sweep": [
                         {"K": K, "N": N, "threads": t, **impls}
                         for (K, N, t), impls in sorted(beside.items())], "own_peak_flops": {str(t): v for t, v in own.items()}}
    return lines


def parse_beside_sweep(results):
    """(K, N, threads) -> impl -> weight GB/s, sweep GB/s and their ratio, from the
    matmul_beside_sweep rows (median of each counter over the repetitions)."""
    out = {}
    for name, r in results.items():
        m = re.match(r"matmul_beside_sweep/(\w+)/M:1/K:(\d+)/N:(\d+)/threads:(\d+)$", name)
        if m and "of_sweep" in r:
            K, N, t = map(int, m.groups()[1:])
            out.setdefault((K, N, t), {})[m.group(1)] = {
                "weight_GB/s": r["weight_bytes/s"] / 1e9, "sweep_GB/s": r["sweep_bytes/s"] / 1e9,
                "of_sweep": r["of_sweep"]}
    return out


def matmul_targets(table, own, beside=None):
    def rows(pred):
        return [r for r in table if pred(r)]

    targets = []
    gemm1 = rows(lambda r: r["M"] >= 64 and r["threads"] == 1 and "f32" in r)
    if gemm1:
        worst = min(r["f32"].get("pct_peak", 0) for r in gemm1)
        targets.append({"target": "f32 GEMM M≥64, 1 thread ≥ 88 % of peak (worst shape)",
                        "measured": pct_against(worst, 0.88), "met": worst >= 0.88})
        ratios = [r["f32"]["ratio_openblas"] for r in gemm1 if "ratio_openblas" in r["f32"]]
        if ratios:
            targets.append({"target": "f32 GEMM M≥64, 1 thread ≥ 1.1× OpenBLAS (worst shape)",
                            "measured": f"{min(ratios):.2f}×", "met": min(ratios) >= 1.1})
    speedups = []
    for r in gemm1:
        two = [x for x in table if (x["M"], x["K"], x["N"], x["threads"]) == (r["M"], r["K"], r["N"], 2)]
        if two and "f32" in two[0]:
            speedups.append(two[0]["f32"]["GFLOP/s"] / r["f32"]["GFLOP/s"])
    if speedups:
        measured = f"{min(speedups):.2f}×"
        if 1 in own and 2 in own:
            measured += f" (the FMA loop among these rows: {own[2] / own[1]:.2f}×)"
        targets.append({"target": "f32 GEMM M≥64, 2 threads ≥ 1.8× one thread (worst shape)",
                        "measured": measured, "met": min(speedups) >= 1.8})
    for t in (1, 2):
        gemv = rows(lambda r: r["M"] == 1 and r["threads"] == t)
        for impl in MATMUL_IMPLS[:5]:
            vals = [r[impl]["pct_bandwidth"] for r in gemv if impl in r and "pct_bandwidth" in r[impl]]
            if vals:
                targets.append({"target": f"GEMV M=1 {impl}, {t} thread(s) ≥ 85 % of memory bandwidth (worst shape)",
                                "measured": pct_against(min(vals), 0.85), "met": min(vals) >= 0.85})
    for t in (1, 2):
        for impl in MATMUL_IMPLS[:5]:
            vals = [v[impl]["of_sweep"] for (_, _, th), v in (beside or {}).items()
                    if th == t and impl in v]
            if vals:
                targets.append({"target": f"GEMV M=1 {impl}, {t} thread(s) ≥ 85 % of a read sweep "
                                          "of as many bytes alternated with it (worst shape)",
                                "measured": pct_against(min(vals), 0.85), "met": min(vals) >= 0.85})
    for impl in ("q8_0", "q4_0"):
        vals = [r[impl]["GFLOP/s"] / r["f32"]["GFLOP/s"] for r in rows(lambda r: r["M"] >= 64)
                if impl in r and "f32" in r]
        if vals:
            targets.append({"target": f"{impl} GEMM M≥64 within 15 % of f32 GFLOP/s (worst shape/threads)",
                            "measured": f"{min(vals):.2f}× f32", "met": min(vals) >= 0.85})
    return targets


# ------------------------------------------------------------------------------ element-wise

def render_elementwise(results, limits, doc):
    rows = {}
    for name, r in results["elementwise"].items():
        m = re.match(r"elementwise/(\w+)_(avx2|scalar)$", name)
        if m:
            rows.setdefault(m.group(1), {})[m.group(2)] = r["elements/s"] / 1e9
    lines = ["## Element-wise kernels (one thread, 16384 values in L2)", "",
             "G values produced per second; `×scalar`: the AVX2 kernel against the portable one. "
             "Norms run 8 rows of 2048.", "",
             "| op | scalar | avx2 | ×scalar |", "|---|---|---|---|"]
    for op, r in rows.items():
        ratio = f"{r['avx2'] / r['scalar']:.1f}×" if "avx2" in r and "scalar" in r else "–"
        cells = [f"{r[i]:.3f}" if i in r else "–" for i in ("scalar", "avx2")]
        lines.append(f"| {op} | " + " | ".join(cells) + f" | {ratio} |")
    lines.append("")
    doc["elementwise"] = rows
    return lines


# ----------------------------------------------------------------------------------- generic

def render_generic(name):
    def render(results, limits, doc):
        lines = [f"## {name}", "", "| benchmark | time (ms) | counters |", "|---|---|---|"]
        for bench, row in sorted(results[name].items()):
            counters = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "real_time_ms")
            lines.append(f"| {bench} | {row['real_time_ms']:.3f} | {counters} |")
        lines.append("")
        doc[name] = results[name]
        return lines
    return render


# Section renderers per benchmark binary, in document order. machine_limits_after is folded
# into the machine_limits section.
from kernels_table_conv import render_attention, render_conv  # noqa: E402

SECTIONS = {
    "machine_limits": render_limits,
    "matmul": render_matmul,
    "conv": render_conv,
    "attention": render_attention,
    "elementwise": render_elementwise,
}
HIDDEN = {"machine_limits_after"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--note", default="")
    ap.add_argument("--command", default="bash bench/run_kernels.sh")
    args = ap.parse_args()

    results, context, openblas_core = {}, {}, None
    for fname in sorted(os.listdir(args.results)):
        if fname.endswith(".json"):
            name = fname[:-5]
            results[name], ctx = load_medians(os.path.join(args.results, fname))
            context = context or ctx
            openblas_core = openblas_core or ctx.get("openblas_core")  # only matmul_bench's
    if openblas_core:
        context["openblas_core"] = openblas_core
    if not results:
        sys.exit(f"no benchmark results in {args.results}")
    limits = limits_from(results)
    doc = {"command": args.command, "note": args.note, "context": {
        k: context.get(k) for k in ("date", "host_name", "num_cpus", "mhz_per_cpu", "caches",
                                     "library_build_type", "openblas_core")}}
    md = ["# Kernel benchmarks", "",
          f"Generated by `{args.command}` (medians of repetitions, wall-clock time).",
          f"{args.note}. Date: {context.get('date', '?')}, {context.get('num_cpus', '?')} CPUs"
          + (f"; OpenBLAS ran its {context['openblas_core']} kernels" if context.get("openblas_core")
             else "") + ".",
          "The machine is shared with other jobs, so absolute figures move from run to run; "
          "percentages and ratios are against limits and baselines measured in the same run.", ""]
    order = list(SECTIONS) + sorted(n for n in results if n not in SECTIONS and n not in HIDDEN)
    for name in order:
        if name not in results:
            continue
        md += SECTIONS.get(name, render_generic(name))(results, limits, doc)
    with open(args.md, "w") as f:
        f.write("\n".join(md) + "\n")
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
