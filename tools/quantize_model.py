#!/usr/bin/env python3
"""Re-stores a model directory with other weight types: f32/f16/bf16 → q8_0/q4_0 (or another
float type), by the same code and policy as `tools/convert.py --dtype` (docs/quantization.md).

    .venv/bin/python tools/quantize_model.py models/demo build/demo-q4 --dtype q4_0

The source must hold float weights (quantising twice would compound the error). Vision
convolutions are standardised first when the target is quantised (config vision.ws_folded).
tokenizer.model and examples/ are copied; config.json changes only in weights.dtype,
vision.ws_folded and provenance.
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from convert import quantize  # noqa: E402
from convert.checkpoint_io import ALL_DTYPES, ConvertError, write_safetensors  # noqa: E402


def read_float_weights(directory):
    from safetensors.torch import load_file

    out = {}
    files = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
    if not files:
        raise ConvertError(f"{directory}: no *.safetensors files")
    for f in files:
        for k, v in load_file(os.path.join(directory, f)).items():
            if not v.is_floating_point():
                raise ConvertError(f"{directory}/{f}: tensor {k} is {v.dtype}; the source must hold "
                                   "float weights, not an already quantised model")
            out[k] = v.float()
    return out


def quantize_model(src, dst, dtype, force=False, progress=True, head_q8_in_q4=True):
    if os.path.exists(dst) and os.listdir(dst) and not force:
        raise ConvertError(f"{dst}: exists and is not empty (use --force)")
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    tensors = read_float_weights(src)
    if dtype in quantize.QTYPES and not cfg["vision"].get("ws_folded", False):
        tensors = quantize.fold_vision_convs(tensors, cfg["vision"].get("ws_eps", 1e-5))
        cfg["vision"]["ws_folded"] = True
    os.makedirs(dst, exist_ok=True)
    write_safetensors(tensors, os.path.join(dst, "model.safetensors"), dtype, progress=progress,
                      tied_embeddings=cfg["lm"].get("tie_embeddings", False), head_q8_in_q4=head_q8_in_q4)
    source_dtype = cfg.get("weights", {}).get("dtype", "f32")
    cfg["weights"] = {"dtype": dtype}
    cfg.setdefault("provenance", {})["quantized_by"] = {
        "tool": "tools/quantize_model.py", "from": os.path.basename(os.path.normpath(src)),
        "from_dtype": source_dtype}
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    shutil.copyfile(os.path.join(src, "tokenizer.model"), os.path.join(dst, "tokenizer.model"))
    if os.path.isdir(os.path.join(src, "examples")):
        shutil.copytree(os.path.join(src, "examples"), os.path.join(dst, "examples"), dirs_exist_ok=True)
    return cfg


def main(argv=None):
    p = argparse.ArgumentParser(prog="tools/quantize_model.py", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="model directory with float weights")
    p.add_argument("dst", help="output model directory (created)")
    p.add_argument("--dtype", required=True, choices=ALL_DTYPES)
    p.add_argument("--force", action="store_true", help="overwrite a non-empty dst")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        quantize_model(args.src, args.dst, args.dtype, args.force, progress=not args.quiet)
    except (ConvertError, OSError, KeyError) as e:
        print(f"quantize_model: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
