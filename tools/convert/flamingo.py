"""OpenFlamingo- and IDEFICS-layout resampler / gated cross-attention weights → `resampler.*`,
`xattn.{j}.*` and the config's resampler and xattn sections.

Inferred from shapes: resampler dim, depth, latents, inner size, FFN multiplier, frame and
media-time embeddings, q/k norms (and so the IDEFICS head_dim); which LM layers have gated
blocks (OpenFlamingo: from the layer indices), the xattn FFN size, the gate shape. From flags:
heads × head_dim where the shapes only give the product (OpenFlamingo default 8 × 64), FFN
activations (source defaults: OpenFlamingo GELU, IDEFICS ReLU / SwiGLU), the IDEFICS interval
when the block count leaves it ambiguous.
"""

import re

import torch

from .checkpoint_io import ConvertError, require

LM_LAYER_PATHS = ("model.layers", "transformer.blocks", "gpt_neox.layers")


def _split_kv(t, name, where):
    if t.shape[0] % 2:
        raise ConvertError(f"{where}: {name} has an odd number of rows ({t.shape[0]}); "
                           "a fused to_kv holds K rows then V rows")
    half = t.shape[0] // 2
    return t[:half].clone(), t[half:].clone()


def _heads(inner, heads, head_dim, what, where):
    if heads is None and head_dim is None:
        raise ConvertError(f"{where}: {what} heads/head_dim unknown")
    if heads is None:
        heads = inner // head_dim
    if head_dim is None:
        head_dim = inner // heads
    if heads * head_dim != inner:
        raise ConvertError(f"{where}: {what} projections have {inner} features, but heads {heads} × "
                           f"head_dim {head_dim} = {heads * head_dim}; fix --{what}-heads/--{what}-head-dim")
    return heads, head_dim


# -- resampler ------------------------------------------------------------------------------
def convert_openflamingo_resampler(sd, where, heads=None, head_dim=None, ff_activation="gelu"):
    """sd: OpenFlamingo checkpoint with keys perceiver.*. Returns (tensors, resampler cfg)."""
    p = "perceiver."
    lat = require(sd, p + "latents", [None, None], where)
    n, d = int(lat.shape[0]), int(lat.shape[1])
    out = {"resampler.latents": lat}
    used = {p + "latents"}
    depth = 0
    while f"{p}layers.{depth}.0.to_q.weight" in sd:
        depth += 1
    if depth == 0:
        raise ConvertError(f"{where}: no {p}layers.0.0.to_q.weight: not an OpenFlamingo resampler")
    inner = int(sd[f"{p}layers.0.0.to_q.weight"].shape[0])
    if heads is None and head_dim is None:
        heads = 8  # open_flamingo's PerceiverResampler default (8 × 64)
    heads, head_dim = _heads(inner, heads, head_dim, "resampler", where)
    ff = None
    for i in range(depth):
        s, o = f"{p}layers.{i}.", f"resampler.layers.{i}."
        for src, dst in (("0.norm_media", "norm_media"), ("0.norm_latents", "norm_latents"),
                         ("1.0", "ff_norm")):
            for leaf in ("weight", "bias"):
                out[f"{o}{dst}.{leaf}"] = require(sd, f"{s}{src}.{leaf}", [d], where)
                used.add(f"{s}{src}.{leaf}")
        out[o + "attn.q_proj.weight"] = require(sd, s + "0.to_q.weight", [inner, d], where)
        kv = require(sd, s + "0.to_kv.weight", [2 * inner, d], where)
        out[o + "attn.k_proj.weight"], out[o + "attn.v_proj.weight"] = _split_kv(kv, s + "0.to_kv.weight", where)
        out[o + "attn.o_proj.weight"] = require(sd, s + "0.to_out.weight", [d, inner], where)
        up = require(sd, s + "1.1.weight", [None, d], where)
        if ff is None:
            ff = int(up.shape[0])
        out[o + "mlp.up_proj.weight"] = require(sd, s + "1.1.weight", [ff, d], where)
        out[o + "mlp.down_proj.weight"] = require(sd, s + "1.3.weight", [d, ff], where)
        used.update(s + k for k in ("0.to_q.weight", "0.to_kv.weight", "0.to_out.weight",
                                    "1.1.weight", "1.3.weight"))
    for leaf in ("weight", "bias"):
        out[f"resampler.norm.{leaf}"] = require(sd, f"{p}norm.{leaf}", [d], where)
        used.add(f"{p}norm.{leaf}")
    max_frames = max_media = 0
    if p + "frame_embs" in sd:
        fe = require(sd, p + "frame_embs", [None, d], where)
        max_frames = int(fe.shape[0])
        out["resampler.frame_embs"] = fe
        used.add(p + "frame_embs")
    if p + "media_time_embs" in sd:
        te = sd[p + "media_time_embs"]
        if te.dim() == 3:
            te = require(sd, p + "media_time_embs", [None, 1, d], where)[:, 0, :]
        else:
            te = require(sd, p + "media_time_embs", [None, d], where)
        max_media = int(te.shape[0])
        out["resampler.media_time_embs"] = te.contiguous()
        used.add(p + "media_time_embs")
    extra = sorted(k for k in sd if k.startswith(p) and k not in used)
    if extra:
        raise ConvertError(f"{where}: unexpected resampler tensors {extra[:6]}")
    if ff % d:
        raise ConvertError(f"{where}: resampler FFN size {ff} is not a multiple of dim {d}")
    cfg = {"dim": d, "depth": depth, "heads": heads, "head_dim": head_dim, "num_latents": n,
           "ff_mult": ff // d, "ff_activation": ff_activation, "qk_layer_norm": False,
           "max_frames": max_frames, "max_media": max_media, "norm_eps": 1e-5}
    return out, cfg


