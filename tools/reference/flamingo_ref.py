"""A PyTorch reference Flamingo assembled from the peers' own modules.

    vision      timm NormFreeNet (dm_nfnet-style NfCfg: deep_quad stem, gamma_in_act,
                ScaledStdConv2dSame, skipinit, attn_last SE), tapped at the stage-3 output or after
                final_conv + final_act, the h×w grid flattened row-major into tokens;
    resampler   open_flamingo PerceiverResampler (FFN activation swapped for the paper's squared
                ReLU or plain ReLU when asked) or transformers' IdeficsPerceiverResampler;
    xattn       open_flamingo GatedCrossAttentionBlock (with OpenFlamingo media masking) or
                transformers' IdeficsGatedCrossAttentionLayer (with IDEFICS' image attention mask,
                cross_attention_gate and optional reset after EOS);
    lm          transformers LlamaForCausalLM, each gated block run by a forward pre-hook on the
                decoder layer it precedes (as OpenFlamingo's FlamingoLayer does).

The model is configured by the engine's own config.json dict (docs/model-format.md), so a
reference built from a config and the engine reading the converted directory are the same model.

API:
    model = build_reference(config)                    # nn.Module in eval mode, fp32
    out = model(input_ids, media)                      # dict of every stage (see forward)
    logits = model.forward_batch(ids_bs, pixels_btfhw3, attention_mask)   # training, batched
    ids = model.greedy(input_ids, media, n)            # full recomputation per step, no KV cache
    layouts = to_checkpoint_layouts(model)             # state dicts in the peers' layouts
"""

import copy
import math

import torch
from torch import nn

from . import peers

_NONLIN_GAMMA_NAMES = {"gelu": "gelu", "relu": "relu", "silu": "silu"}


class SquaredReLU(nn.Module):
    """The Flamingo paper's FFN activation: relu(x)²."""

    def forward(self, x):
        return torch.relu(x).square()


def _activation_module(name):
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU()
    if name == "squared_relu":
        return SquaredReLU()
    raise ValueError(f"unsupported FFN activation {name!r} for the OpenFlamingo modules")


def resampler_kind(cfg):
    """'idefics' when the config asks for q/k LayerNorm (only IdeficsPerceiverResampler has it)."""
    return "idefics" if cfg["resampler"].get("qk_layer_norm", False) else "openflamingo"


def xattn_kind(cfg):
    x = cfg["xattn"]
    if x.get("ffn") == "swiglu" or x.get("norm") == "rmsnorm" or x.get("qk_norm", False):
        return "idefics"
    return "openflamingo"


def xattn_layers(cfg):
    """LM layer indices that get a gated block before them, in block order j."""
    every = cfg["xattn"]["every"]
    layers = cfg["lm"]["layers"]
    if cfg["xattn"].get("placement", "openflamingo") == "idefics":
        return [i for i in range(layers) if i % every == 0]
    return [i for i in range(layers) if (i + 1) % every == 0]


