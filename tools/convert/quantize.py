"""Q8_0 / Q4_0 block quantisation, bit-exact with the engine (src/kernels/quantize.cc), the
weight-standardisation fold for NFNet convolutions, and the policy of which tensor is stored
in which type (docs/quantization.md).

Block: 32 consecutive values of one row, scale d stored as IEEE fp16.
    Q8_0: d = absmax/127, q = round-half-away(x/d) in -127..127                 (int8 [n, k])
    Q4_0: m = value of largest magnitude (sign kept), d = m/-8,
          nibble = min(15, floor(x/d + 8.5)); byte j = nibble j | nibble j+16 << 4 (uint8 [n, k/2])
Every step is done in float32 exactly as the C++ does it (d, 1/d and x·(1/d) rounded to
float32, then 8.5 added in float32), so the codes are the engine's codes bit for bit; the
quantised values are d16 · code with d16 the stored fp16 scale.
"""

import numpy as np

BLOCK = 32
QTYPES = ("q8_0", "q4_0")


class QuantizeError(ValueError):
    pass


def _blocks(x, what):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] % BLOCK:
        raise QuantizeError(f"{what}: shape {list(x.shape)}: need [n, k] with k a multiple of {BLOCK}")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise QuantizeError(f"{what}: non-finite value at {bad.tolist()}")
    n, k = x.shape
    return x.reshape(n, k // BLOCK, BLOCK), n, k


def _inverse(d):
    with np.errstate(divide="ignore"):
        inv = np.float32(1.0) / d
    return np.where(d != 0, inv, np.float32(0)).astype(np.float32)


def quantize_q8_0(x, what="tensor"):
    """float [n, k] → (int8 [n, k], fp16 scales as uint16 bits [n, k/32])."""
    xb, n, k = _blocks(x, what)
    d = (np.abs(xb).max(axis=2) / np.float32(127)).astype(np.float32)
    v = (xb * _inverse(d)[..., None]).astype(np.float32)
    # std::lround: nearest, ties away from zero (np.round would round ties to even).
    t = np.trunc(v)
    r = np.where(np.abs(v - t) >= np.float32(0.5), t + np.sign(v), t)
    q = r.astype(np.int8).reshape(n, k)
    return q, d.astype(np.float16).view(np.uint16)


def quantize_q4_0(x, what="tensor"):
    """float [n, k] → (uint8 [n, k/2], fp16 scales as uint16 bits [n, k/32])."""
    xb, n, k = _blocks(x, what)
    idx = np.abs(xb).argmax(axis=2)  # first of equal magnitudes, as the C++ strict '>' picks
    m = np.take_along_axis(xb, idx[..., None], axis=2)[..., 0]
    d = (m / np.float32(-8)).astype(np.float32)
    v = (xb * _inverse(d)[..., None]).astype(np.float32)
    code = np.clip(np.floor(v + np.float32(8.5)), 0, 15).astype(np.uint8)
    packed = code[..., :16] | (code[..., 16:] << 4)
    return packed.reshape(n, k // 2), d.astype(np.float16).view(np.uint16)


def dequantize(qtype, q, scales):
    """The values the engine computes with: fp16(scale) · code, float32 [n, k]."""
    d = np.asarray(scales, dtype=np.uint16).view(np.float16).astype(np.float32)
    n, nb = d.shape
    if qtype == "q8_0":
        codes = np.asarray(q, dtype=np.int8).reshape(n, nb, BLOCK).astype(np.float32)
    elif qtype == "q4_0":
        b = np.asarray(q, dtype=np.uint8).reshape(n, nb, BLOCK // 2)
        codes = np.concatenate([(b & 15), (b >> 4)], axis=2).astype(np.float32) - 8
    else:
        raise QuantizeError(f"unknown quantised type {qtype!r}")
    return (codes * d[..., None]).reshape(n, nb * BLOCK)


def quantize(qtype, x, what="tensor"):
    return quantize_q8_0(x, what) if qtype == "q8_0" else quantize_q4_0(x, what)


def fold_weight_standardisation(weight, gain, eps):
    """timm ScaledStdConv2d with gamma in the activation: Ŵ_o = gain_o · fan_in^-½ ·
    (W_o − mean W_o) / sqrt(var W_o + eps), biased variance, in float64 as the engine does."""
    w = np.asarray(weight, dtype=np.float64)
    out_c = w.shape[0]
    rows = w.reshape(out_c, -1)
    fan_in = rows.shape[1]
    mean = rows.mean(axis=1, keepdims=True)
    var = ((rows - mean) ** 2).mean(axis=1, keepdims=True)
    g = np.asarray(gain, dtype=np.float64).reshape(out_c, 1)
    return ((rows - mean) * (g / np.sqrt(fan_in) / np.sqrt(var + eps))).astype(np.float32).reshape(w.shape)


# -- policy ---------------------------------------------------------------------------------
# What a tensor is stored as in a --dtype q8_0|q4_0 model. Decided by measurement
# (docs/quantization.md): the matrices that carry almost all bytes are quantised; the small
# tensors added to or multiplied into activations stay f32 (the engine upcasts them anyway);
# the convolutions the engine cannot run from block-quantised rows (3×3 and the stem, whose
# rows are reordered at pack time) and matrices whose k is not a multiple of 32 stay f16.
HIGH_PRECISION = "f16"


def is_small_f32(name, shape):
    leaf = name.rsplit(".", 1)[-1]
    return len(shape) <= 1 or leaf in ("gain", "latents", "frame_embs", "media_time_embs",
                                       "attn_gate", "ff_gate")


def storage_type(name, shape, dtype, tied_embeddings=False, head_q8_in_q4=True):
    """The storage type of tensor `name` (shape as stored in the model directory) in a model
    written with `dtype` (f32|f16|bf16|q8_0|q4_0)."""
    if is_small_f32(name, shape):
        return "f32"
    if dtype not in QTYPES:
        return dtype
    if name == "lm.embed_tokens.weight":
        # The loader reads the embedding table (and a tied head) as a float tensor only.
        return HIGH_PRECISION
    if len(shape) == 4 and (shape[2] != 1 or shape[3] != 1 or name.startswith("vision.stem.")):
        return HIGH_PRECISION
    k = int(np.prod(shape[1:]))
    if k % BLOCK:
        return HIGH_PRECISION
    if dtype == "q4_0" and head_q8_in_q4 and name == "lm.lm_head.weight":
        return "q8_0"
    return dtype


def fold_vision_convs(tensors, eps):
    """{name: tensor} with vision.*.gain → the same dict with each gained conv weight replaced
    by its standardised form and the gains dropped (config vision.ws_folded = true)."""
    out = {}
    for name, t in tensors.items():
        if name.startswith("vision.") and name.endswith(".gain"):
            continue
        gain_name = name[: -len("weight")] + "gain" if name.endswith(".weight") else None
        if gain_name is not None and gain_name in tensors:
            w = t.detach().cpu().double().numpy() if hasattr(t, "detach") else np.asarray(t, np.float64)
            g = tensors[gain_name]
            g = g.detach().cpu().double().numpy() if hasattr(g, "detach") else np.asarray(g, np.float64)
            out[name] = fold_weight_standardisation(w, g, eps)
        else:
            out[name] = t
    return out
