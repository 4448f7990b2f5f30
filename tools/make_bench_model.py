#!/usr/bin/env python3
"""Writes full-size model directories with random weights for the end-to-end benchmark
(docs/performance.md): one pass generates every tensor once and stores it in each requested
weight type, so the f32, bf16, q8_0 and q4_0 directories hold the same model.

    /usr/bin/python3 tools/make_bench_model.py --config tinyllama --out build/bench-models
    /usr/bin/python3 tools/make_bench_model.py --config flamingo3b --dtypes f32 q4_0 --out ...

Configurations (issue 6):
  flamingo3b  NFNet-F6 at 320x320 (10x10 = 100 positions, tap stage 3, 1536 channels),
              resampler depth 6 / width 1536 / 64 latents, LLaMA-style LM of 24 layers,
              width 2048, 16 heads, SwiGLU MLP 8192 (4x), a gated block before every layer.
  tinyllama   TinyLlama-1.1B shape (22 layers, width 2048, 32 heads, 4 KV heads, MLP 5632,
              vocabulary 32000 + 3 added tokens), gated blocks every 4th layer
              (OpenFlamingo placement), NFNet-F0 at 256x256.
Resampler and gated blocks use OpenFlamingo's sizes (8 heads of 64, FFN 4x).

Weights: linear and conv weights N(0, 1/fan_in), embeddings and latents N(0, 1), norm weights
1, biases 0, gates 0.5, NFNet skip gains 1: every branch outputs O(1) values and the residual
streams grow only to a few units over all layers, so no stage runs on denormals, infinities or
saturated softmaxes. Each tensor is a window (at a random offset) of one pool of 2^26 random
values, scaled to its std: statistically random weights at the cost of the disk writes. Convolutions are written standardised (vision.ws_folded)
in every type, as the converter writes quantised models. Quantised types follow the
converter's policy (tools/convert/quantize.py).

The tokenizer is a BPE sentencepiece model with 32000 pieces (byte fallback) trained here on
generated pseudo-word text: its pieces are meaningless but its size and the tokenisation work
are those of a LLaMA tokenizer. Files are streamed (one tensor in memory at a time).
"""

import argparse
import io
import json
import math
import os
import random
import sys
import time

import numpy as np

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)

from convert import quantize as qz  # noqa: E402

DTYPES = ("f32", "bf16", "q8_0", "q4_0")
SP_VOCAB = 32000
POOL = 1 << 26  # ≥ the largest tensor (the 32003 × 2048 embedding table)


def nfnet(depths, image_size):
    return {"type": "nfnet", "image_size": image_size, "stem_channels": [16, 32, 64, 128],
            "depths": depths, "widths": [256, 512, 1536, 1536], "strides": [1, 2, 2, 2],
            "bottleneck_ratio": 0.5, "group_width": 128, "se_ratio": 0.5, "alpha": 0.2,
            "activation": "gelu", "gamma": 1.7015043497085571, "ws_eps": 1e-5,
            "final_conv_channels": 0, "tap": "stage3", "ws_folded": True}


def make_config(name):
    v0 = SP_VOCAB
    base = {
        "format_version": 1,
        "resampler": {"dim": 1536, "depth": 6, "heads": 8, "head_dim": 64, "num_latents": 64,
                      "ff_mult": 4, "ff_activation": "gelu", "qk_layer_norm": False,
                      "max_frames": 0, "max_media": 0, "norm_eps": 1e-5},
        "xattn": {"every": 1, "placement": "openflamingo", "heads": 8, "head_dim": 64,
                  "norm": "layernorm", "ffn": "gelu", "ff_dim": 8192, "qk_norm": False,
                  "gate": "scalar", "reset_at_eos": False, "norm_eps": 1e-5},
        "tokens": {"bos": 1, "eos": 2, "pad": v0 + 2, "image": v0 + 1, "endofchunk": v0,
                   "add_bos": True,
                   "special": {"<unk>": 0, "<s>": 1, "</s>": 2, "<|endofchunk|>": v0,
                               "<image>": v0 + 1, "<PAD>": v0 + 2}},
        "preprocess": {"resize": "shortest_crop", "crop_pct": 1.0, "mean": [0.485, 0.456, 0.406],
                       "std": [0.229, 0.224, 0.225], "background": [255, 255, 255]},
        "prompt": {"caption": "<image>Output:"},
    }
    lm = {"type": "llama", "vocab_size": v0 + 3, "max_seq_len": 2048, "rope_theta": 10000.0,
          "rope_style": "rotate_half", "rms_norm_eps": 1e-5, "tie_embeddings": False}
    if name == "flamingo3b":
        base["vision"] = nfnet([7, 14, 42, 21], 320)
        lm.update(dim=2048, layers=24, heads=16, kv_heads=16, head_dim=128, ffn_dim=8192)
    elif name == "tinyllama":
        base["vision"] = nfnet([1, 2, 6, 3], 256)
        base["xattn"]["every"] = 4
        lm.update(dim=2048, layers=22, heads=32, kv_heads=4, head_dim=64, ffn_dim=5632)
    else:
        raise SystemExit(f"unknown config {name!r}")
    base["lm"] = lm
    order = ["format_version", "vision", "resampler", "xattn", "lm", "tokens", "preprocess", "prompt"]
    return {k: base[k] for k in order}


