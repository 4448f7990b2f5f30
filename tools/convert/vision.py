"""timm NFNet (dm_nfnet_* key layout) → `vision.*` tensors and the config's vision section.

Inferred from shapes: stem channels, depths, widths, bottleneck ratio, group width, SE ratio,
final conv channels. From flags (timm dm_nfnet defaults): activation (gelu), alpha (0.2),
strides (1,2,2,2), tap (stage3), image size, weight-standardisation eps (1e-5).
"""

import re

from .checkpoint_io import ConvertError, require

# timm's _nonlin_gamma (DeepMind's constants) for the activations the engine implements.
NFNET_GAMMA = {
    "gelu": 1.7015043497085571,
    "gelu_tanh": 1.7015043497085571,
    "relu": 1.7139588594436646,
    "silu": 1.7881293296813965,
}

# dm_nfnet_f* depths → (timm test resolution, eval crop_pct), for the defaults.
F_VARIANTS = {
    (1, 2, 6, 3): ("F0", 256, 0.9),
    (2, 4, 12, 6): ("F1", 320, 0.91),
    (3, 6, 18, 9): ("F2", 352, 0.92),
    (4, 8, 24, 12): ("F3", 416, 0.94),
    (5, 10, 30, 15): ("F4", 512, 0.951),
    (6, 12, 36, 18): ("F5", 544, 0.954),
    (7, 14, 42, 21): ("F6", 576, 0.956),
}

_BLOCK_RE = re.compile(r"^stages\.(\d+)\.(\d+)\.(.+)$")
_CONV_LEAVES = ("weight", "bias", "gain")