def convert_idefics_resampler(sd, where, heads=None, head_dim=None, ff_activation="relu"):
    p = "model.perceiver_resampler."
    lat = require(sd, p + "latents", [None, None], where)
    n, d = int(lat.shape[0]), int(lat.shape[1])
    out = {"resampler.latents": lat}
    depth = 0
    while f"{p}blocks.{depth}.0.q_proj.weight" in sd:
        depth += 1
    if depth == 0:
        raise ConvertError(f"{where}: no {p}blocks.0.0.q_proj.weight: not an IDEFICS resampler")
    inner = int(sd[f"{p}blocks.0.0.q_proj.weight"].shape[0])
    qk = f"{p}blocks.0.0.q_layer_norm.weight" in sd
    if qk:
        head_dim_seen = int(sd[f"{p}blocks.0.0.q_layer_norm.weight"].shape[0])
        if head_dim is not None and head_dim != head_dim_seen:
            raise ConvertError(f"{where}: q_layer_norm has {head_dim_seen} features but "
                               f"--resampler-head-dim is {head_dim}")
        head_dim = head_dim_seen
        heads = None
    elif heads is None and head_dim is None:
        heads, head_dim = 16, None  # IDEFICS' resampler_n_heads default
    heads, head_dim = _heads(inner, heads, head_dim, "resampler", where)
    ff = None
    for i in range(depth):
        s, o = f"{p}blocks.{i}.", f"resampler.layers.{i}."
        pairs = [("0.context_layer_norm", "norm_media", d), ("0.latents_layer_norm", "norm_latents", d),
                 ("1.ln", "ff_norm", d)]
        if qk:
            pairs += [("0.q_layer_norm", "attn.q_norm", head_dim), ("0.k_layer_norm", "attn.k_norm", head_dim)]
        for src, dst, size in pairs:
            for leaf in ("weight", "bias"):
                out[f"{o}{dst}.{leaf}"] = require(sd, f"{s}{src}.{leaf}", [size], where)
        for src, dst in (("q_proj", "q_proj"), ("k_proj", "k_proj"), ("v_proj", "v_proj")):
            out[f"{o}attn.{dst}.weight"] = require(sd, f"{s}0.{src}.weight", [inner, d], where)
        out[o + "attn.o_proj.weight"] = require(sd, s + "0.output_proj.weight", [d, inner], where)
        up = require(sd, s + "1.fc.weight", [None, d], where)
        ff = ff or int(up.shape[0])
        out[o + "mlp.up_proj.weight"] = require(sd, s + "1.fc.weight", [ff, d], where)
        out[o + "mlp.down_proj.weight"] = require(sd, s + "1.c_proj.weight", [d, ff], where)
    for leaf in ("weight", "bias"):
        out[f"resampler.norm.{leaf}"] = require(sd, f"{p}layer_norm.{leaf}", [d], where)
    if ff % d:
        raise ConvertError(f"{where}: resampler FFN size {ff} is not a multiple of dim {d}")
    cfg = {"dim": d, "depth": depth, "heads": heads, "head_dim": head_dim, "num_latents": n,
           "ff_mult": ff // d, "ff_activation": ff_activation, "qk_layer_norm": qk,
           "max_frames": 0, "max_media": 0, "norm_eps": 1e-5}
    return out, cfg