# -- tensor list (names and shapes as docs/model-format.md, ws_folded) ----------------------
def tensor_specs(cfg):
    """[(name, shape, init)], init = ("normal", std) | ("const", value)."""
    out = []
    v = cfg["vision"]

    def conv(prefix, o, i, k, std=None):
        out.append((prefix + ".weight", [o, i, k, k], ("normal", std or 1 / math.sqrt(i * k * k))))
        out.append((prefix + ".bias", [o], ("const", 0.0)))

    stem = v["stem_channels"]
    c_in = 3
    for j, c in enumerate(stem):
        conv(f"vision.stem.conv{j + 1}", c, c_in, 3)
        c_in = c
    gw = v["group_width"]
    for s, (depth, width) in enumerate(zip(v["depths"], v["widths"])):
        for b in range(depth):
            p = f"vision.stages.{s}.{b}."
            mid = int(width * v["bottleneck_ratio"])
            se = int(width * v["se_ratio"])
            if b == 0 and (c_in != width or s > 0):
                conv(p + "downsample.conv", width, c_in, 1)
            conv(p + "conv1", mid, c_in, 1)
            conv(p + "conv2", mid, gw, 3)
            conv(p + "conv2b", mid, gw, 3)
            conv(p + "conv3", width, mid, 1)
            conv(p + "attn_last.fc1", se, width, 1)
            conv(p + "attn_last.fc2", width, se, 1)
            out.append((p + "skipinit_gain", [], ("const", 1.0)))
            c_in = width

    r = cfg["resampler"]
    D, inner = r["dim"], r["heads"] * r["head_dim"]
    out.append(("resampler.latents", [r["num_latents"], D], ("normal", 1.0)))
    for i in range(r["depth"]):
        p = f"resampler.layers.{i}."
        for n in ("norm_media", "norm_latents", "ff_norm"):
            out.append((p + n + ".weight", [D], ("const", 1.0)))
            out.append((p + n + ".bias", [D], ("const", 0.0)))
        for n in ("q_proj", "k_proj", "v_proj"):
            out.append((p + f"attn.{n}.weight", [inner, D], ("normal", 1 / math.sqrt(D))))
        out.append((p + "attn.o_proj.weight", [D, inner], ("normal", 1 / math.sqrt(inner))))
        ff = r["ff_mult"] * D
        out.append((p + "mlp.up_proj.weight", [ff, D], ("normal", 1 / math.sqrt(D))))
        out.append((p + "mlp.down_proj.weight", [D, ff], ("normal", 1 / math.sqrt(ff))))
    out.append(("resampler.norm.weight", [D], ("const", 1.0)))
    out.append(("resampler.norm.bias", [D], ("const", 0.0)))

    lm, x = cfg["lm"], cfg["xattn"]
    Dl, L = lm["dim"], lm["layers"]
    blocks = [i for i in range(L) if (i + 1) % x["every"] == 0]
    xi = x["heads"] * x["head_dim"]
    for j, _ in enumerate(blocks):
        p = f"xattn.{j}."
        out.append((p + "attn_gate", [1], ("const", 0.5)))
        out.append((p + "ff_gate", [1], ("const", 0.5)))
        for n in ("attn_norm", "ff_norm"):
            out.append((p + n + ".weight", [Dl], ("const", 1.0)))
            out.append((p + n + ".bias", [Dl], ("const", 0.0)))
        out.append((p + "attn.q_proj.weight", [xi, Dl], ("normal", 1 / math.sqrt(Dl))))
        out.append((p + "attn.k_proj.weight", [xi, D], ("normal", 1 / math.sqrt(D))))
        out.append((p + "attn.v_proj.weight", [xi, D], ("normal", 1 / math.sqrt(D))))
        out.append((p + "attn.o_proj.weight", [Dl, xi], ("normal", 1 / math.sqrt(xi))))
        out.append((p + "mlp.up_proj.weight", [x["ff_dim"], Dl], ("normal", 1 / math.sqrt(Dl))))
        out.append((p + "mlp.down_proj.weight", [Dl, x["ff_dim"]], ("normal", 1 / math.sqrt(x["ff_dim"]))))

    V, hd = lm["vocab_size"], lm["head_dim"]
    out.append(("lm.embed_tokens.weight", [V, Dl], ("normal", 1.0)))
    for i in range(L):
        p = f"lm.layers.{i}."
        out.append((p + "input_layernorm.weight", [Dl], ("const", 1.0)))
        out.append((p + "post_attention_layernorm.weight", [Dl], ("const", 1.0)))
        out.append((p + "self_attn.q_proj.weight", [lm["heads"] * hd, Dl], ("normal", 1 / math.sqrt(Dl))))
        out.append((p + "self_attn.k_proj.weight", [lm["kv_heads"] * hd, Dl], ("normal", 1 / math.sqrt(Dl))))
        out.append((p + "self_attn.v_proj.weight", [lm["kv_heads"] * hd, Dl], ("normal", 1 / math.sqrt(Dl))))
        out.append((p + "self_attn.o_proj.weight", [Dl, lm["heads"] * hd], ("normal", 1 / math.sqrt(lm["heads"] * hd))))
        out.append((p + "mlp.gate_proj.weight", [lm["ffn_dim"], Dl], ("normal", 1 / math.sqrt(Dl))))
        out.append((p + "mlp.up_proj.weight", [lm["ffn_dim"], Dl], ("normal", 1 / math.sqrt(Dl))))
        out.append((p + "mlp.down_proj.weight", [Dl, lm["ffn_dim"]], ("normal", 1 / math.sqrt(lm["ffn_dim"]))))
    out.append(("lm.norm.weight", [Dl], ("const", 1.0)))
    out.append(("lm.lm_head.weight", [V, Dl], ("normal", 1 / math.sqrt(Dl))))
    return out