def _build_vision(v):
    nfnet = peers.timm_nfnet()
    act = v.get("activation", "gelu")
    if act not in _NONLIN_GAMMA_NAMES:
        raise ValueError(f"timm's NormFreeNet has no gamma for activation {act!r}")
    gamma = v.get("gamma", nfnet._nonlin_gamma[act])
    if abs(gamma - nfnet._nonlin_gamma[act]) > 1e-12:
        raise ValueError("timm's NormFreeNet uses the fixed NFNet gamma of the activation")
    stem = list(v["stem_channels"])
    c = stem[3]
    if stem != [c // 8, c // 4, c // 2, c]:
        raise ValueError(f"timm's deep_quad stem has channels c/8,c/4,c/2,c; got {stem}")
    if list(v.get("strides", [1, 2, 2, 2])) != [1, 2, 2, 2]:
        raise ValueError("timm's NormFreeNet uses strides 1,2,2,2")
    ratio = v.get("bottleneck_ratio", 0.5)
    gw = v.get("group_width", 128)
    se_ratio = v.get("se_ratio", 0.5)
    for w in v["widths"]:
        mid = w * ratio
        if w % 8 or mid % 8 or mid % gw or (w * se_ratio) % 8:
            raise ValueError(f"width {w}: timm rounds channels to multiples of 8; pick widths "
                             "whose mid and SE sizes are multiples of 8 and of the group width")
    cfg = nfnet.NfCfg(
        depths=tuple(v["depths"]),
        channels=tuple(v["widths"]),
        alpha=v.get("alpha", 0.2),
        stem_type="deep_quad",
        stem_chs=c,
        group_size=gw,
        attn_layer="se",
        attn_kwargs=dict(rd_ratio=se_ratio),
        bottle_ratio=ratio,
        num_features=v.get("final_conv_channels", 0),
        extra_conv=True,
        gamma_in_act=True,
        same_padding=True,
        std_conv_eps=v.get("ws_eps", 1e-5),
        skipinit=True,
        act_layer=act,
    )
    net = nfnet.NormFreeNet(cfg, num_classes=0)
    if v.get("tap", "stage3") == "final_act" and not v.get("final_conv_channels", 0):
        raise ValueError("tap final_act needs final_conv_channels > 0")
    return net


def _idefics_config(cfg):
    ns = peers.idefics()
    r, x, lm = cfg["resampler"], cfg["xattn"], cfg["lm"]
    return ns.IdeficsConfig(
        vocab_size=lm["vocab_size"],
        hidden_size=lm["dim"],
        intermediate_size=x["ff_dim"],
        num_hidden_layers=lm["layers"],
        num_attention_heads=x["heads"],
        hidden_act="silu",
        rms_norm_eps=x.get("norm_eps", 1e-6),
        alpha_type="vector" if x.get("gate", "scalar") == "vector" else "float",
        alpha_initializer="zeros",
        qk_layer_norms=x.get("qk_norm", False),
        cross_layer_interval=x["every"],
        use_resampler=True,
        vision_config=dict(embed_dim=r["dim"]),
        perceiver_config=dict(
            use_resampler=True,
            resampler_n_latents=r["num_latents"],
            resampler_depth=r["depth"],
            resampler_n_heads=r["heads"],
            resampler_head_dim=r["head_dim"],
            qk_layer_norms_perceiver=r.get("qk_layer_norm", False),
        ),
    )


def _build_resampler(cfg):
    r = cfg["resampler"]
    if resampler_kind(cfg) == "idefics":
        if r.get("ff_activation", "relu") != "relu" or r.get("ff_mult", 4) != 4:
            raise ValueError("IdeficsPerceiverResampler has a ReLU FFN of 4·dim")
        if r.get("max_frames", 0) or r.get("max_media", 0):
            raise ValueError("IdeficsPerceiverResampler has no frame or media-time embeddings")
        if abs(r.get("norm_eps", 1e-5) - 1e-5) > 0:
            raise ValueError("IdeficsPerceiverResampler uses LayerNorm eps 1e-5")
        ns = peers.idefics()
        return ns.IdeficsPerceiverResampler(_idefics_config(cfg), r["dim"], r["depth"], r["heads"],
                                            r["head_dim"], r["num_latents"])
    helpers = peers.open_flamingo_helpers()
    if abs(r.get("norm_eps", 1e-5) - 1e-5) > 0:
        raise ValueError("open_flamingo's PerceiverResampler uses LayerNorm eps 1e-5")
    res = helpers.PerceiverResampler(
        dim=r["dim"], depth=r["depth"], dim_head=r["head_dim"], heads=r["heads"],
        num_latents=r["num_latents"], max_num_media=r.get("max_media", 0) or None,
        max_num_frames=r.get("max_frames", 0) or None, ff_mult=r.get("ff_mult", 4))
    for _, ff in res.layers:
        ff[2] = _activation_module(r.get("ff_activation", "gelu"))
    return res


def _build_xattn(cfg):
    x, lm = cfg["xattn"], cfg["lm"]
    dv = cfg["resampler"]["dim"]
    blocks = nn.ModuleList()
    if xattn_kind(cfg) == "idefics":
        if x.get("norm") != "rmsnorm" or x.get("ffn") != "swiglu":
            raise ValueError("IdeficsGatedCrossAttentionLayer has RMSNorm and a SwiGLU FFN")
        if x["heads"] * x["head_dim"] != lm["dim"]:
            raise ValueError("IdeficsGatedCrossAttentionLayer uses heads·head_dim == LM dim")
        ns = peers.idefics()
        icfg = _idefics_config(cfg)
        for _ in xattn_layers(cfg):
            blocks.append(ns.IdeficsGatedCrossAttentionLayer(icfg))
        return blocks
    helpers = peers.open_flamingo_helpers()
    if x.get("gate", "scalar") != "scalar":
        raise ValueError("open_flamingo's GatedCrossAttentionBlock has scalar gates")
    if x.get("reset_at_eos", False):
        raise ValueError("reset_at_eos is IDEFICS masking; open_flamingo blocks have none")
    if abs(x.get("norm_eps", 1e-5) - 1e-5) > 0:
        raise ValueError("open_flamingo's GatedCrossAttentionBlock uses LayerNorm eps 1e-5")
    mult = x["ff_dim"] / lm["dim"]
    if int(lm["dim"] * mult) != x["ff_dim"]:
        raise ValueError("ff_dim must be dim·mult for open_flamingo's FeedForward")
    for _ in xattn_layers(cfg):
        blk = helpers.GatedCrossAttentionBlock(dim=lm["dim"], dim_visual=dv, dim_head=x["head_dim"],
                                               heads=x["heads"], ff_mult=mult,
                                               only_attend_immediate_media=True)
        blk.ff[2] = _activation_module(x.get("ffn", "gelu"))
        blocks.append(blk)
    return blocks


def _build_lm(cfg):
    lm = cfg["lm"]
    if lm.get("type", "llama") != "llama" or lm.get("rope_style", "rotate_half") != "rotate_half":
        raise ValueError("the reference LM is HF LLaMA with rotate-half RoPE")
    LlamaConfig, LlamaForCausalLM = peers.llama()
    hf = LlamaConfig(
        vocab_size=lm["vocab_size"], hidden_size=lm["dim"], intermediate_size=lm["ffn_dim"],
        num_hidden_layers=lm["layers"], num_attention_heads=lm["heads"],
        num_key_value_heads=lm["kv_heads"], max_position_embeddings=lm["max_seq_len"],
        rms_norm_eps=lm["rms_norm_eps"], rope_theta=lm["rope_theta"],
        tie_word_embeddings=lm.get("tie_embeddings", False), hidden_act="silu",
        attention_bias=False, attn_implementation="eager",
        bos_token_id=cfg["tokens"]["bos"], eos_token_id=cfg["tokens"]["eos"],
        pad_token_id=cfg["tokens"].get("pad", -1) if cfg["tokens"].get("pad", -1) >= 0 else None)
    if hf.hidden_size // hf.num_attention_heads != lm["head_dim"]:
        raise ValueError("HF LLaMA derives head_dim = dim / heads")
    return LlamaForCausalLM(hf)


class _StubTokenizer:
    """What IDEFICS' image_attention_mask_for_packed_input_ids asks of a tokenizer."""

    def __init__(self, image_id, eos_id):
        self.image_id, self.eos_token_id = image_id, eos_id

    def convert_tokens_to_ids(self, token):
        assert token == "<image>"
        return self.image_id


class FlamingoRef(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.vision = _build_vision(config["vision"])
        self.resampler = _build_resampler(config)
        self.xattn = _build_xattn(config)
        self.lm = _build_lm(config)
        self.block_layers = xattn_layers(config)
        self._state = None
        for j, i in enumerate(self.block_layers):
            self.lm.model.layers[i].register_forward_pre_hook(self._make_hook(j))
        self.eval()

    # -- stages (differentiable; any leading batch dims) --------------------------------------
    def encode_vision(self, pixels):
        """pixels: [..., H, W, 3] normalized → [..., v, C] tap features, grid row-major."""
        lead, (h, w, c) = pixels.shape[:-3], pixels.shape[-3:]
        x = pixels.reshape(-1, h, w, c).permute(0, 3, 1, 2).contiguous()
        if self.config["vision"].get("tap", "stage3") == "final_act":
            x = self.vision.forward_features(x)
        else:
            x = self.vision.stages(self.vision.stem(x))
        x = x.flatten(2).transpose(1, 2).contiguous()
        return x.reshape(*lead, *x.shape[1:])

    def resample_batch(self, feats):
        """feats: [B, T, F, v, C] → [B, T, num_latents, D] (media item t gets media_time_embs[t])."""
        b, t, f, v, c = feats.shape
        if resampler_kind(self.config) == "idefics":
            if f != 1:
                raise ValueError("IdeficsPerceiverResampler takes single images")
            out = self.resampler(feats.reshape(b * t, v, c))
            return out.reshape(b, t, *out.shape[1:])
        return self.resampler(feats)

    def resample(self, feats):
        """feats: list over media items of [F, v, C] → [T, num_latents, D]."""
        return self.resample_batch(torch.stack(feats).unsqueeze(0))[0]

    # -- masking state for the gated blocks -------------------------------------------------
    def _set_state(self, input_ids, media, record):
        """input_ids: [B, S]; media: [B, T, n, D]."""
        tok = self.config["tokens"]
        state = {"media": media, "outputs": [], "record": record}
        b, t_img, n = media.shape[:3]
        if xattn_kind(self.config) == "idefics":
            ns = peers.idefics()
            eos = tok["eos"] if self.config["xattn"].get("reset_at_eos", False) else -1
            inc, _ = ns.image_attention_mask_for_packed_input_ids(
                input_ids, _StubTokenizer(tok["image"], eos))
            mask = ns.incremental_to_binary_attention_mask(inc, num_classes=t_img)
            # As IdeficsModel.forward: one column per visual token, inverted to an additive mask.
            s = mask.shape[1]
            mask = mask.unsqueeze(-1).repeat(1, 1, 1, n).view(b, s, t_img * n)
            dtype = media.dtype
            mask = (1.0 - mask[:, None].to(dtype)) * torch.finfo(dtype).min
            state["image_attention_mask"] = mask
            state["cross_attention_gate"] = (mask == 0.0).any(dim=-1).to(dtype).squeeze(1)
            state["image_hidden_states"] = media.reshape(b, t_img * n, -1)
        else:
            state["media_locations"] = input_ids == tok["image"]
        self._state = state

    def _make_hook(self, j):
        def hook(module, args):
            st = self._state
            if st is None:
                raise RuntimeError("gated blocks need media; call the model, not model.lm")
            h = args[0]
            blk = self.xattn[j]
            if xattn_kind(self.config) == "idefics":
                h = blk(h, image_hidden_states=st["image_hidden_states"],
                        image_attention_mask=st["image_attention_mask"],
                        cross_attention_gate=st["cross_attention_gate"])[0]
            else:
                h = blk(h, st["media"], media_locations=st["media_locations"])
            if st["record"]:
                st["outputs"].append(h.detach().clone())
            return (h,) + tuple(args[1:])

        return hook

    # -- full forward -----------------------------------------------------------------------
    def forward_text_batch(self, input_ids, media, attention_mask=None, record=False):
        """input_ids: [B, S] int64; media: [B, T, n, D] resampler outputs. Every row must hold
        exactly T <image> tokens (T ≥ 1). Returns (logits [B, S, V], [xattn_j [B, S, Dl]] if
        record). attention_mask [B, S] (1 = real token) is passed to the LM for padded batches."""
        counts = (input_ids == self.config["tokens"]["image"]).sum(-1)
        if input_ids.dim() != 2 or bool((counts != media.shape[1]).any()):
            raise ValueError(f"<image> tokens per row {counts.tolist()} != {media.shape[1]} media items")
        if media.shape[1] == 0:
            raise ValueError("open_flamingo's masked cross-attention needs at least one image")
        self._set_state(input_ids, media, record)
        try:
            logits = self.lm(input_ids, attention_mask=attention_mask, use_cache=False).logits
            outs = self._state["outputs"]
        finally:
            self._state = None
        return logits, outs

    def forward_batch(self, input_ids, pixels, attention_mask=None):
        """Training entry: input_ids [B, S]; pixels [B, T, F, H, W, 3] → logits [B, S, V]."""
        media = self.resample_batch(self.encode_vision(pixels))
        return self.forward_text_batch(input_ids, media, attention_mask)[0]

    def encode_media(self, media_pixels):
        vision = [self.encode_vision(p) for p in media_pixels]
        return vision, self.resample(vision)

    def forward_text(self, input_ids, resampled):
        """input_ids: [S] int64; resampled: [T, n, D]. Returns (logits [S,V], [xattn_j [S,Dl]])."""
        logits, outs = self.forward_text_batch(input_ids.unsqueeze(0), resampled.unsqueeze(0),
                                               record=True)
        return logits[0], [o[0] for o in outs]

    def forward(self, input_ids, media_pixels):
        """One prompt. input_ids: [S]; media_pixels: list of [F, H, W, 3] float tensors
        (normalized), one per <image>. Returns every stage's output."""
        vision, resampled = self.encode_media(media_pixels)
        logits, xattn = self.forward_text(input_ids, resampled)
        return {"vision": vision, "resampler": resampled, "xattn": xattn, "logits": logits}

    @torch.no_grad()
    def greedy(self, input_ids, media_pixels, max_new_tokens=32, return_margins=False):
        """Greedy continuation by full recomputation (no KV cache); never emits <image>;
        stop tokens are not honoured. Margins = top1 − top2 logit per step."""
        _, resampled = self.encode_media(media_pixels)
        ids = input_ids.clone()
        new, margins = [], []
        for _ in range(max_new_tokens):
            logits, _ = self.forward_text(ids, resampled)
            last = logits[-1].clone()
            last[self.config["tokens"]["image"]] = -math.inf
            top = torch.topk(last, 2)
            margins.append(float(top.values[0] - top.values[1]))
            nxt = int(top.indices[0])
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([nxt], dtype=ids.dtype)])
        out = torch.tensor(new, dtype=torch.int64)
        return (out, margins) if return_margins else out