# -- gated cross-attention blocks -----------------------------------------------------------
_OF_BLOCK_RE = re.compile(r"^lang_encoder\.(.+)\.(\d+)\.gated_cross_attn_layer\.(.+)$")
_OF_ALIAS_RE = re.compile(r"^lang_encoder\.gated_cross_attn_layers\.(\d+)\.(.+)$")


def openflamingo_blocks(sd, where):
    """{lm_layer_index: {leaf: tensor}} with the alias prefix folded in (must agree)."""
    blocks, paths = {}, set()
    for k, v in sd.items():
        m = _OF_BLOCK_RE.match(k)
        if m:
            paths.add(m.group(1))
            blocks.setdefault(int(m.group(2)), {})[m.group(3)] = v
    if len(paths) > 1:
        raise ConvertError(f"{where}: gated blocks under several layer paths {sorted(paths)}")
    if paths and next(iter(paths)) != "model.layers":
        raise ConvertError(f"{where}: gated blocks live under lang_encoder.{next(iter(paths))}: "
                           "that LM is not LLaMA (MPT/GPT-NeoX are not supported by the engine)")
    for k, v in sd.items():
        m = _OF_ALIAS_RE.match(k)
        if m:
            i, leaf = int(m.group(1)), m.group(2)
            have = blocks.setdefault(i, {})
            if leaf in have and not torch.equal(have[leaf], v):
                raise ConvertError(f"{where}: {k} differs from its alias "
                                   f"lang_encoder.model.layers.{i}.gated_cross_attn_layer.{leaf}")
            have.setdefault(leaf, v)
    return blocks


def infer_openflamingo_every(layer_indices, n_layers, where):
    idx = sorted(layer_indices)
    if not idx:
        raise ConvertError(f"{where}: no gated cross-attention blocks found")
    every = idx[0] + 1
    want = [i for i in range(n_layers) if (i + 1) % every == 0]
    if idx != want:
        raise ConvertError(f"{where}: gated blocks before LM layers {idx} follow neither "
                           f"(i+1) % N == 0 for N = {every} (expected {want}) nor any other N")
    return every


def convert_openflamingo_blocks(sd, where, lm_dim, dv, n_layers, heads=None, head_dim=None, ffn="gelu"):
    blocks = openflamingo_blocks(sd, where)
    every = infer_openflamingo_every(blocks.keys(), n_layers, where)
    out = {}
    inner = ff = None
    for j, i in enumerate(sorted(blocks)):
        b, o, w = blocks[i], f"xattn.{j}.", f"{where} (block before LM layer {i})"
        q = require(b, "attn.to_q.weight", [None, lm_dim], w)
        inner = inner or int(q.shape[0])
        out[o + "attn.q_proj.weight"] = require(b, "attn.to_q.weight", [inner, lm_dim], w)
        kv = require(b, "attn.to_kv.weight", [2 * inner, dv], w)
        out[o + "attn.k_proj.weight"], out[o + "attn.v_proj.weight"] = _split_kv(kv, "attn.to_kv.weight", w)
        out[o + "attn.o_proj.weight"] = require(b, "attn.to_out.weight", [lm_dim, inner], w)
        for src, dst in (("attn.norm", "attn_norm"), ("ff.0", "ff_norm")):
            for leaf in ("weight", "bias"):
                out[f"{o}{dst}.{leaf}"] = require(b, f"{src}.{leaf}", [lm_dim], w)
        up = require(b, "ff.1.weight", [None, lm_dim], w)
        ff = ff or int(up.shape[0])
        out[o + "mlp.up_proj.weight"] = require(b, "ff.1.weight", [ff, lm_dim], w)
        out[o + "mlp.down_proj.weight"] = require(b, "ff.3.weight", [lm_dim, ff], w)
        out[o + "attn_gate"] = require(b, "attn_gate", [1], w)
        out[o + "ff_gate"] = require(b, "ff_gate", [1], w)
        known = {"attn.to_q.weight", "attn.to_kv.weight", "attn.to_out.weight", "attn.norm.weight",
                 "attn.norm.bias", "ff.0.weight", "ff.0.bias", "ff.1.weight", "ff.3.weight",
                 "attn_gate", "ff_gate"}
        extra = sorted(set(b) - known)
        if extra:
            raise ConvertError(f"{w}: unexpected tensors {extra}")
    if heads is None and head_dim is None:
        heads = 8  # open_flamingo's GatedCrossAttentionBlock default (8 × 64)
    heads, head_dim = _heads(inner, heads, head_dim, "xattn", where)
    cfg = {"every": every, "placement": "openflamingo", "heads": heads, "head_dim": head_dim,
           "norm": "layernorm", "ffn": ffn, "ff_dim": ff, "qk_norm": False, "gate": "scalar",
           "reset_at_eos": False, "norm_eps": 1e-5}
    return out, cfg


