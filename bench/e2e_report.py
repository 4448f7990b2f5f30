#!/usr/bin/env python3
"""Renders the end-to-end benchmark results (bench/run_e2e.sh) as docs/performance.md,
docs/performance.json and two plots (docs/performance-stages.png, docs/performance-decode.png);
--name changes the "performance" in those names.

Yardsticks: the reference limits of docs/machine-limits-reference.json when this run's
machine is the one they were measured on, else the same run's machine_limits_bench (the
larger of the runs before and after): peak FLOP/s = FMA peak per thread x threads; bandwidth =
STREAM triad at that thread count. Stage FLOPs are counted from config.json (useful multiply-adds x 2, attention included,
norms and activations not); decode bytes per token are read from the safetensors header: every
matrix a generated token streams (LM layers, LM head, the gated blocks' q/o/FFN: their visual
K/V is cached) plus the KV cache it reads.
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kernels_table import limits_from, load_medians  # noqa: E402

DTYPE_ORDER = ["f32", "bf16", "q8_0", "q4_0"]
CONFIG_NAMES = {"tinyllama": "TinyLlama-1.1B LM + NFNet-F0 @256, gated every 4th layer",
                "flamingo3b": "Flamingo-3B shape: NFNet-F6 @320, 24-layer LM, gated every layer"}


def runs_per_thread_count(rows):
    """'1 thread(s): 3, 2 thread(s): 2-3': the cells of one table may come from different invocations."""
    runs = {}
    for r in rows:
        runs.setdefault(r["threads"], set()).add(r["runs"])
    return ", ".join(f"{t} thread(s): " + ("–".join(map(str, sorted({min(n), max(n)}))))
                     for t, n in sorted(runs.items()))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in h.items()}


# ---------------------------------------------------------------------------- FLOP counts
def vision_flops(v):
    """Per image: 2 x MACs of every conv (grouped 3x3 included) and the SE layers."""
    s = v["image_size"]
    flops = 0

    def conv(h, cin, cout, k, stride, groups=1):
        nonlocal flops
        ho = math.ceil(h / stride)
        flops += 2 * ho * ho * cout * (cin // groups) * k * k
        return ho

    h, c = s, 3
    for i, co in enumerate(v["stem_channels"]):
        h = conv(h, c, co, 3, 2 if i in (0, 3) else 1)
        c = co
    gw = v["group_width"]
    for st, (depth, width) in enumerate(zip(v["depths"], v["widths"])):
        for b in range(depth):
            stride = v["strides"][st] if b == 0 else 1
            mid = int(width * v["bottleneck_ratio"])
            if b == 0 and (c != width or stride > 1):
                conv(math.ceil(h / stride), c, width, 1, 1)
            conv(h, c, mid, 1, 1)
            h2 = conv(h, mid, mid, 3, stride, mid // gw)
            conv(h2, mid, mid, 3, 1, mid // gw)
            conv(h2, mid, width, 1, 1)
            se = int(width * v["se_ratio"])
            flops += 2 * 2 * width * se
            h, c = h2, width
    return flops, h * h


def resampler_flops(cfg, positions):
    r = cfg["resampler"]
    D, inner, L = r["dim"], r["heads"] * r["head_dim"], r["num_latents"]
    per = 2 * L * D * inner + 2 * 2 * (positions + L) * D * inner + 2 * 2 * L * (positions + L) * inner \
        + 2 * L * inner * D + 2 * 2 * L * D * r["ff_mult"] * D
    return per * r["depth"]


def n_blocks(cfg):
    return len([i for i in range(cfg["lm"]["layers"]) if (i + 1) % cfg["xattn"]["every"] == 0])


def visual_kv_flops(cfg):
    x = cfg["xattn"]
    return n_blocks(cfg) * 2 * 2 * cfg["resampler"]["num_latents"] * cfg["resampler"]["dim"] * x["heads"] * x["head_dim"]


def prefill_flops(cfg, tokens):
    lm, x = cfg["lm"], cfg["xattn"]
    d, hd = lm["dim"], lm["head_dim"]
    layer = d * lm["heads"] * hd * 2 + d * lm["kv_heads"] * hd * 2 + 3 * d * lm["ffn_dim"]
    f = 2 * tokens * layer * lm["layers"] + 2 * tokens * tokens * lm["heads"] * hd * lm["layers"]
    xi = x["heads"] * x["head_dim"]
    blk = 2 * d * xi + (3 if x["ffn"] == "swiglu" else 2) * d * x["ff_dim"]
    f += n_blocks(cfg) * (2 * tokens * blk + 4 * tokens * cfg["resampler"]["num_latents"] * xi)
    return f + 2 * lm["vocab_size"] * d  # logits of the last position


def sweep_after_decode(run):
    """The read bandwidth (bytes/s) e2e_bench measured right after a run's decode; None where
    the run has none (older results, or e2e_bench's -1 for a sweep that could not run)."""
    v = run.get("sweep_after_decode_bytes_per_s", -1)
    return v if v > 0 else None


def decode_share_of_sweep(runs, bytes_per_token):
    """The decode's bytes/s over the read sweep e2e_bench ran right after it (the bandwidth of
    the same seconds), per run, and the median over the runs that have a sweep; None without."""
    shares = [r["fewshot"]["decode_tokens"] / r["fewshot"]["decode_ms"] * 1e3 * bytes_per_token
              / sweep_after_decode(r)
              for r in runs if sweep_after_decode(r) is not None]
    return med(shares)


def pytorch_row(path):
    """Medians of one bench/e2e_torch.py results file (torch-<config>-t<threads>.jsonl); None
    for a file that is empty or named otherwise."""
    m = re.match(r"torch-(\w+?)-t(\d+)\.jsonl$", os.path.basename(path))
    runs = read_jsonl(path) if m else []
    if not runs:
        return None
    tr = {"config": m.group(1), "threads": int(m.group(2)), "runs": len(runs),
          "load_ms": runs[0]["load_ms"]}
    for k in ("decode_preprocess_ms", "vision_timm_ms", "vision_ms", "resampler_ms", "prefill_ms",
              "decode_ms", "first_token_ms", "caption_wall_ms", "peak_rss_kb"):
        tr[k] = med(r.get(k) for r in runs)
    tr["decode_tokens"] = runs[0]["decode_tokens"]
    tr["prefill_tokens"] = runs[0]["prefill_tokens"]
    tr["decode_tok_s"] = tr["decode_tokens"] / tr["decode_ms"] * 1e3
    # Runs from before bench/e2e_torch.py held OpenBLAS to --threads recorded none of these.
    tr["cpu_share"] = med(r["cpu_ms"] / r["wall_ms"] for r in runs if r.get("wall_ms"))
    tr["blas_threads"] = runs[0].get("blas_threads")
    tr["omp_wait_policy"] = runs[0].get("omp_wait_policy")
    return tr


def next_query_summary(runs):
    """The few-shot loop's next query (e2e_bench's fewshot_next: same session and examples,
    another last image), beside the first request; None for runs made before it existed."""
    nxt = [(r["fewshot"], r["fewshot_next"]) for r in runs if "fewshot_next" in r]
    if not nxt:
        return None
    return {"reused": nxt[0][1]["prompt_tokens_reused"], "ran": nxt[0][1]["prefill_tokens"],
            "prefill_ms": med(b["prefill_ms"] for _, b in nxt),
            "first_prefill_ms": med(a["prefill_ms"] for a, _ in nxt),
            "first_token_ms": med(b["first_token_ms"] for _, b in nxt),
            "first_first_token_ms": med(a["first_token_ms"] for a, _ in nxt),
            # One image on a warm workspace: the encoder without the first request's page faults.
            "vision_ms": med(b["vision_ms"] / b["media_encoded"] for _, b in nxt if b["media_encoded"]),
            "first_vision_ms": med(a["vision_ms"] / a["media_encoded"] for a, _ in nxt if a["media_encoded"])}


def decode_bytes(cfg, sizes, positions):
    pat = re.compile(r"^(lm\.layers\.|lm\.lm_head\.|lm\.norm\.|xattn\.\d+\.(attn\.(q|o)_proj|mlp|attn_norm|ff_norm|attn_gate|ff_gate))")
    w = sum(b for k, b in sizes.items() if pat.match(k))
    lm = cfg["lm"]
    kv = positions * lm["layers"] * 2 * lm["kv_heads"] * lm["head_dim"] * 4
    return w, kv


# ---------------------------------------------------------------------------- collection
def machine_of(context):
    """What tells two machines apart in Google Benchmark's context: CPUs, clock, caches."""
    caches = sorted((c["level"], c["type"], c["size"], c.get("num_sharing", 0))
                    for c in context.get("caches", []))
    return context.get("num_cpus"), context.get("mhz_per_cpu"), caches


def describe_machine(context):
    l3 = [c["size"] for c in context.get("caches", []) if c["level"] == 3]
    return (f"{context.get('num_cpus')} CPUs at {context.get('mhz_per_cpu')} MHz"
            + (f", L3 {l3[0] // 2**20} MiB" if l3 else ""))


def reference_limits(path, run_context):
    """The reference limits: a machine_limits section written by bench/run_kernels.sh, kept in
    docs/machine-limits-reference.json so that the yardstick does not move each time the kernel
    tables are rerun on a busier host. They hold for the machine they were measured on only:
    when this run's machine differs (CPUs, clock or caches), the run's own limits are the
    yardstick and the reason is kept in "skipped"."""
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        d = json.load(f)
    ref_context = d.get("context", {})
    if machine_of(ref_context) != machine_of(run_context):
        return {"skipped": f"the reference limits of {os.path.basename(path)} were measured on another "
                           f"machine ({describe_machine(ref_context)}; this run: {describe_machine(run_context)})"}
    u = d["machine_limits"]["used"]
    return {"peak_flops_per_thread": u["peak_flops_per_thread"],
            "triad": {int(k): v for k, v in u["triad_bytes_per_s"].items()}, "note": d.get("note", "")}


def lower_limits(measured):
    """The smaller of the start's and the end's FMA peak and triad (limits_from takes the
    larger): on a host whose bandwidth moves by a third within a run, the two bracket it."""
    each = [limits_from({n: m}) for n, m in measured.items()]
    peaks = [e["peak_flops_per_thread"] for e in each if e["peak_flops_per_thread"]]
    threads = set().union(*(e["triad"] for e in each)) if each else set()
    return {"peak_flops_per_thread": min(peaks) if peaks else None,
            "triad": {t: min(e["triad"][t] for e in each if t in e["triad"]) for t in threads}}


def collect(results, models, reference_path=None):
    measured = {n: load_medians(os.path.join(results, n + ".json"))
                for n in ("machine_limits", "machine_limits_after")
                if os.path.exists(os.path.join(results, n + ".json"))}
    limits = limits_from({n: m[0] for n, m in measured.items()})
    lower = lower_limits({n: m[0] for n, m in measured.items()})
    run_context = next(iter(measured.values()))[1] if measured else {}
    ref = reference_limits(reference_path, run_context)
    skipped = ref.pop("skipped") if ref and "skipped" in ref else None
    if skipped:
        ref = None
    peak = limits["peak_flops_per_thread"]
    triad = {int(k): v for k, v in limits["triad"].items()}
    if not ref:
        # Without a reference for this machine, the run's own limits are the yardstick: the
        # tables' first figure and the bracketed one are then the same.
        ref = {"peak_flops_per_thread": peak, "triad": triad, "own": True,
               "note": skipped or "no reference limits file",
               "lower_peak": lower["peak_flops_per_thread"], "lower_triad": lower["triad"]}
    # The bracketed *_run figures: the run's own limits beside a reference; without one, where
    # the primary figures are the run's larger measurement, its smaller one.
    if ref.get("own"):
        alt_peak, alt_triad = lower["peak_flops_per_thread"], lower["triad"]
    else:
        alt_peak, alt_triad = peak, triad
    rows, torch_rows = [], []
    # engine-*: loads that pack the weights; cached-*: loads from a pack cache (PACK_CACHE=1).
    for path in sorted(glob.glob(os.path.join(results, "engine-*.jsonl"))
                       + glob.glob(os.path.join(results, "cached-*.jsonl"))):
        m = re.match(r"(engine|cached)-(\w+?)-(f32|bf16|q8_0|q4_0)-t(\d+)\.jsonl$",
                     os.path.basename(path))
        if not m:
            continue
        cached = m.group(1) == "cached"
        cfg_name, dt, t = m.group(2), m.group(3), int(m.group(4))
        runs = read_jsonl(path)
        if not runs:
            continue
        mdir = os.path.join(models, f"{cfg_name}-{dt}")
        with open(os.path.join(mdir, "config.json")) as f:
            cfg = json.load(f)
        sizes = header(os.path.join(mdir, "model.safetensors"))
        fw = [r["fewshot"] for r in runs]
        vis_f, positions = vision_flops(cfg["vision"])
        n_img = fw[0]["media_encoded"]
        res_f = resampler_flops(cfg, positions) + visual_kv_flops(cfg)
        pre_tok = fw[0]["prefill_tokens"]
        pre_f = prefill_flops(cfg, pre_tok)
        wbytes, kvbytes = decode_bytes(cfg, sizes, pre_tok + fw[0]["decode_tokens"])
        row = {
            "config": cfg_name, "dtype": dt, "threads": t, "runs": len(runs), "cached": cached,
            "pack_cache": sorted({r.get("pack_cache", "off") for r in runs}),
            "load_ms": med(r["load_ms"] for r in runs),
            "page_cache_read_ms": med(r["page_cache_read_ms"] for r in runs),
            "image_decode_ms": med(r["image_decode_ms"] for r in runs),
            "preprocess_ms": med(x["image_preprocess_ms"] for x in fw),
            "vision_ms": med(x["vision_ms"] for x in fw),
            "resampler_ms": med(x["resampler_ms"] for x in fw),
            "prefill_ms": med(x["prefill_ms"] for x in fw), "prefill_tokens": pre_tok,
            "decode_ms": med(x["decode_ms"] for x in fw), "decode_tokens": fw[0]["decode_tokens"],
            "first_token_ms": med(x["first_token_ms"] + r["image_decode_ms"] for x, r in zip(fw, runs)),
            "caption_ms": med(r["caption_wall_ms"] for r in runs),
            "next_query": next_query_summary(runs),
            "visual_kv_computed": [x["visual_kv_computed"] for x in fw],
            "caption_visual_kv_computed": [r["caption"]["visual_kv_computed"] for r in runs],
            "images": n_img, "blocks": n_blocks(cfg),
            "peak_rss_mb": med(r["peak_rss_kb"] for r in runs) / 1024,
            "anon_after_load_mb": med(r["memory_after_load"]["anon_kb"] for r in runs) / 1024,
            "file_after_load_mb": med(r["memory_after_load"]["file_kb"] for r in runs) / 1024,
            "weight_file_mb": runs[0]["weight_file_bytes"] / 2**20,
            "parameters": runs[0]["model"]["parameters"],
            "vision_gflop": vis_f * n_img / 1e9, "resampler_gflop": res_f * n_img / 1e9,
            "prefill_gflop": pre_f / 1e9,
            "decode_weight_mb": wbytes / 2**20, "decode_kv_mb": kvbytes / 2**20,
        }
        # CPU time the process got ÷ (wall time × threads): below 100 % the run waited for a
        # core (other load), so its wall-time percentages understate the engine.
        row["cpu_share_first"] = med(r["first_token_cpu_ms"] / (r["first_token_wall_ms"] * t)
                                     for r in runs if r.get("first_token_wall_ms", -1) > 0)
        row["cpu_share_decode"] = med((r["fewshot_cpu_ms"] - r["first_token_cpu_ms"])
                                      / ((r["fewshot_wall_ms"] - r["first_token_wall_ms"]) * t)
                                      for r in runs if r.get("first_token_wall_ms", -1) > 0)
        row["run_loadavg"] = [r.get("loadavg") for r in runs]
        # Contention-robust efficiency of the compute-bound phase: the FLOPs of vision, resampler
        # and prefill per CPU-second the process actually ran, against one thread's peak.
        cpu_first = med(r["first_token_cpu_ms"] for r in runs if r.get("first_token_cpu_ms", -1) > 0)
        if cpu_first:
            work = row["vision_gflop"] + row["resampler_gflop"] + row["prefill_gflop"]
            row["first_phase_gflop_per_cpu_s"] = work / (cpu_first / 1e3)
            if ref:
                row["first_phase_pct_thread_peak"] = row["first_phase_gflop_per_cpu_s"] * 1e9 / ref["peak_flops_per_thread"]
        row["decode_tok_s"] = row["decode_tokens"] / row["decode_ms"] * 1e3
        row["prefill_tok_s"] = pre_tok / row["prefill_ms"] * 1e3
        # Primary yardstick: the reference limits; the same run's limits (measured beside
        # the other agents' load) are kept as *_run for context.
        for suffix, pk, tr in (("", ref and ref["peak_flops_per_thread"], ref and ref["triad"]),
                               ("_run", alt_peak, alt_triad)):
            if pk:
                for st in ("vision", "resampler", "prefill"):
                    row[f"{st}_pct_peak{suffix}"] = row[f"{st}_gflop"] * 1e9 / (row[f"{st}_ms"] / 1e3) / (pk * t)
                nq = row["next_query"]
                if nq and nq["vision_ms"]:
                    nq[f"vision_pct_peak{suffix}"] = vis_f / (nq["vision_ms"] / 1e3) / (pk * t)
            if tr and t in tr:
                row[f"decode_bound_tok_s{suffix}"] = tr[t] / (wbytes + kvbytes)
                row[f"decode_pct_bound{suffix}"] = row["decode_tok_s"] / row[f"decode_bound_tok_s{suffix}"]
        beside = decode_share_of_sweep(runs, wbytes + kvbytes)
        if beside is not None:
            row["decode_pct_sweep_after"] = beside
            # Per run, None where a run has no sweep.
            row["sweep_after_decode_gb_s"] = [
                v / 1e9 if (v := sweep_after_decode(r)) is not None else None for r in runs]
        rows.append(row)
    for path in sorted(glob.glob(os.path.join(results, "torch-*.jsonl"))):
        tr = pytorch_row(path)
        if tr:
            torch_rows.append(tr)
    load = open(os.path.join(results, "load.txt")).read().strip().splitlines() if os.path.exists(
        os.path.join(results, "load.txt")) else []
    return {"limits": {"peak_flops_per_thread": peak, "triad_bytes_per_s": triad,
                       "read_bytes_per_s": limits["read"]},
            "reference_limits": ref, "machine": describe_machine(run_context),
            "engine": rows, "pytorch": torch_rows, "load_average": load}


# ---------------------------------------------------------------------------- rendering
def f1(x, d=1):
    return "–" if x is None else f"{x:.{d}f}"


def pct(x):
    return "–" if x is None else f"{100 * x:.0f} %"


def both(r, key):
    return f"{pct(r.get(key))} [{pct(r.get(key + '_run'))}]"


def plots(data, docs, prefix):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eng, tor = [r for r in data["engine"] if not r.get("cached")], data["pytorch"]
    cfgs = [c for c in ("tinyllama", "flamingo3b") if any(r["config"] == c for r in eng)]
    stages = [("vision_ms", "vision"), ("resampler_ms", "resampler"), ("prefill_ms", "prefill"),
              ("decode_per_tok", "decode / token")]
    fig, axes = plt.subplots(1, max(1, len(cfgs)), figsize=(6.5 * max(1, len(cfgs)), 4.2), squeeze=False)
    for ax, c in zip(axes[0], cfgs):
        series = []
        for r in eng:
            if r["config"] == c and r["threads"] == 2:
                series.append((f"engine {r['dtype']}", [r["vision_ms"], r["resampler_ms"], r["prefill_ms"],
                                                        r["decode_ms"] / max(1, r["decode_tokens"])]))
        series.sort(key=lambda s: DTYPE_ORDER.index(s[0].split()[-1]))
        for r in tor:
            if r["config"] == c and r["threads"] == 2:
                series.append(("PyTorch f32 (WS folded)", [r["vision_ms"], r["resampler_ms"], r["prefill_ms"],
                                                            r["decode_ms"] / max(1, r["decode_tokens"])]))
                series.append(("PyTorch f32 (timm as is)", [r["vision_timm_ms"], None, None, None]))
        w = 0.8 / max(1, len(series))
        for i, (name, vals) in enumerate(series):
            xs = [j + i * w for j in range(len(stages))]
            ax.bar(xs, [v or 0 for v in vals], w, label=name)
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(stages))], [s[1] for s in stages])
        ax.set_yscale("log")
        ax.set_ylabel("ms (2 threads, median)")
        ax.set_title(CONFIG_NAMES[c], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(docs, f"{prefix}-stages.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, max(1, len(cfgs)), figsize=(6.5 * max(1, len(cfgs)), 4.0), squeeze=False)
    for ax, c in zip(axes[0], cfgs):
        for t, mk in ((1, "o"), (2, "s")):
            rs = sorted([r for r in eng if r["config"] == c and r["threads"] == t],
                        key=lambda r: DTYPE_ORDER.index(r["dtype"]))
            if not rs:
                continue
            xs = [DTYPE_ORDER.index(r["dtype"]) for r in rs]
            ax.plot(xs, [r["decode_tok_s"] for r in rs], mk + "-", label=f"engine, {t} thread(s)")
            ax.plot(xs, [r.get("decode_bound_tok_s") or 0 for r in rs], mk + "--", alpha=0.6,
                    label=f"bandwidth bound (triad, {t} thread(s))")
        for r in tor:
            if r["config"] == c:
                ax.plot([0], [r["decode_tok_s"]], "x", markersize=9, label=f"PyTorch f32, {r['threads']} thread(s)")
        ax.set_xticks(range(len(DTYPE_ORDER)), DTYPE_ORDER)
        ax.set_ylabel("decode tokens/s")
        ax.set_title(CONFIG_NAMES[c], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(docs, f"{prefix}-decode.png"), dpi=110)
    plt.close(fig)


def render(data):
    L = data["limits"]
    peak = L["peak_flops_per_thread"]
    out = []
    out.append("## Measured tables\n")
    I = data.get("reference_limits")
    if I and I.get("own"):
        out.append(f"Machine: {data.get('machine')}. Yardstick (percentages in the tables): this run's own limits "
                   f"({I['note']}), measured by machine_limits_bench at the start and end of the last "
                   "bench/run_e2e.sh invocation, the larger of the two; the bracketed figures are against the "
                   "smaller of the two (the same figure when the host held still): "
                   + "FMA peak " + f1(I["lower_peak"] / 1e9 if I.get("lower_peak") else None) + " GFLOP/s per thread, "
                   + "STREAM triad " + ", ".join(f"{f1(v / 1e9, 2)} GB/s at {t} thread(s)" for t, v in sorted(I.get("lower_triad", {}).items()))
                   + ". ")
    elif I:
        out.append(f"Yardstick (percentages in the tables): the reference limits of docs/machine-limits-reference.json "
                   f"({I['note']}): FMA peak {f1(I['peak_flops_per_thread'] / 1e9)} GFLOP/s per thread; "
                   + "STREAM triad " + ", ".join(f"{f1(v / 1e9, 2)} GB/s at {t} thread(s)" for t, v in sorted(I["triad"].items()))
                   + ". In brackets: against the limits machine_limits_bench measured beside the other load (at the "
                   "start and end of the last bench/run_e2e.sh invocation): ")
    out.append(f"FMA peak {f1(peak / 1e9 if peak else None)} GFLOP/s per thread; "
               + "STREAM triad " + ", ".join(f"{f1(v / 1e9, 2)} GB/s at {t} thread(s)" for t, v in sorted(L["triad_bytes_per_s"].items()))
               + ". Load average (1/5/15 min): " + "; ".join(data["load_average"]) + ".\n")
    if any("decode_pct_sweep_after" in r for r in data["engine"]):
        out.append("\"Of the sweep after it\": each run's decode bytes/s (decode tokens/s × the bytes a "
                   "token reads) over the read bandwidth e2e_bench measured right after that run's "
                   "decode (bench/read_sweep.h over a DRAM-sized array on as many threads, median "
                   "of 3 sweeps), the median over runs: the decode against the bandwidth of the "
                   "same seconds, where the limits above may come from another of the host's "
                   "moods.\n")
    for c in ("tinyllama", "flamingo3b"):
        rows = sorted([r for r in data["engine"] if r["config"] == c],
                      key=lambda r: (r["threads"], DTYPE_ORDER.index(r["dtype"]), r.get("cached", False)))
        if not rows:
            continue
        r0 = rows[0]
        out.append(f"### {CONFIG_NAMES[c]}\n")
        out.append(f"{r0['parameters'] / 1e9:.2f}B parameters; few-shot prompt of {r0['prefill_tokens']} tokens with "
                   f"{r0['images']} images (640×480 JPEG), {r0['decode_tokens']} decoded tokens, caption = one image + "
                   f"20 tokens; medians over the runs (" + runs_per_thread_count(rows)
                   + f"). Stage FLOPs: vision {f1(r0['vision_gflop'])} GFLOP "
                   f"({r0['images']} images), resampler + visual K/V {f1(r0['resampler_gflop'])} GFLOP, "
                   f"prefill {f1(r0['prefill_gflop'])} GFLOP.\n")
        out.append("| weights | thr | load ms (page-cache read) | decode+prep ms | vision ms (% peak) | resampler ms (% peak) "
                   "| prefill tok/s (% peak) | decode tok/s (% of bound) | TTFT ms | caption ms | visual K/V computed | peak RSS MB (weights MB) | CPU share to 1st token / decode |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            kv = "/".join(str(x) for x in sorted(set(r["visual_kv_computed"])))
            out.append(
                f"| {r['dtype']}{', pack cache' if r.get('cached') else ''} | {r['threads']} "
                f"| {f1(r['load_ms'], 0)} ({f1(r['page_cache_read_ms'], 0)}) "
                f"| {f1(r['image_decode_ms'])}+{f1(r['preprocess_ms'])} | {f1(r['vision_ms'], 0)} ({both(r, 'vision_pct_peak')}) "
                f"| {f1(r['resampler_ms'], 0)} ({both(r, 'resampler_pct_peak')}) "
                f"| {f1(r['prefill_tok_s'])} ({both(r, 'prefill_pct_peak')}) "
                f"| {f1(r['decode_tok_s'], 2)} ({both(r, 'decode_pct_bound')} of {f1(r.get('decode_bound_tok_s'), 2)}"
                f"{'; ' + pct(r['decode_pct_sweep_after']) + ' of the sweep after it' if 'decode_pct_sweep_after' in r else ''}) "
                f"| {f1(r['first_token_ms'], 0)} | {f1(r['caption_ms'], 0)} "
                f"| {kv} = {r['images']}×{r['blocks']} | {f1(r['peak_rss_mb'], 0)} ({f1(r['weight_file_mb'], 0)}) "
                f"| {pct(r.get('cpu_share_first'))} / {pct(r.get('cpu_share_decode'))} |")
        out.append("")
        trs = sorted([t for t in data["pytorch"] if t["config"] == c], key=lambda t: t["threads"])
        if trs:
            out.append("PyTorch 1.13 reference, f32 weights of the same model, same images, prompt ids and threads "
                       "(ratio = PyTorch time ÷ engine f32 time at the same thread count; OpenBLAS threads and "
                       "OpenMP wait policy as the reference set them, and its CPU time ÷ wall time over a run):\n")
            out.append("| thr | decode+prep ms | vision ms, timm as is | vision ms, WS folded | resampler ms | prefill tok/s "
                       "| decode tok/s | TTFT ms | caption ms | peak RSS MB | BLAS threads, wait policy, CPU share |")
            out.append("|---|---|---|---|---|---|---|---|---|---|---|")
            for t in trs:
                e = next((r for r in rows if r["threads"] == t["threads"] and r["dtype"] == "f32"), None)

                def ratio(tv, ev):
                    return f" (×{tv / ev:.1f})" if e and tv and ev else ""
                out.append(
                    f"| {t['threads']} | {f1(t['decode_preprocess_ms'])}{ratio(t['decode_preprocess_ms'], e and e['image_decode_ms'] + e['preprocess_ms'])} "
                    f"| {f1(t['vision_timm_ms'], 0)}{ratio(t['vision_timm_ms'], e and e['vision_ms'])} "
                    f"| {f1(t['vision_ms'], 0)}{ratio(t['vision_ms'], e and e['vision_ms'])} "
                    f"| {f1(t['resampler_ms'], 0)}{ratio(t['resampler_ms'], e and e['resampler_ms'])} "
                    f"| {f1(t['prefill_tokens'] / t['prefill_ms'] * 1e3)}{ratio(t['prefill_ms'], e and e['prefill_ms'])} "
                    f"| {f1(t['decode_tok_s'], 2)}{ratio(t['decode_ms'] / max(1, t['decode_tokens']), e and e['decode_ms'] / max(1, e['decode_tokens']))} "
                    f"| {f1(t['first_token_ms'], 0)}{ratio(t['first_token_ms'], e and e['first_token_ms'])} "
                    f"| {f1(t['caption_wall_ms'], 0)}{ratio(t['caption_wall_ms'], e and e['caption_ms'])} "
                    f"| {f1(t['peak_rss_kb'] / 1024, 0)} "
                    f"| {t.get('blas_threads') or '–'}, {t.get('omp_wait_policy') or '–'}, {f1(t.get('cpu_share'), 2)} |")
            out.append("")
        eff = [f"{r['dtype']} {r['threads']} thr: {f1(r['first_phase_gflop_per_cpu_s'])} GFLOP/CPU-s "
               f"({pct(r.get('first_phase_pct_thread_peak'))})" for r in rows if r.get("first_phase_gflop_per_cpu_s")]
        if eff:
            out.append("Compute efficiency per CPU-second actually received (vision + resampler + prefill FLOPs ÷ the "
                       "process's CPU time up to the first token; % of one thread's FMA peak in the yardstick above): " + "; ".join(eff) + ".\n")
        scal = []
        for dt in DTYPE_ORDER:
            a = next((r for r in rows if r["dtype"] == dt and r["threads"] == 1), None)
            b = next((r for r in rows if r["dtype"] == dt and r["threads"] == 2), None)
            if a and b:
                scal.append(f"{dt}: vision ×{a['vision_ms'] / b['vision_ms']:.2f}, prefill ×{a['prefill_ms'] / b['prefill_ms']:.2f}, "
                            f"decode ×{b['decode_tok_s'] / a['decode_tok_s']:.2f}")
        if scal:
            out.append("2 threads vs 1: " + "; ".join(scal) + ".\n")
        nq = [f"{r['dtype']} {r['threads']} thr: prefill {r['next_query']['ran']} tokens "
              f"({r['next_query']['reused']} kept) in {f1(r['next_query']['prefill_ms'], 0)} ms against "
              f"{f1(r['next_query']['first_prefill_ms'], 0)} ms, first token {f1(r['next_query']['first_token_ms'], 0)} "
              f"against {f1(r['next_query']['first_first_token_ms'], 0)} ms, its image's vision "
              f"{f1(r['next_query'].get('vision_ms'), 0)} ms ({pct(r['next_query'].get('vision_pct_peak'))} of peak) against "
              f"{f1(r['next_query'].get('first_vision_ms'), 0)} ms an image in the first request"
              for r in rows if r.get("next_query")]
        if nq:
            out.append("Next query of a few-shot loop (the same session, prompt and example images, a new last "
                       "image: its vision and resampler run, and the prompt from that image on, at least its last 8 tokens), against the "
                       "first request (whose images share the page faults of the encoder's workspace; the next query's image "
                       "finds it in place): " + "; ".join(nq) + ".\n")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--reference-limits", default=os.path.join(os.path.dirname(HERE), "docs", "machine-limits-reference.json"))
    # Another machine's tables go beside the main ones (--name performance-<machine>).
    ap.add_argument("--name", default="performance")
    args = ap.parse_args()
    data = collect(args.results, args.models, args.reference_limits)
    with open(os.path.join(args.docs, args.name + ".json"), "w") as f:
        json.dump(data, f, indent=1)
    plots(data, args.docs, args.name)
    tables = render(data)
    md = os.path.join(args.docs, args.name + ".md")
    begin, end = "<!-- e2e tables: generated by bench/e2e_report.py -->", "<!-- end of generated tables -->"
    text = open(md).read() if os.path.exists(md) else f"# Performance\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    a, b = text.index(begin) + len(begin), text.index(end)
    text = text[:a] + "\n" + tables + "\n" + text[b:]
    with open(md, "w") as f:
        f.write(text)
    print(f"wrote {md}, {args.name}.json and the plots")


if __name__ == "__main__":
    main()
