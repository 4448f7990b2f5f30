"""Command line of tools/convert.py: source checkpoints → model directory (docs/model-format.md)."""

import argparse
import json
import math
import os
import shutil
import sys

import torch

from . import flamingo, llama, vision
from . import quantize
from .checkpoint_io import ALL_DTYPES, ConvertError, load_state_dict, write_safetensors

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
FFN_ACTS = ("gelu", "relu", "squared_relu")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="tools/convert.py",
        description="Convert a timm dm_nfnet state dict + an OpenFlamingo and/or IDEFICS layout "
                    "checkpoint + a HF LLaMA directory into a flamingo model directory.")
    p.add_argument("--out", required=True, help="output model directory (created)")
    p.add_argument("--vision", required=True, help="timm dm_nfnet_* state dict (.pth/.safetensors)")
    p.add_argument("--openflamingo", help="OpenFlamingo checkpoint (perceiver.*, lang_encoder.*)")
    p.add_argument("--idefics", help="IDEFICS-layout weights (model.perceiver_resampler.*, "
                                     "model.gated_cross_attn_layers.*)")
    p.add_argument("--llama", required=True, help="HF LLaMA directory (config.json, weights, tokenizer.model)")
    p.add_argument("--dtype", choices=ALL_DTYPES, default="f32",
                   help="q8_0/q4_0: block-32 quantised matrices (policy: docs/quantization.md)")
    p.add_argument("--fold-ws", action="store_true",
                   help="store the vision convolutions standardised (always on for q8_0/q4_0)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    g = p.add_argument_group("vision (not inferable from shapes)")
    g.add_argument("--image-size", type=int, help="input side (default: timm test size for F0-F6)")
    g.add_argument("--vision-activation", default="gelu", choices=sorted(vision.NFNET_GAMMA))
    g.add_argument("--vision-alpha", type=float, default=0.2)
    g.add_argument("--vision-tap", default="stage3", choices=("stage3", "final_act"))
    g = p.add_argument_group("resampler / gated blocks (heads: only heads×head_dim is in the shapes)")
    g.add_argument("--resampler-heads", type=int)
    g.add_argument("--resampler-head-dim", type=int)
    g.add_argument("--resampler-ff-activation", choices=FFN_ACTS,
                   help="default: gelu (OpenFlamingo), relu (IDEFICS)")
    g.add_argument("--xattn-heads", type=int, help="OpenFlamingo layout (default 8)")
    g.add_argument("--xattn-head-dim", type=int, help="OpenFlamingo layout (default 64)")
    g.add_argument("--xattn-ffn", choices=FFN_ACTS, default="gelu", help="OpenFlamingo layout FFN")
    g.add_argument("--xattn-every", type=int, help="IDEFICS cross_layer_interval when ambiguous")
    g.add_argument("--no-reset-at-eos", action="store_true",
                   help="IDEFICS layout: do not reset image attention after EOS")
    g.add_argument("--extra-head-rows", choices=("mean", "zero"), default="mean",
                   help="rows for added tokens when only the input embeddings were extended")
    g = p.add_argument_group("tokens / preprocessing / prompt")
    g.add_argument("--image-token", default="<image>")
    g.add_argument("--eoc-token", default="<|endofchunk|>")
    g.add_argument("--no-bos", action="store_true", help="do not prepend BOS to prompts")
    g.add_argument("--resize", choices=("shortest_crop", "squash"), default="squash",
                   help="default squash (timm dm_nfnet eval transform)")
    g.add_argument("--crop-pct", type=float, help="default: timm's crop_pct for F0-F6, else 1.0")
    g.add_argument("--mean", type=float, nargs=3, help="default ImageNet (timm dm_nfnet)")
    g.add_argument("--std", type=float, nargs=3)
    g.add_argument("--clip-norm", action="store_true", help="use OpenAI CLIP mean/std")
    g.add_argument("--caption-prompt", default="<image>Output:")
    g.add_argument("--max-seq-len", type=int, help="override config.json max_position_embeddings")
    g.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def _idefics_embeddings(sd, where):
    """IDEFICS keeps added-token rows in separate tables; returns the concatenated (embed, head)."""
    base = sd.get("model.embed_tokens.weight")
    add = sd.get("model.embed_tokens.additional_embedding.weight")
    emb = torch.cat([base, add], 0) if base is not None and add is not None else None
    hb, ha = sd.get("lm_head.weight"), sd.get("lm_head.additional_fc.weight")
    head = torch.cat([hb, ha], 0) if hb is not None and ha is not None else None
    if (add is not None) != (emb is not None):
        raise ConvertError(f"{where}: additional_embedding without model.embed_tokens.weight")
    return emb, head


def convert(args):
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    if not args.openflamingo and not args.idefics:
        raise ConvertError("give --openflamingo and/or --idefics for the resampler and gated blocks")
    if os.path.exists(args.out) and os.listdir(args.out) and not args.force:
        raise ConvertError(f"{args.out}: exists and is not empty (use --force)")

    log(f"reading {args.vision}")
    vsd = load_state_dict(args.vision)
    vt, vcfg, tap_ch, variant = vision.convert_timm_nfnet(
        vsd, args.vision, activation=args.vision_activation, alpha=args.vision_alpha,
        tap=args.vision_tap, image_size=args.image_size)

    of = load_state_dict(args.openflamingo) if args.openflamingo else {}
    idf = load_state_dict(args.idefics) if args.idefics else {}
    of_res = any(k.startswith("perceiver.") for k in of)
    idf_res = any(k.startswith("model.perceiver_resampler.") for k in idf)
    if of_res == idf_res:
        raise ConvertError("exactly one of --openflamingo (perceiver.*) and --idefics "
                           "(model.perceiver_resampler.*) must hold the resampler; found "
                           f"{'both' if of_res else 'neither'}")
    if of_res:
        rt, rcfg = flamingo.convert_openflamingo_resampler(
            of, args.openflamingo, args.resampler_heads, args.resampler_head_dim,
            args.resampler_ff_activation or "gelu")
    else:
        rt, rcfg = flamingo.convert_idefics_resampler(
            idf, args.idefics, args.resampler_heads, args.resampler_head_dim,
            args.resampler_ff_activation or "relu")
    if rcfg["dim"] != tap_ch:
        raise ConvertError(f"resampler dim {rcfg['dim']} != vision tap channels {tap_ch} "
                           f"(tap {args.vision_tap}); wrong --vision-tap or mismatched checkpoints")

    of_embed = of.get("lang_encoder.model.embed_tokens.weight")
    of_head = of.get("lang_encoder.lm_head.weight")
    where_emb = args.openflamingo
    ie, ih = _idefics_embeddings(idf, args.idefics)
    if ie is not None:
        if of_embed is not None:
            raise ConvertError("both checkpoints carry LM embeddings; give only one")
        of_embed, of_head, where_emb = ie, ih, args.idefics
    log(f"reading {args.llama}")
    lt, lcfg, vocab = llama.convert_llama(args.llama, where_emb, of_embed, of_head, args.extra_head_rows)
    if args.max_seq_len:
        lcfg["max_seq_len"] = args.max_seq_len

    of_blocks = any(".gated_cross_attn_layer." in k or k.startswith("lang_encoder.gated_cross_attn_layers.")
                    for k in of)
    idf_blocks = any(k.startswith("model.gated_cross_attn_layers.") for k in idf)
    if of_blocks == idf_blocks:
        raise ConvertError("exactly one checkpoint must hold the gated cross-attention blocks; found "
                           f"{'both' if of_blocks else 'neither'}")
    if of_blocks:
        xt, xcfg = flamingo.convert_openflamingo_blocks(
            of, args.openflamingo, lcfg["dim"], rcfg["dim"], lcfg["layers"], args.xattn_heads,
            args.xattn_head_dim, args.xattn_ffn)
    else:
        xt, xcfg = flamingo.convert_idefics_blocks(
            idf, args.idefics, lcfg["dim"], rcfg["dim"], lcfg["layers"], lcfg["heads"],
            args.xattn_every, lcfg["rms_norm_eps"], not args.no_reset_at_eos)

    ignored = sorted({k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("lang_encoder.") else "")
                      for k in of if not (k.startswith("perceiver.") or ".gated_cross_attn_layer." in k
                                          or k.startswith("lang_encoder.gated_cross_attn_layers.")
                                          or k in ("lang_encoder.model.embed_tokens.weight",
                                                   "lang_encoder.lm_head.weight"))})
    if ignored:
        log(f"note: {args.openflamingo}: not read (frozen copies / other encoders): "
            + ", ".join(p + ".*" for p in ignored))
    tokens, base_vocab, sp_path, tok_source = llama.special_tokens(
        args.llama, vocab, args.image_token, args.eoc_token)
    tokens["add_bos"] = not args.no_bos

    mean = args.mean or (CLIP_MEAN if args.clip_norm else IMAGENET_MEAN)
    std = args.std or (CLIP_STD if args.clip_norm else IMAGENET_STD)
    crop = args.crop_pct if args.crop_pct is not None else (variant[2] if variant and args.resize == "squash" else 1.0)
    config = {
        "format_version": 1,
        "vision": vcfg,
        "resampler": rcfg,
        "xattn": xcfg,
        "lm": lcfg,
        "tokens": tokens,
        "preprocess": {"resize": args.resize, "crop_pct": crop, "mean": list(mean), "std": list(std),
                       "background": [255, 255, 255]},
        "prompt": {"caption": args.caption_prompt},
        "weights": {"dtype": args.dtype},
        "provenance": {
            "converter": "tools/convert.py",
            "vision": {"file": os.path.basename(args.vision), "layout": "timm dm_nfnet",
                       "variant": variant[0] if variant else "custom"},
            "openflamingo": os.path.basename(args.openflamingo) if args.openflamingo else None,
            "idefics": os.path.basename(args.idefics) if args.idefics else None,
            "llama": os.path.basename(os.path.normpath(args.llama)),
            "special_token_ids": tok_source,
            "sentencepiece_vocab": base_vocab,
            "torch": torch.__version__,
        },
    }
    if args.fold_ws or args.dtype in quantize.QTYPES:
        vt = quantize.fold_vision_convs(vt, vcfg["ws_eps"])
        vcfg["ws_folded"] = True
    tensors = {}
    for part in (vt, rt, xt, lt):
        for k, v in part.items():
            if k in tensors:
                raise ConvertError(f"internal: tensor {k} produced twice")
            tensors[k] = v
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(tensors, os.path.join(args.out, "model.safetensors"), args.dtype,
                      progress=not args.quiet, tied_embeddings=lcfg.get("tie_embeddings", False))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    shutil.copyfile(sp_path, os.path.join(args.out, "tokenizer.model"))
    n = sum(math.prod(t.shape) for t in tensors.values())
    log(f"wrote {args.out}: {len(tensors)} tensors, {n / 1e6:.3f}M parameters, dtype {args.dtype}")
    return config


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        convert(args)
    except ConvertError as e:
        print(f"convert: error: {e}", file=sys.stderr)
        return 2
    return 0