def convert_idefics_blocks(sd, where, lm_dim, dv, n_layers, lm_heads, every=None,
                           rms_norm_eps=1e-6, reset_at_eos=True):
    p = "model.gated_cross_attn_layers."
    idx = sorted({int(k[len(p):].split(".")[0]) for k in sd if k.startswith(p)})
    if not idx:
        raise ConvertError(f"{where}: no {p}* tensors")
    if idx != list(range(len(idx))):
        raise ConvertError(f"{where}: gated block indices {idx} are not 0..n-1")
    nb = len(idx)
    candidates = [n for n in range(1, n_layers + 1) if -(-n_layers // n) == nb]
    if every is None:
        if len(candidates) != 1:
            raise ConvertError(f"{where}: {nb} blocks over {n_layers} LM layers fit cross_layer_interval "
                               f"{candidates}; pass --xattn-every (IDEFICS' cross_layer_interval)")
        every = candidates[0]
    elif every not in candidates:
        raise ConvertError(f"{where}: --xattn-every {every} gives {-(-n_layers // every)} blocks, "
                           f"the checkpoint has {nb}")
    out = {}
    qk = f"{p}0.cross_attn.q_layer_norm.weight" in sd
    inner = int(require(sd, f"{p}0.cross_attn.q_proj.weight", [None, lm_dim], where).shape[0])
    if inner != lm_dim:
        raise ConvertError(f"{where}: IDEFICS cross-attention q_proj has {inner} outputs, LM dim is {lm_dim}")
    head_dim = lm_dim // lm_heads
    if qk:
        seen = int(sd[f"{p}0.cross_attn.q_layer_norm.weight"].shape[0])
        if seen != head_dim:
            raise ConvertError(f"{where}: q_layer_norm has {seen} features, LM head_dim is {head_dim}")
    ff = int(require(sd, f"{p}0.mlp.up_proj.weight", [None, lm_dim], where).shape[0])
    gate_shape = None
    for j in idx:
        s, o = f"{p}{j}.", f"xattn.{j}."
        out[o + "attn.q_proj.weight"] = require(sd, s + "cross_attn.q_proj.weight", [lm_dim, lm_dim], where)
        out[o + "attn.k_proj.weight"] = require(sd, s + "cross_attn.k_proj.weight", [lm_dim, dv], where)
        out[o + "attn.v_proj.weight"] = require(sd, s + "cross_attn.v_proj.weight", [lm_dim, dv], where)
        out[o + "attn.o_proj.weight"] = require(sd, s + "cross_attn.o_proj.weight", [lm_dim, lm_dim], where)
        if qk:
            out[o + "attn.q_norm.weight"] = require(sd, s + "cross_attn.q_layer_norm.weight", [head_dim], where)
            out[o + "attn.k_norm.weight"] = require(sd, s + "cross_attn.k_layer_norm.weight", [head_dim], where)
        out[o + "attn_norm.weight"] = require(sd, s + "input_layernorm.weight", [lm_dim], where)
        out[o + "ff_norm.weight"] = require(sd, s + "post_attention_layernorm.weight", [lm_dim], where)
        out[o + "mlp.gate_proj.weight"] = require(sd, s + "mlp.gate_proj.weight", [ff, lm_dim], where)
        out[o + "mlp.up_proj.weight"] = require(sd, s + "mlp.up_proj.weight", [ff, lm_dim], where)
        out[o + "mlp.down_proj.weight"] = require(sd, s + "mlp.down_proj.weight", [lm_dim, ff], where)
        for src, dst in (("alpha_cross_attn", "attn_gate"), ("alpha_dense", "ff_gate")):
            g = sd.get(s + src)
            if g is None or g.numel() not in (1, lm_dim):
                raise ConvertError(f"{where}: {s}{src} missing or not of size 1 or {lm_dim}")
            shape = "scalar" if g.numel() == 1 else "vector"
            if gate_shape not in (None, shape):
                raise ConvertError(f"{where}: {s}{src} mixes scalar and vector gates")
            gate_shape = shape
            out[o + dst] = g.reshape(-1).clone()
    cfg = {"every": every, "placement": "idefics", "heads": lm_heads, "head_dim": head_dim,
           "norm": "rmsnorm", "ffn": "swiglu", "ff_dim": ff, "qk_norm": qk, "gate": gate_shape,
           "reset_at_eos": reset_at_eos, "norm_eps": rms_norm_eps}
    return out, cfg