def build_reference(config):
    """config: the engine's config.json dict. Returns an fp32 FlamingoRef in eval mode."""
    return FlamingoRef(config)


@torch.no_grad()
def randomize_(model, seed, gate_range=(0.3, 1.2)):
    """Deterministic random weights with non-zero gates and skip gains (for parity fixtures)."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    for name, p in model.named_parameters():
        shape = p.shape
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("attn_gate", "ff_gate", "alpha_cross_attn", "alpha_dense"):
            mag = torch.rand(shape, generator=g) * (gate_range[1] - gate_range[0]) + gate_range[0]
            sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
            p.copy_(mag * sign)
        elif leaf == "skipinit_gain":
            p.copy_(torch.rand(shape, generator=g) * 0.8 + 0.4)
        elif leaf == "gain":
            p.copy_(1.0 + normal(shape, 0.2))
        elif leaf == "bias":
            p.copy_(normal(shape, 0.1))
        elif p.dim() == 1:  # norm weights
            p.copy_(1.0 + normal(shape, 0.2))
        elif leaf in ("latents", "frame_embs", "media_time_embs"):
            p.copy_(normal(shape, 1.0))
        elif "embed_tokens" in name:
            p.copy_(normal(shape, 1.0))
        else:  # linear / conv weights: unit-ish variance outputs
            fan_in = p[0].numel()
            p.copy_(normal(shape, 1.0 / math.sqrt(fan_in)))
    return model


# -- peer checkpoint layouts ----------------------------------------------------------------
def to_checkpoint_layouts(model, lm_layers_path="model.layers"):
    """The model's weights in the layouts the converter reads.

    Returns a dict with
      "timm":         timm NormFreeNet state dict (no head);
      "openflamingo": OpenFlamingo checkpoint dict (perceiver.* if the resampler is
                      open_flamingo's, lang_encoder.<layers>.{i}.gated_cross_attn_layer.* if the
                      blocks are, plus lang_encoder.model.embed_tokens.weight and
                      lang_encoder.lm_head.weight with the added-token rows), or None;
      "idefics":      IDEFICS-layout dict (model.perceiver_resampler.*,
                      model.gated_cross_attn_layers.{j}.*), or None;
      "llama":        (HF LlamaConfig dict, HF LlamaForCausalLM state dict).
    """
    def sd(module):
        return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}

    cfg = model.config
    timm_sd = {k: v for k, v in sd(model.vision).items() if not k.startswith("head.")}
    of, idf = {}, {}
    if resampler_kind(cfg) == "idefics":
        idf.update({f"model.perceiver_resampler.{k}": v for k, v in sd(model.resampler).items()})
    else:
        of.update({f"perceiver.{k}": v for k, v in sd(model.resampler).items()})
    if xattn_kind(cfg) == "idefics":
        for j, blk in enumerate(model.xattn):
            idf.update({f"model.gated_cross_attn_layers.{j}.{k}": v for k, v in sd(blk).items()})
    else:
        for j, (i, blk) in enumerate(zip(model.block_layers, model.xattn)):
            prefix = f"lang_encoder.{lm_layers_path}.{i}.gated_cross_attn_layer."
            of.update({prefix + k: v for k, v in sd(blk).items()})
    lm_sd = sd(model.lm)
    if of:
        of["lang_encoder.model.embed_tokens.weight"] = lm_sd["model.embed_tokens.weight"].clone()
        if "lm_head.weight" in lm_sd:
            of["lang_encoder.lm_head.weight"] = lm_sd["lm_head.weight"].clone()
    return {
        "timm": timm_sd,
        "openflamingo": of or None,
        "idefics": idf or None,
        "llama": (model.lm.config.to_dict(), lm_sd),
    }