def convert_timm_nfnet(sd, where, activation="gelu", alpha=0.2, tap="stage3", image_size=None,
                       ws_eps=1e-5):
    """Returns (tensors named vision.*, vision config dict)."""
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    if any(k.startswith("stem.conv.") or k == "stem.conv.weight" for k in sd):
        raise ConvertError(f"{where}: single-conv stem: not an NFNet-F (deep_quad stem) checkpoint")
    if not any(k.endswith("skipinit_gain") for k in sd):
        raise ConvertError(
            f"{where}: no skipinit_gain tensors: this is a timm nfnet_*/eca_nfnet_* layout "
            "(symmetric padding, gamma inside the convs), which the engine does not implement; "
            "use a dm_nfnet_* checkpoint")
    if activation not in NFNET_GAMMA:
        raise ConvertError(f"--vision-activation {activation!r}: expected one of {sorted(NFNET_GAMMA)}")
    out = {}
    used = set()

    def conv(prefix, shape):
        for leaf, shp in zip(_CONV_LEAVES, (shape, shape[:1], [shape[0], 1, 1, 1])):
            name = f"{prefix}.{leaf}"
            out["vision." + name] = require(sd, name, shp, where)
            used.add(name)
        return sd[f"{prefix}.weight"]

    stem = []
    c_in = 3
    for k in range(1, 5):
        w = require(sd, f"stem.conv{k}.weight", [None, c_in, 3, 3], where)
        conv(f"stem.conv{k}", [w.shape[0], c_in, 3, 3])
        c_in = w.shape[0]
        stem.append(int(c_in))

    blocks = {}
    for k in sd:
        m = _BLOCK_RE.match(k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if sorted(blocks) != [0, 1, 2, 3]:
        raise ConvertError(f"{where}: expected stages 0..3, found {sorted(blocks)}")
    depths = []
    for s in range(4):
        if sorted(blocks[s]) != list(range(len(blocks[s]))):
            raise ConvertError(f"{where}: stage {s} block indices are not 0..n-1: {sorted(blocks[s])}")
        depths.append(len(blocks[s]))

    widths, ratios, group_widths, se_ratios = [], [], set(), set()
    for s in range(4):
        for b in range(depths[s]):
            p = f"stages.{s}.{b}"
            w1 = require(sd, f"{p}.conv1.weight", [None, c_in, 1, 1], where)
            mid = int(w1.shape[0])
            conv(f"{p}.conv1", [mid, c_in, 1, 1])
            w2 = require(sd, f"{p}.conv2.weight", [mid, None, 3, 3], where)
            gw = int(w2.shape[1])
            if mid % gw:
                raise ConvertError(f"{where}: {p}.conv2.weight in-channels {gw} do not divide {mid}")
            conv(f"{p}.conv2", [mid, gw, 3, 3])
            conv(f"{p}.conv2b", [mid, gw, 3, 3])
            w3 = require(sd, f"{p}.conv3.weight", [None, mid, 1, 1], where)
            c_out = int(w3.shape[0])
            conv(f"{p}.conv3", [c_out, mid, 1, 1])
            has_proj = f"{p}.downsample.conv.weight" in sd
            needs_proj = c_out != c_in or (b == 0 and s > 0)
            if has_proj != needs_proj:
                raise ConvertError(
                    f"{where}: {p} {'has' if has_proj else 'lacks'} downsample.conv although "
                    f"in={c_in}, out={c_out}, stride={2 if (b == 0 and s > 0) else 1}")
            if has_proj:
                conv(f"{p}.downsample.conv", [c_out, c_in, 1, 1])
            f1 = require(sd, f"{p}.attn_last.fc1.weight", [None, c_out, 1, 1], where)
            hid = int(f1.shape[0])
            for name, shp in ((f"{p}.attn_last.fc1.bias", [hid]),
                              (f"{p}.attn_last.fc2.weight", [c_out, hid, 1, 1]),
                              (f"{p}.attn_last.fc2.bias", [c_out]),
                              (f"{p}.attn_last.fc1.weight", [hid, c_out, 1, 1])):
                out["vision." + name] = require(sd, name, shp, where)
                used.add(name)
            g = sd.get(f"{p}.skipinit_gain")
            if g is None or g.numel() != 1:
                raise ConvertError(f"{where}: {p}.skipinit_gain missing or not a scalar")
            out[f"vision.{p}.skipinit_gain"] = g.reshape([]) if g.dim() else g
            used.add(f"{p}.skipinit_gain")
            if b == 0:
                widths.append(c_out)
            elif c_out != widths[-1]:
                raise ConvertError(f"{where}: {p} has {c_out} output channels, stage width is {widths[-1]}")
            ratios.append(mid / c_out)
            group_widths.add(gw)
            se_ratios.add(hid / c_out)
            c_in = c_out
    if len(set(ratios)) != 1 or len(group_widths) != 1 or len(se_ratios) != 1:
        raise ConvertError(f"{where}: bottleneck ratios {sorted(set(ratios))}, group widths "
                           f"{sorted(group_widths)} and SE ratios {sorted(se_ratios)} must each be "
                           "uniform across blocks (the config has one value each)")
    final = 0
    if "final_conv.weight" in sd:
        final = int(require(sd, "final_conv.weight", [None, c_in, 1, 1], where).shape[0])
        conv("final_conv", [final, c_in, 1, 1])
    if tap == "final_act" and not final:
        raise ConvertError(f"{where}: --vision-tap final_act but the checkpoint has no final_conv")
    unused = sorted(set(sd) - used)
    if unused:
        raise ConvertError(f"{where}: unexpected tensors {unused[:8]}{' ...' if len(unused) > 8 else ''}")
    variant = F_VARIANTS.get(tuple(depths))
    if image_size is None:
        if variant is None or widths != [256, 512, 1536, 1536]:
            raise ConvertError(f"{where}: custom NFNet (depths {depths}, widths {widths}): "
                               "pass --image-size")
        image_size = variant[1]
    cfg = {
        "type": "nfnet",
        "image_size": int(image_size),
        "stem_channels": stem,
        "depths": depths,
        "widths": widths,
        "strides": [1, 2, 2, 2],
        "bottleneck_ratio": ratios[0],
        "group_width": next(iter(group_widths)),
        "se_ratio": next(iter(se_ratios)),
        "alpha": alpha,
        "activation": activation,
        "gamma": NFNET_GAMMA[activation],
        "ws_eps": ws_eps,
        "final_conv_channels": final,
        "tap": tap,
        "ws_folded": False,
    }
    tap_channels = final if tap == "final_act" else widths[3]
    return out, cfg, tap_channels, variant
