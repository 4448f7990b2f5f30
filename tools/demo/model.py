"""PyTorch Flamingo model for the demo, written to the engine's semantics
(/work/shared/spec/architecture.md, docs/model-format.md): NFNet (timm formulas: scaled weight
standardisation with eps 1e-5, TF-SAME padding for stride 2, gamma-scaled erf GELU, SE x2,
skipinit gain, beta from the expected variance), OpenFlamingo's Perceiver resampler and gated
cross-attention (tanh gates at 0, attention only to the immediately preceding image) and a
HF-style LLaMA (RMSNorm in fp32, rotate-half RoPE, GQA, SwiGLU, untied head).

Parameter names are the engine's tensor names without their top-level prefix
(`vision.`, `resampler.`, `xattn.`, `lm.`), so a state dict maps 1:1 onto model.safetensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

GELU_GAMMA = 1.7015043497085571


@dataclass
class VisionCfg:
    image_size: int = 96
    stem_channels: list = field(default_factory=lambda: [4, 8, 16, 32])
    depths: list = field(default_factory=lambda: [1, 1, 2, 1])
    widths: list = field(default_factory=lambda: [32, 64, 96, 128])
    strides: list = field(default_factory=lambda: [1, 2, 2, 2])
    bottleneck_ratio: float = 0.5
    group_width: int = 16
    se_ratio: float = 0.5
    alpha: float = 0.2
    ws_eps: float = 1e-5


@dataclass
class ResamplerCfg:
    dim: int = 128
    depth: int = 2
    heads: int = 4
    head_dim: int = 32
    num_latents: int = 32
    ff_mult: int = 2


@dataclass
class XattnCfg:
    every: int = 1
    heads: int = 4
    head_dim: int = 32
    ff_dim: int = 512


@dataclass
class LmCfg:
    dim: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    ffn_dim: int = 384
    vocab_size: int = 192
    max_seq_len: int = 512
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5


@dataclass
class DemoCfg:
    vision: VisionCfg = field(default_factory=VisionCfg)
    resampler: ResamplerCfg = field(default_factory=ResamplerCfg)
    xattn: XattnCfg = field(default_factory=XattnCfg)
    lm: LmCfg = field(default_factory=LmCfg)


# ----------------------------------------------------------------------------- NFNet

def tf_same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class WSConv2d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, groups=1, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin // groups, k, k))
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="linear")
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gain = nn.Parameter(torch.ones(cout, 1, 1, 1))
        self.k, self.stride, self.groups, self.eps = k, stride, groups, eps
        self.fan_in = (cin // groups) * k * k

    def standardized(self) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        return (w - mean) / torch.sqrt(var + self.eps) * self.gain * self.fan_in ** -0.5

    def forward(self, x):
        if self.k > 1:
            x = tf_same_pad(x, self.k, self.stride)
        return F.conv2d(x, self.standardized(), self.bias, self.stride, 0, 1, self.groups)


def act(x):
    return F.gelu(x) * GELU_GAMMA


class SqueezeExcite(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(c, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, c, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * 2.0 * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class Downsample(nn.Module):
    def __init__(self, cin, cout, stride, eps):
        super().__init__()
        self.stride = stride
        self.conv = WSConv2d(cin, cout, 1, eps=eps)

    def forward(self, x):
        if self.stride == 2:
            x = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
        return self.conv(x)


class NFBlock(nn.Module):
    def __init__(self, cin, cout, stride, beta, alpha, cfg: VisionCfg):
        super().__init__()
        mid = int(cout * cfg.bottleneck_ratio)
        groups = mid // cfg.group_width
        e = cfg.ws_eps
        self.beta, self.alpha = beta, alpha
        self.downsample = Downsample(cin, cout, stride, e) if (cin != cout or stride > 1) else None
        self.conv1 = WSConv2d(cin, mid, 1, eps=e)
        self.conv2 = WSConv2d(mid, mid, 3, stride, groups, eps=e)
        self.conv2b = WSConv2d(mid, mid, 3, 1, groups, eps=e)
        self.conv3 = WSConv2d(mid, cout, 1, eps=e)
        self.attn_last = SqueezeExcite(cout, int(cout * cfg.se_ratio))
        self.skipinit_gain = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        h = act(x) * self.beta
        shortcut = self.downsample(h) if self.downsample is not None else x
        r = self.conv1(h)
        r = self.conv2(act(r))
        r = self.conv2b(act(r))
        r = self.conv3(act(r))
        r = self.attn_last(r)
        return r * self.skipinit_gain * self.alpha + shortcut


class Stem(nn.Module):
    def __init__(self, ch, eps):
        super().__init__()
        self.conv1 = WSConv2d(3, ch[0], 3, 2, eps=eps)
        self.conv2 = WSConv2d(ch[0], ch[1], 3, 1, eps=eps)
        self.conv3 = WSConv2d(ch[1], ch[2], 3, 1, eps=eps)
        self.conv4 = WSConv2d(ch[2], ch[3], 3, 2, eps=eps)

    def forward(self, x):
        x = act(self.conv1(x))
        x = act(self.conv2(x))
        x = act(self.conv3(x))
        return self.conv4(x)


class NFNet(nn.Module):
    """Taps the raw stage-3 output (no final conv): [B, C, H/32, W/32]."""

    def __init__(self, cfg: VisionCfg):
        super().__init__()
        self.stem = Stem(cfg.stem_channels, cfg.ws_eps)
        stages, cin, ev = [], cfg.stem_channels[-1], 1.0
        for s, (d, w, st) in enumerate(zip(cfg.depths, cfg.widths, cfg.strides)):
            blocks = []
            for b in range(d):
                beta = 1.0 / math.sqrt(ev)
                if b == 0:
                    ev = 1.0
                ev += cfg.alpha ** 2
                blocks.append(NFBlock(cin, w, st if b == 0 else 1, beta, cfg.alpha, cfg))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)

    def forward(self, x):
        return self.stages(self.stem(x))


# ----------------------------------------------------------------------------- Resampler

class ResamplerAttn(nn.Module):
    def __init__(self, dim, heads, head_dim):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.q_proj = nn.Linear(dim, inner, bias=False)
        self.k_proj = nn.Linear(dim, inner, bias=False)
        self.v_proj = nn.Linear(dim, inner, bias=False)
        self.o_proj = nn.Linear(inner, dim, bias=False)

    def forward(self, lat, kv):
        b, n, _ = lat.shape
        h, dh = self.heads, self.head_dim
        q = self.q_proj(lat).view(b, n, h, dh).transpose(1, 2) * dh ** -0.5
        k = self.k_proj(kv).view(b, -1, h, dh).transpose(1, 2)
        v = self.v_proj(kv).view(b, -1, h, dh).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.o_proj((a @ v).transpose(1, 2).reshape(b, n, h * dh))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.up_proj(x)))


class ResamplerLayer(nn.Module):
    def __init__(self, cfg: ResamplerCfg):
        super().__init__()
        d = cfg.dim
        self.norm_media = nn.LayerNorm(d)
        self.norm_latents = nn.LayerNorm(d)
        self.attn = ResamplerAttn(d, cfg.heads, cfg.head_dim)
        self.ff_norm = nn.LayerNorm(d)
        self.mlp = Mlp(d, cfg.ff_mult * d)

    def forward(self, x, lat):
        xn, ln = self.norm_media(x), self.norm_latents(lat)
        lat = lat + self.attn(ln, torch.cat([xn, ln], dim=1))
        return lat + self.mlp(self.ff_norm(lat))


class Resampler(nn.Module):
    def __init__(self, cfg: ResamplerCfg):
        super().__init__()
        # Small latents: the residual stream of the latents is then dominated from the start by
        # what they read from the image (the output LayerNorm removes the scale anyway).
        self.latents = nn.Parameter(torch.randn(cfg.num_latents, cfg.dim) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x):                     # x: [N, v, D] -> [N, n, D]
        lat = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            lat = layer(x, lat)
        return self.norm(lat)


# ----------------------------------------------------------------------------- gated xattn

class XAttn(nn.Module):
    def __init__(self, dl, dv, heads, head_dim):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.q_proj = nn.Linear(dl, inner, bias=False)
        self.k_proj = nn.Linear(dv, inner, bias=False)
        self.v_proj = nn.Linear(dv, inner, bias=False)
        self.o_proj = nn.Linear(inner, dl, bias=False)

    def forward(self, y, media, media_idx):
        """y [B,S,Dl]; media [B,T,n,Dv]; media_idx [B,S] = t(s) (0: no image yet)."""
        b, s, _ = y.shape
        t, n = media.shape[1], media.shape[2]
        h, dh = self.heads, self.head_dim
        q = self.q_proj(y).view(b, s, h, dh).transpose(1, 2) * dh ** -0.5
        k = self.k_proj(media).view(b, t * n, h, dh).transpose(1, 2)
        v = self.v_proj(media).view(b, t * n, h, dh).transpose(1, 2)
        scores = q @ k.transpose(-1, -2)                               # [B,h,S,T*n]
        key_img = torch.arange(t, device=y.device).repeat_interleave(n) + 1
        allowed = media_idx.unsqueeze(-1) == key_img.view(1, 1, -1)   # [B,S,T*n]
        scores = scores.masked_fill(~allowed.unsqueeze(1), -torch.finfo(scores.dtype).max)
        a = torch.softmax(scores, dim=-1)
        a = a * (media_idx > 0).view(b, 1, s, 1).to(a.dtype)
        return self.o_proj((a @ v).transpose(1, 2).reshape(b, s, h * dh))


class GatedXAttnBlock(nn.Module):
    def __init__(self, dl, dv, cfg: XattnCfg):
        super().__init__()
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.attn_norm = nn.LayerNorm(dl)
        self.attn = XAttn(dl, dv, cfg.heads, cfg.head_dim)
        self.ff_gate = nn.Parameter(torch.zeros(1))
        self.ff_norm = nn.LayerNorm(dl)
        self.mlp = Mlp(dl, cfg.ff_dim)

    def forward(self, y, media, media_idx):
        y = y + torch.tanh(self.attn_gate) * self.attn(self.attn_norm(y), media, media_idx)
        return y + torch.tanh(self.ff_gate) * self.mlp(self.ff_norm(y))


# ----------------------------------------------------------------------------- LLaMA

class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class SelfAttn(nn.Module):
    def __init__(self, cfg: LmCfg):
        super().__init__()
        self.h, self.kvh, self.dh = cfg.heads, cfg.kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kvh, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kvh, self.dh).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.h // self.kvh
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-1, -2)) * self.dh ** -0.5 + mask
        a = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        return self.o_proj((a @ v).transpose(1, 2).reshape(b, s, self.h * self.dh))


class SwiGLU(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LmCfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
        self.self_attn = SelfAttn(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.ffn_dim)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, cfg: LmCfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        nn.init.normal_(self.embed_tokens.weight, std=0.02)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.normal_(mod.weight, std=0.02)

    def rope(self, s, device):
        dh = self.cfg.head_dim
        inv = 1.0 / (self.cfg.rope_theta ** (torch.arange(0, dh, 2, dtype=torch.float32) / dh))
        f = torch.arange(s, dtype=torch.float32)[:, None] * inv[None, :]
        emb = torch.cat([f, f], dim=-1).to(device)
        return emb.cos(), emb.sin()

    def forward(self, ids, xattn_fn=None):
        """xattn_fn(i, h) runs the gated block placed before layer i (identity when None)."""
        s = ids.shape[1]
        cos, sin = self.rope(s, ids.device)
        mask = torch.full((s, s), float("-inf"), device=ids.device).triu(1)
        h = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            if xattn_fn is not None:
                h = xattn_fn(i, h)
            h = layer(h, cos, sin, mask)
        return self.lm_head(self.norm(h))


# ----------------------------------------------------------------------------- Flamingo

class Flamingo(nn.Module):
    def __init__(self, cfg: DemoCfg, image_token: int):
        super().__init__()
        self.cfg = cfg
        self.image_token = image_token
        self.vision = NFNet(cfg.vision)
        self.resampler = Resampler(cfg.resampler)
        self.lm = Llama(cfg.lm)
        every = cfg.xattn.every
        self.xattn_layers = [i for i in range(cfg.lm.layers) if (i + 1) % every == 0]
        self.xattn = nn.ModuleList(GatedXAttnBlock(cfg.lm.dim, cfg.resampler.dim, cfg.xattn)
                                   for _ in self.xattn_layers)

    def encode_images(self, pixels):          # [N,3,H,W] -> [N, n, D]
        f = self.vision(pixels)
        return self.resampler(f.flatten(2).transpose(1, 2))

    def forward(self, ids, media):
        """ids [B,S]; media [B,T,n,D] visual tokens of each sequence's images in marker order."""
        media_idx = torch.cumsum((ids == self.image_token).long(), dim=1)
        slot = {layer: j for j, layer in enumerate(self.xattn_layers)}

        def xattn_fn(i, h):
            j = slot.get(i)
            return h if j is None else self.xattn[j](h, media, media_idx)

        return self.lm(ids, xattn_fn)
