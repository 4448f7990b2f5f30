"""Loads a converted model directory back into the reference (the converter's inverse).

    model = load_model_dir("tests/data/parity/openflamingo")

Used by the self-tests: a directory written by tools/convert.py must reproduce the model it was
converted from, so a mapping mistake in the converter (a swapped K/V half, a transposed
matrix, a misplaced block) cannot hide behind the C++ side.

Quantised matrices (`X.weight` I8/U8 + `X.weight_scale`) are dequantised exactly as the engine
does (tools/convert/quantize.py). Standardised convolutions (`vision.ws_folded`) are run as
plain convolutions with timm's SAME padding: the stored (rounded) weights are what the engine
multiplies, and standardising them again would subtract their rounding-shifted means.
"""

import json
import os

import torch

from .flamingo_ref import build_reference, resampler_kind, xattn_kind


def _read_weights(directory):
    from safetensors.torch import load_file

    raw = {}
    for f in sorted(os.listdir(directory)):
        if f.endswith(".safetensors") and f != "expected.safetensors":
            raw.update(load_file(os.path.join(directory, f)))
    out = {}
    for k, v in raw.items():
        if k.endswith(".weight_scale"):
            continue
        if v.dtype in (torch.int8, torch.uint8):
            from convert.quantize import dequantize

            qtype = "q8_0" if v.dtype == torch.int8 else "q4_0"
            scales = raw[k + "_scale"].numpy().view("uint16")
            out[k] = torch.from_numpy(dequantize(qtype, v.numpy(), scales))
        else:
            out[k] = v.float()
    return out


def _run_convs_folded(vision, w):
    """Every ScaledStdConv2d of the NFNet becomes a plain convolution with the stored weight
    (its gain is unused and set to 1 so the state dict stays complete)."""
    import types

    import torch.nn.functional as F
    from timm.layers import ScaledStdConv2dSame
    from timm.layers.padding import pad_same

    def forward(self, x):
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    for name, m in vision.named_modules():
        if isinstance(m, ScaledStdConv2dSame):
            w.setdefault(f"vision.{name}.gain", torch.ones_like(m.gain))
            m.forward = types.MethodType(forward, m)


def _take(w, prefix):
    return {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}


def _resampler_sd(w, cfg):
    r = _take(w, "resampler.")
    out = {"latents": r.pop("latents")}
    idf = resampler_kind(cfg) == "idefics"
    if "frame_embs" in r:
        out["frame_embs"] = r.pop("frame_embs")
    if "media_time_embs" in r:
        out["media_time_embs"] = r.pop("media_time_embs").unsqueeze(1)
    for i in range(cfg["resampler"]["depth"]):
        L = _take(r, f"layers.{i}.")
        s = f"blocks.{i}." if idf else f"layers.{i}."
        for leaf in ("weight", "bias"):
            if idf:
                out[f"{s}0.context_layer_norm.{leaf}"] = L[f"norm_media.{leaf}"]
                out[f"{s}0.latents_layer_norm.{leaf}"] = L[f"norm_latents.{leaf}"]
                out[f"{s}1.ln.{leaf}"] = L[f"ff_norm.{leaf}"]
                if cfg["resampler"].get("qk_layer_norm"):
                    out[f"{s}0.q_layer_norm.{leaf}"] = L[f"attn.q_norm.{leaf}"]
                    out[f"{s}0.k_layer_norm.{leaf}"] = L[f"attn.k_norm.{leaf}"]
            else:
                out[f"{s}0.norm_media.{leaf}"] = L[f"norm_media.{leaf}"]
                out[f"{s}0.norm_latents.{leaf}"] = L[f"norm_latents.{leaf}"]
                out[f"{s}1.0.{leaf}"] = L[f"ff_norm.{leaf}"]
        if idf:
            for p in ("q_proj", "k_proj", "v_proj"):
                out[f"{s}0.{p}.weight"] = L[f"attn.{p}.weight"]
            out[f"{s}0.output_proj.weight"] = L["attn.o_proj.weight"]
            out[f"{s}1.fc.weight"] = L["mlp.up_proj.weight"]
            out[f"{s}1.c_proj.weight"] = L["mlp.down_proj.weight"]
        else:
            out[f"{s}0.to_q.weight"] = L["attn.q_proj.weight"]
            out[f"{s}0.to_kv.weight"] = torch.cat([L["attn.k_proj.weight"], L["attn.v_proj.weight"]])
            out[f"{s}0.to_out.weight"] = L["attn.o_proj.weight"]
            out[f"{s}1.1.weight"] = L["mlp.up_proj.weight"]
            out[f"{s}1.3.weight"] = L["mlp.down_proj.weight"]
    norm = "layer_norm" if idf else "norm"
    for leaf in ("weight", "bias"):
        out[f"{norm}.{leaf}"] = r[f"norm.{leaf}"]
    return out


