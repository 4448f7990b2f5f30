"""Sections of the kernel benchmark table for the conv and attention benchmarks.

kernels_table.py imports this module and registers render_conv / render_attention in its
SECTIONS; each takes (results, limits, doc) like the other renderers and returns Markdown lines.
"""
import re


def pct(x):
    return f"{100 * x:.0f} %"


CONV_RE = re.compile(r"conv/(\w+)/H:(\d+)/W:(\d+)/C:(\d+)/O:(\d+)/k:(\d+)/s:(\d+)/g:(\d+)/n:(\d+)/threads:(\d+)$")


def conv_flops(h, w, c, o, k, s, g):
    oh, ow = -(-h // s), -(-w // s)
    return 2.0 * oh * ow * o * (c // g) * k * k


def cpu_rate(row):
    """FLOP per second of the benchmark thread's CPU time (1-thread runs): on a machine shared
    with other jobs this counts only the time the thread actually ran."""
    return row["FLOP/s"] * row["real_time_ms"] / row["cpu_time_ms"] if row.get("cpu_time_ms") else None


def cpu_peak(results):
    best = None
    for name in ("machine_limits", "machine_limits_after"):
        row = results.get(name, {}).get("BM_PeakFma/1")
        if row and cpu_rate(row):
            best = max(best or 0, cpu_rate(row))
    return best


def render_conv(results, limits, doc):
    rows = {}
    for name, row in results.get("conv", {}).items():
        m = CONV_RE.match(name)
        if m:
            impl = m.group(1)
            h, w, c, o, k, s, g, n, t = map(int, m.groups()[1:])
            rows.setdefault((h, w, c, o, k, s, g, n), {}).setdefault(t, {})[impl] = row
    peak = limits.get("peak_flops_per_thread")
    cpeak = cpu_peak(results)
    lines = ["## Convolutions (NFNet-F0 layers at 256×256 input, HWC, batch 1)", "",
             "Every distinct conv shape of dm_nfnet_f0 at 256×256 (`n`: how many layers of the "
             "network have it). GFLOP/s (2·out_pixels·out_c·in_c/g·k² per call) and % of the "
             "measured FMA peak × threads. Baseline: per group an im2col into a [pixels, "
             "in_c/g·k²] matrix, then OpenBLAS `cblas_sgemm` (1×1 stride-1 convs go straight to "
             "sgemm), bias as a separate pass. `×blas`: our speed over the baseline's. `cpu`: "
             "1-thread figures per second of the benchmark thread's CPU time against the FMA peak "
             "measured the same way; on a machine shared with other jobs this removes the time the "
             "thread spent descheduled, which wall-clock figures cannot.", "",
             "| layer (in → out) | k/s/g | n | thr | ours | ours, cpu | im2col+OpenBLAS | OpenBLAS, cpu | ours ×blas |",
             "|---|---|---|---|---|---|---|---|---|"]
    table = []
    totals = {}
    for key in sorted(rows, key=lambda r: (-r[0], r[2], r[3], r[4])):
        h, w, c, o, k, s, g, n = key
        fl = conv_flops(h, w, c, o, k, s, g)
        for t in sorted(rows[key]):
            impls = rows[key][t]
            entry = {"h": h, "w": w, "in_c": c, "out_c": o, "kernel": k, "stride": s, "groups": g,
                     "count": n, "threads": t, "flop": fl}
            cells = []
            for impl in ("ours", "im2col_openblas"):
                r = impls.get(impl)
                if r is None:
                    cells += ["–", "–"]
                    continue
                e = {"GFLOP/s": r["FLOP/s"] / 1e9, "time_ms": r["real_time_ms"]}
                text = f"{e['GFLOP/s']:.1f}"
                if peak:
                    e["pct_peak"] = r["FLOP/s"] / (peak * t)
                    text += f" ({pct(e['pct_peak'])})"
                cells.append(text)
                ctext = "–"
                if t == 1 and cpu_rate(r):
                    e["cpu_time_ms"] = r["cpu_time_ms"]
                    e["cpu_GFLOP/s"] = cpu_rate(r) / 1e9
                    ctext = f"{e['cpu_GFLOP/s']:.1f}"
                    if cpeak:
                        e["cpu_pct_peak"] = cpu_rate(r) / cpeak
                        ctext += f" ({pct(e['cpu_pct_peak'])})"
                cells.append(ctext)
                entry[impl] = e
                for clock, ms in (("wall", e["time_ms"]), ("cpu", e.get("cpu_time_ms"))):
                    if ms is None:
                        continue
                    tot = totals.setdefault((impl, t, clock), {"ms": 0.0, "flop": 0.0, "k3_ms": 0.0, "k3_flop": 0.0,
                                                                "k1_ms": 0.0, "k1_flop": 0.0})
                    tot["ms"] += n * ms
                    tot["flop"] += n * fl
                    if k == 3 and c > 3:  # the 3×3 body convs (the stem's first conv, in_c = 3, excluded)
                        tot["k3_ms"] += n * ms
                        tot["k3_flop"] += n * fl
                    if k == 1:
                        tot["k1_ms"] += n * ms
                        tot["k1_flop"] += n * fl
            ratio = ""
            if "ours" in entry and "im2col_openblas" in entry:
                entry["ratio_openblas"] = entry["im2col_openblas"]["time_ms"] / entry["ours"]["time_ms"]
                ratio = f"{entry['ratio_openblas']:.2f}×"
            table.append(entry)
            lines.append(f"| {h}×{w}×{c} → {o} | {k}/{s}/{g} | {n} | {t} | {cells[0]} | {cells[1]} | {cells[2]} | "
                         f"{cells[3]} | {ratio} |")
    lines.append("")
    summary = []
    lines += ["### Whole network (all conv layers, each shape × n)", "",
              "% of peak over all conv FLOPs of the network (time-weighted). `cpu`: the same on the "
              "benchmark thread's CPU time (1 thread).", "",
              "| impl | thr | clock | conv time (ms) | all convs | 3×3 convs | 1×1 convs |",
              "|---|---|---|---|---|---|---|"]
    for (impl, t, clock), tot in sorted(totals.items()):
        ref = (cpeak if clock == "cpu" else peak * t if peak else None)

        def eff(ms, flop):
            if ms <= 0 or not ref:
                return None
            return flop / (ms * 1e-3) / ref
        s = {"impl": impl, "threads": t, "clock": clock, "time_ms": tot["ms"],
             "pct_peak_all": eff(tot["ms"], tot["flop"]), "pct_peak_3x3": eff(tot["k3_ms"], tot["k3_flop"]),
             "pct_peak_1x1": eff(tot["k1_ms"], tot["k1_flop"])}
        summary.append(s)
        f = lambda x: pct(x) if x is not None else "–"
        lines.append(f"| {impl} | {t} | {clock} | {tot['ms']:.1f} | {f(s['pct_peak_all'])} | {f(s['pct_peak_3x3'])} | "
                     f"{f(s['pct_peak_1x1'])} |")
    lines.append("")
    targets = []
    for s in summary:
        if s["impl"] == "ours" and s["threads"] == 1:
            for kind in ("3x3", "1x1"):
                v = s[f"pct_peak_{kind}"]
                if v is not None:
                    targets.append({"target": f"NFNet-F0 {kind.replace('x', '×')} convs, 1 thread ≥ 70 % of peak "
                                              f"(FLOP-weighted over the network, {s['clock']} clock)",
                                    "measured": pct(v), "met": v >= 0.70})
    if targets:
        lines += ["### Targets (issue 3)", "", "| target | measured | status |", "|---|---|---|"]
        for t in targets:
            lines.append(f"| {t['target']} | {t['measured']} | {'met' if t['met'] else 'MISSED'} |")
        lines.append("")
    doc["conv"] = {"rows": table, "network": summary, "targets": targets}
    return lines


ATTN_RE = re.compile(r"attention/(\w+)/q:(\d+)/kv:(\d+)/h:(\d+)/kvh:(\d+)/d:(\d+)/threads:(\d+)$")


def render_attention(results, limits, doc):
    peak = limits.get("peak_flops_per_thread")
    lines = ["## Attention (online softmax, GQA)", "",
             "GFLOP/s counts 4·head_dim per visible query-key pair and head (q·k and p·v), % of the "
             "FMA peak × threads. KV GB/s: bytes of K and V per call over time, % of the triad "
             "bandwidth at that thread count (the yardstick for decode).", "",
             "| kind | n_q | n_kv | heads/kv heads | d | thr | time (µs) | GFLOP/s | KV GB/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    table = []
    for name, row in sorted(results.get("attention", {}).items()):
        m = ATTN_RE.match(name)
        if not m:
            continue
        kind = m.group(1)
        nq, nkv, h, kvh, d, t = map(int, m.groups()[1:])
        e = {"kind": kind, "n_q": nq, "n_kv": nkv, "heads": h, "kv_heads": kvh, "head_dim": d, "threads": t,
             "time_us": row["real_time_ms"] * 1e3, "GFLOP/s": row["FLOP/s"] / 1e9, "kv_GB/s": row["kv_bytes/s"] / 1e9}
        gf = f"{e['GFLOP/s']:.1f}"
        if peak:
            e["pct_peak"] = row["FLOP/s"] / (peak * t)
            gf += f" ({pct(e['pct_peak'])})"
        bw = limits.get("triad", {}).get(t)
        gb = f"{e['kv_GB/s']:.2f}"
        if bw:
            e["pct_bandwidth"] = row["kv_bytes/s"] / bw
            gb += f" ({pct(e['pct_bandwidth'])})"
        table.append(e)
        lines.append(f"| {kind} | {nq} | {nkv} | {h}/{kvh} | {d} | {t} | {e['time_us']:.0f} | {gf} | {gb} |")
    lines.append("")
    doc["attention"] = {"rows": table}
    return lines
