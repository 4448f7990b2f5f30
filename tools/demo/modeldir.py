"""Loads an engine model directory (docs/model-format.md) into the demo's PyTorch model.

The demo model's parameter names are the engine's tensor names, so model.safetensors loads
straight into `model.Flamingo`. F16/BF16 tensors are widened to fp32: PyTorch then computes
with exactly the weights the engine reads. Needs no safetensors package."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import torch

import model as M

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {dt}, which the demo cannot read")
        b0, b1 = info["data_offsets"]
        arr = np.frombuffer(blob[b0:b1], dtype=_DTYPES[dt]).reshape(info["shape"])
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(arr.astype(np.float32) if dt != "I64" else arr.copy())
    return out


def cfg_from_config(c: dict) -> M.DemoCfg:
    v, r, x, lm = c["vision"], c["resampler"], c["xattn"], c["lm"]
    if v.get("tap", "stage3") != "stage3" or v.get("final_conv_channels", 3072):
        raise ValueError("the demo PyTorch model taps stage 3 and has no final conv")
    if v.get("ws_folded", False):
        raise ValueError("the demo PyTorch model reads unfolded conv weights (ws_folded false)")
    if x.get("placement", "openflamingo") != "openflamingo" or x.get("norm", "layernorm") != "layernorm" \
            or x.get("ffn", "gelu") != "gelu":
        raise ValueError("the demo PyTorch model has OpenFlamingo-style gated blocks")
    return M.DemoCfg(
        vision=M.VisionCfg(image_size=v["image_size"], stem_channels=list(v["stem_channels"]),
                           depths=list(v["depths"]), widths=list(v["widths"]),
                           strides=list(v.get("strides", [1, 2, 2, 2])),
                           bottleneck_ratio=v.get("bottleneck_ratio", 0.5),
                           group_width=v.get("group_width", 128), se_ratio=v.get("se_ratio", 0.5),
                           alpha=v.get("alpha", 0.2), ws_eps=v.get("ws_eps", 1e-5)),
        resampler=M.ResamplerCfg(dim=r["dim"], depth=r["depth"], heads=r["heads"],
                                 head_dim=r["head_dim"], num_latents=r["num_latents"],
                                 ff_mult=r.get("ff_mult", 4)),
        xattn=M.XattnCfg(every=x["every"], heads=x["heads"], head_dim=x["head_dim"],
                         ff_dim=x["ff_dim"]),
        lm=M.LmCfg(dim=lm["dim"], layers=lm["layers"], heads=lm["heads"], kv_heads=lm["kv_heads"],
                   head_dim=lm["head_dim"], ffn_dim=lm["ffn_dim"], vocab_size=lm["vocab_size"],
                   max_seq_len=lm["max_seq_len"], rope_theta=lm.get("rope_theta", 10000.0),
                   rms_norm_eps=lm.get("rms_norm_eps", 1e-5)),
    )


def load_model_dir(path: str) -> tuple[M.Flamingo, dict]:
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    net = M.Flamingo(cfg_from_config(config), config["tokens"]["image"])
    tensors = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(path, name)))
    own = net.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{path}: tensors missing {missing[:5]}, unexpected {extra[:5]}")
    for k, t in tensors.items():
        own[k].copy_(t.reshape(own[k].shape))
    net.eval()
    return net, config