def _block_sd(B, cfg):
    out = {}
    if xattn_kind(cfg) == "idefics":
        vec = cfg["xattn"].get("gate", "scalar") == "vector"
        for src, dst in (("attn_gate", "alpha_cross_attn"), ("ff_gate", "alpha_dense")):
            out[dst] = B[src].reshape(1, 1, -1) if vec else B[src].reshape(1)
        out["input_layernorm.weight"] = B["attn_norm.weight"]
        out["post_attention_layernorm.weight"] = B["ff_norm.weight"]
        for p in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[f"cross_attn.{p}.weight"] = B[f"attn.{p}.weight"]
        if cfg["xattn"].get("qk_norm"):
            out["cross_attn.q_layer_norm.weight"] = B["attn.q_norm.weight"]
            out["cross_attn.k_layer_norm.weight"] = B["attn.k_norm.weight"]
        for p in ("gate_proj", "up_proj", "down_proj"):
            out[f"mlp.{p}.weight"] = B[f"mlp.{p}.weight"]
        return out
    out["attn_gate"], out["ff_gate"] = B["attn_gate"], B["ff_gate"]
    out["attn.to_q.weight"] = B["attn.q_proj.weight"]
    out["attn.to_kv.weight"] = torch.cat([B["attn.k_proj.weight"], B["attn.v_proj.weight"]])
    out["attn.to_out.weight"] = B["attn.o_proj.weight"]
    for leaf in ("weight", "bias"):
        out[f"attn.norm.{leaf}"] = B[f"attn_norm.{leaf}"]
        out[f"ff.0.{leaf}"] = B[f"ff_norm.{leaf}"]
    out["ff.1.weight"] = B["mlp.up_proj.weight"]
    out["ff.3.weight"] = B["mlp.down_proj.weight"]
    return out


def _lm_sd(w):
    out = {}
    for k, v in _take(w, "lm.").items():
        out["lm_head.weight" if k == "lm_head.weight" else "model." + k] = v
    return out


def load_model_dir(directory):
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    model = build_reference(cfg)
    w = _read_weights(directory)
    vision_sd = model.vision.state_dict()
    for k, v in vision_sd.items():  # quantised convs are stored as [out, in·kh·kw] matrices
        t = w.get(f"vision.{k}")
        if t is not None and t.shape != v.shape and t.numel() == v.numel():
            w[f"vision.{k}"] = t.reshape(v.shape)
    if cfg["vision"].get("ws_folded"):
        _run_convs_folded(model.vision, w)
    model.vision.load_state_dict(_take(w, "vision."), strict=False)
    missing = [k for k in model.vision.state_dict() if not k.startswith("head.") and f"vision.{k}" not in w]
    if missing:
        raise KeyError(f"{directory}: vision tensors missing: {missing[:5]}")
    model.resampler.load_state_dict(_resampler_sd(w, cfg), strict=True)
    for j, blk in enumerate(model.xattn):
        blk.load_state_dict(_block_sd(_take(w, f"xattn.{j}."), cfg), strict=True)
    lm_sd = _lm_sd(w)
    model.lm.load_state_dict(lm_sd, strict=not cfg["lm"].get("tie_embeddings", False))
    used = {f"vision.{k}" for k in model.vision.state_dict()} | {k for k in w if not k.startswith("vision.")}
    unknown = sorted(set(w) - used)
    if unknown:
        raise KeyError(f"{directory}: tensors the reference does not know: {unknown[:5]}")
    return model.eval()