# -- storage --------------------------------------------------------------------------------
_ELEM = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1}


def stored(name, shape, dtype):
    """[(stored name, safetensors dtype, stored shape)] of one tensor in a model of `dtype`."""
    kind = qz.storage_type(name, shape, dtype)
    if kind in qz.QTYPES:
        n, k = shape[0], int(np.prod(shape[1:]))
        codes = ("I8", [n, k]) if kind == "q8_0" else ("U8", [n, k // 2])
        return [(name, codes[0], codes[1], kind), (name + "_scale", "F16", [n, k // qz.BLOCK], kind)]
    return [(name, {"f32": "F32", "f16": "F16", "bf16": "BF16"}[kind], list(shape), kind)]


def to_bf16_bits(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def encode(x, entries):
    """{stored name: bytes} of float32 array x for the entries stored() gave."""
    (name, st, _, kind) = entries[0]
    if kind in qz.QTYPES:
        q, s = qz.quantize(kind, x.reshape(x.shape[0], -1), name)
        return {name: q.tobytes(), name + "_scale": s.tobytes()}
    if st == "F32":
        return {name: np.ascontiguousarray(x, np.float32).tobytes()}
    if st == "F16":
        return {name: x.astype(np.float16).tobytes()}
    return {name: to_bf16_bits(x).tobytes()}


class Writer:
    """A safetensors file written tensor by tensor: the header (offsets known in advance),
    then the data in header order (by decreasing element size, so every tensor is aligned)."""

    def __init__(self, path, layout, metadata):
        self.order = sorted(layout, key=lambda e: (-_ELEM[e[1]], e[0]))
        header, off = {"__metadata__": metadata}, 0
        self.offsets = {}
        for name, st, shape in self.order:
            size = int(np.prod(shape)) * _ELEM[st] if shape else _ELEM[st]
            header[name] = {"dtype": st, "shape": shape, "data_offsets": [off, off + size]}
            self.offsets[name] = (off, size)
            off += size
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        self.base = 8 + len(text)
        self.f = open(path, "wb")
        self.f.write(len(text).to_bytes(8, "little"))
        self.f.write(text)
        self.f.truncate(self.base + off)
        self.total = off

    def put(self, name, data):
        off, size = self.offsets[name]
        if len(data) != size:
            raise RuntimeError(f"{name}: {len(data)} bytes, header says {size}")
        self.f.seek(self.base + off)
        self.f.write(data)

    def close(self):
        self.f.close()


# -- tokenizer ------------------------------------------------------------------------------
def train_tokenizer(path, seed=7):
    import sentencepiece as spm

    rng = random.Random(seed)
    cons, vow = "bcdfghjklmnprstvwz", "aeiou"
    sylls = [c + v for c in cons for v in vow] + [c + v + d for c in cons for v in vow for d in "nrsltm"]
    words = ["".join(rng.choice(sylls) for _ in range(rng.choice([1, 2, 2, 3, 3, 4]))) for _ in range(60000)]
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(words))]
    corpus = [" ".join(rng.choices(words, weights, k=rng.randint(5, 20))) for _ in range(300000)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=SP_VOCAB, model_type="bpe",
        character_coverage=1.0, num_threads=2, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, minloglevel=2, input_sentence_size=len(corpus),
        shuffle_input_sentence=False)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, choices=("flamingo3b", "tinyllama"))
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    ap.add_argument("--out", required=True, help="parent directory: writes <out>/<config>-<dtype>/")
    ap.add_argument("--tokenizer", help="reuse this sentencepiece model instead of training one")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    cfg = make_config(args.config)
    specs = tensor_specs(cfg)
    os.makedirs(args.out, exist_ok=True)
    tok = args.tokenizer or os.path.join(args.out, "bench-tokenizer-32k.model")
    if not os.path.exists(tok):
        t0 = time.time()
        train_tokenizer(tok)
        print(f"tokenizer: {tok} ({time.time() - t0:.0f} s)", file=sys.stderr)
    writers, dirs = {}, {}
    for dt in args.dtypes:
        d = os.path.join(args.out, f"{args.config}-{dt}")
        os.makedirs(d, exist_ok=True)
        c = dict(cfg, weights={"dtype": dt},
                 provenance={"generator": "tools/make_bench_model.py", "config": args.config,
                             "seed": args.seed, "weights": "random (see the tool's docstring)"})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=2)
            f.write("\n")
        with open(tok, "rb") as src, open(os.path.join(d, "tokenizer.model"), "wb") as dst:
            dst.write(src.read())
        layout = [(n, st, shp) for name, shape, _ in specs for n, st, shp, _ in stored(name, shape, dt)]
        writers[dt] = Writer(os.path.join(d, "model.safetensors"), layout, {"format": "pt"})
        dirs[dt] = d
    # Every tensor is a window of one pool of N(0, 1) values at a random block-aligned offset,
    # times its std: the pool is generated and quantised once, so writing 3B parameters in
    # four types costs little more than the disk writes (block scales scale with the std).
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    pool = rng.standard_normal(POOL, dtype=np.float32)
    qpool = {}
    for dt in args.dtypes:
        if dt in qz.QTYPES:
            q, sc = qz.quantize(dt, pool.reshape(1, -1), "pool")
            qpool[dt] = (q.reshape(-1), sc.reshape(-1).view(np.float16).astype(np.float32))
    print(f"pool of {POOL / 1e6:.0f}M values ready in {time.time() - t0:.0f} s", file=sys.stderr)
    params = 0
    for i, (name, shape, (kind, val)) in enumerate(specs):
        n = int(np.prod(shape)) if shape else 1
        params += n
        if kind == "const":
            x, off = np.full(shape, val, dtype=np.float32), None
        else:
            off = int(rng.integers(0, (POOL - n) // qz.BLOCK + 1)) * qz.BLOCK
            x = (pool[off:off + n] * np.float32(val)).reshape(shape)
        for dt, w in writers.items():
            entries = stored(name, shape, dt)
            qkind = entries[0][3]
            if qkind in qz.QTYPES and off is not None and qkind in qpool:
                codes, d = qpool[qkind]
                per = 1 if qkind == "q8_0" else 2
                w.put(name, codes[off // per:(off + n) // per].tobytes())
                scales = (d[off // qz.BLOCK:(off + n) // qz.BLOCK] * np.float32(val)).astype(np.float16)
                w.put(name + "_scale", scales.tobytes())
            else:
                for k, data in encode(x, entries).items():
                    w.put(k, data)
        if i % 50 == 0:
            print(f"\r{i}/{len(specs)} tensors, {params / 1e9:.2f}B parameters, {time.time() - t0:.0f} s",
                  end="", file=sys.stderr, flush=True)
    for dt, w in writers.items():
        w.close()
        print(f"\n{dirs[dt]}: {w.total / 1e9:.2f} GB", file=sys.stderr)
    print(f"{params / 1e9:.3f}B parameters in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
