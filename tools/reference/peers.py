"""Loads the peer projects' own model code, without their heavy dependencies.

- timm's NormFreeNet / NfCfg (timm from PyPI, pinned in tools/requirements.txt);
- open_flamingo's src/helpers.py (PerceiverResampler, GatedCrossAttentionBlock), loaded by file
  path so that open_flamingo/__init__.py (which imports open_clip and HF) never runs;
- transformers' LlamaForCausalLM and the IDEFICS perceiver / gated cross-attention layer.

The only non-peer code here is a math-mode stand-in for torch 2's
F.scaled_dot_product_attention, installed only when torch lacks it (Debian's torch 1.13):
IdeficsAttention refuses to construct without it. It computes exactly the documented
softmax(q·kᵀ·scale + mask)·v.
"""

import functools
import importlib.util
import math
import os
import sys

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=None)
def open_flamingo_helpers():
    spec = importlib.util.find_spec("open_flamingo")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_flamingo is not installed; run bash tools/setup_venv.sh")
    path = os.path.join(list(spec.submodule_search_locations)[0], "src", "helpers.py")
    mod_spec = importlib.util.spec_from_file_location("open_flamingo_helpers", path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules["open_flamingo_helpers"] = module
    mod_spec.loader.exec_module(module)
    return module


def timm_nfnet():
    from timm.models import nfnet

    return nfnet


def _sdpa_math(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    if dropout_p != 0.0:
        raise ValueError("the reference runs in eval mode only (dropout_p must be 0)")
    scale = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        n, m = scores.shape[-2:]
        keep = torch.ones(n, m, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    return torch.matmul(scores.softmax(dim=-1), value)


@functools.lru_cache(maxsize=None)
def idefics():
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = _sdpa_math
    from transformers.models.idefics import configuration_idefics, modeling_idefics, perceiver
    from transformers.models.idefics import processing_idefics

    class Namespace:
        IdeficsConfig = configuration_idefics.IdeficsConfig
        IdeficsGatedCrossAttentionLayer = modeling_idefics.IdeficsGatedCrossAttentionLayer
        IdeficsPerceiverResampler = perceiver.IdeficsPerceiverResampler
        image_attention_mask_for_packed_input_ids = staticmethod(
            processing_idefics.image_attention_mask_for_packed_input_ids)
        incremental_to_binary_attention_mask = staticmethod(
            processing_idefics.incremental_to_binary_attention_mask)

    return Namespace


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaConfig, LlamaForCausalLM
