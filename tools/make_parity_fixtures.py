#!/usr/bin/env python3
"""Writes the parity fixtures tests/data/parity/<name>/ (see docs/converters.md).

For each configuration: a tiny model with seeded random weights (non-zero gates and skip
gains) is built from the peers' code (tools/reference), written in the peers' checkpoint
layouts, converted by tools/convert.py into the model directory, and run by the reference on a
prompt with images; every stage's output goes into reference/expected.safetensors.

    .venv/bin/python tools/make_parity_fixtures.py            # (re)write the fixtures
    .venv/bin/python tools/make_parity_fixtures.py --check    # regenerate in a temp dir, fail on drift
"""

import argparse
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from convert import cli as convert_cli  # noqa: E402
from reference import build_reference, randomize_, write_layouts  # noqa: E402
from reference.model_dir import load_model_dir  # noqa: E402

FIXTURE_DIR = os.path.join(ROOT, "tests", "data", "parity")
GREEDY_TOKENS = 32
MIN_GREEDY_MARGIN = 1e-3  # top-1 minus top-2 logit at every greedy step
# PyTorch's fp32 kernels differ between CPUs in summation order: the same script gave 1.25e-6
# (relative) on an Intel VM with AMX/AVX512-FP16; it stayed under 1e-6 on the fixtures' first
# two machines. That is ten float32 ulps; the drifts this check exists for (a changed formula,
# constant, layout or random stream) move outputs by orders of magnitude more.
DRIFT_TOL = 1e-5

CORPUS = [
    "a photo of two cats on a red sofa",
    "Output: a dog running in the green park",
    "Output: an old man reading a book by the window",
    "Question: what is the cat doing? Short answer: sleeping",
    "User: describe this image. Assistant: a small bird on a branch",
    "the quick brown fox jumps over the lazy dog",
    "clip one shows a person walking, clip two shows a car",
    "there is a boat on the lake and the sky is blue",
    "hello world, this is a tiny tokenizer for tests",
    "An image of a bathroom sink. An image of a kitchen.",
]
SP_VOCAB = 128


def train_tokenizer(path):
    """A deterministic tiny LLaMA-like sentencepiece model (identity normaliser, dummy prefix)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 8), model_writer=buf, vocab_size=SP_VOCAB, model_type="bpe",
        character_coverage=1.0, num_threads=1, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        minloglevel=2)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def hf_tokenizer(sp_path):
    """The tokenizer exactly as OpenFlamingo's factory sets it up (HF slow LlamaTokenizer)."""
    from transformers import LlamaTokenizer

    tok = LlamaTokenizer(vocab_file=sp_path, legacy=True)
    tok.add_special_tokens({"additional_special_tokens": ["<|endofchunk|>", "<image>"]})
    if tok.pad_token is None:
        tok.add_special_tokens({"pad_token": "<PAD>"})
    return tok


def base_config(vocab):
    v0 = vocab - 3
    return {
        "format_version": 1,
        "vision": {"type": "nfnet", "image_size": 40, "stem_channels": [2, 4, 8, 16],
                   "depths": [1, 1, 1, 1], "widths": [16, 16, 16, 32], "strides": [1, 2, 2, 2],
                   "bottleneck_ratio": 0.5, "group_width": 4, "se_ratio": 0.5, "alpha": 0.2,
                   "activation": "gelu", "gamma": 1.7015043497085571, "ws_eps": 1e-5,
                   "final_conv_channels": 0, "tap": "stage3", "ws_folded": False},
        "resampler": {"dim": 32, "depth": 2, "heads": 2, "head_dim": 8, "num_latents": 8,
                      "ff_mult": 1, "ff_activation": "gelu", "qk_layer_norm": False,
                      "max_frames": 0, "max_media": 0, "norm_eps": 1e-5},
        "xattn": {"every": 2, "placement": "openflamingo", "heads": 2, "head_dim": 8,
                  "norm": "layernorm", "ffn": "gelu", "ff_dim": 48, "qk_norm": False,
                  "gate": "scalar", "reset_at_eos": False, "norm_eps": 1e-5},
        "lm": {"type": "llama", "dim": 24, "layers": 4, "heads": 3, "kv_heads": 1, "head_dim": 8,
               "ffn_dim": 32, "vocab_size": vocab, "max_seq_len": 96, "rope_theta": 10000.0,
               "rope_style": "rotate_half", "rms_norm_eps": 1e-5, "tie_embeddings": False},
        "tokens": {"bos": 1, "eos": 2, "pad": v0 + 2, "image": v0 + 1, "endofchunk": v0,
                   "add_bos": True,
                   "special": {"<unk>": 0, "<s>": 1, "</s>": 2, "<|endofchunk|>": v0,
                               "<image>": v0 + 1, "<PAD>": v0 + 2}},
        "preprocess": {"resize": "squash", "crop_pct": 1.0, "mean": [0.485, 0.456, 0.406],
                       "std": [0.229, 0.224, 0.225], "background": [255, 255, 255]},
        "prompt": {"caption": "<image>Output:"},
        "weights": {"dtype": "f32"},
    }


def fixture_specs(vocab):
    specs = {}

    c = base_config(vocab)
    specs["openflamingo"] = dict(
        config=c, seed=11, frames=1, hf_vocab="base",
        image_sizes=[(40, 56), (64, 48), (48, 48)], rgba=[False, True, False],
        prompt="a photo of<image>Output: two cats<|endofchunk|><image>Output: a dog"
               "<|endofchunk|><image>Output:")

    c = base_config(vocab)
    c["resampler"].update(depth=1, ff_mult=4, ff_activation="relu", qk_layer_norm=True)
    c["xattn"].update(placement="idefics", heads=3, head_dim=8, norm="rmsnorm", ffn="swiglu",
                      ff_dim=32, qk_norm=True, gate="vector", reset_at_eos=True, norm_eps=1e-5)
    c["preprocess"].update(resize="shortest_crop", mean=[0.48145466, 0.4578275, 0.40821073],
                           std=[0.26862954, 0.26130258, 0.27577711])
    specs["idefics"] = dict(
        config=c, seed=22, frames=1, hf_vocab="full",
        image_sizes=[(50, 70), (72, 40)], rgba=[False, False],
        prompt="User: hello</s><image>the cat sat<|endofchunk|></s> and then<image>Describe:")

    c = base_config(vocab)
    c["vision"].update(widths=[16, 16, 32, 16], final_conv_channels=32, tap="final_act")
    c["resampler"].update(ff_activation="squared_relu")
    c["xattn"].update(every=1, ffn="squared_relu")
    c["lm"].update(layers=2)
    specs["paper"] = dict(
        config=c, seed=33, frames=1, hf_vocab="base",
        image_sizes=[(64, 64)], rgba=[False],
        prompt="a picture:<image>Output: a red bird<|endofchunk|>")

    c = base_config(vocab)
    c["resampler"].update(max_frames=2, max_media=3)
    c["vision"].update(image_size=36)
    specs["video"] = dict(
        config=c, seed=44, frames=2, hf_vocab="base",
        image_sizes=[(36, 44), (44, 36), (40, 40), (32, 48)], rgba=[False] * 4,
        prompt="clip one<image>Output: a person walking<|endofchunk|><image>Output:")

    # Quantised models (docs/quantization.md): every width a multiple of the block size 32 so
    # that the matrices really are quantised. The expected tensors come from the reference
    # running the dequantised weights the converter wrote (so the engine must dequantise
    # exactly as the converter does); logits_f32 is the same model before quantisation.
    for dtype in ("q8_0", "q4_0"):
        c = base_config(vocab)
        c["vision"].update(stem_channels=[4, 8, 16, 32], widths=[64, 64, 64, 64], group_width=8)
        c["resampler"].update(dim=64, depth=1, heads=2, head_dim=32, ff_mult=2)
        c["xattn"].update(every=2, heads=2, head_dim=32, ff_dim=128)
        c["lm"].update(dim=64, layers=2, heads=4, kv_heads=2, head_dim=16, ffn_dim=128)
        specs[f"quant_{dtype}"] = dict(
            config=c, seed=55 if dtype == "q8_0" else 58, frames=1, hf_vocab="base", dtype=dtype,
            image_sizes=[(48, 40), (40, 48)], rgba=[False, False],
            prompt="a photo of<image>Output: a red circle<|endofchunk|><image>Output:")
    return specs


# -- images --------------------------------------------------------------------------------
def make_png(path, size, rgba, seed):
    """A smooth deterministic picture (gradients + blobs), so resizing is meaningful."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 4))
    for ch in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        img[..., ch] = 127 + 60 * np.sin(a * xx / 6 + b * yy / 5 + c * 3)
        for _ in range(3):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 10)
            img[..., ch] += rng.uniform(-80, 80) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    img[..., 3] = 255 if not rgba else np.clip(255 * (xx / max(w - 1, 1)), 0, 255)
    arr = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    Image.fromarray(arr if rgba else arr[..., :3], "RGBA" if rgba else "RGB").save(path, optimize=False)


def preprocess(path, pre, size):
    """Pillow preprocessing as the config says: composite alpha over `background`, resize
    (squash: both sides to floor(size/crop_pct), then centre crop; shortest_crop: shortest side
    to size as torchvision Resize does, then centre crop with round-half-even offsets), bicubic,
    /255, (x − mean)/std. Returns float32 [H, W, 3]."""
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, tuple(pre["background"]) + (255,))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    w, h = im.size
    if pre["resize"] == "squash":
        s = int(size / pre["crop_pct"])
        im = im.resize((s, s), Image.BICUBIC)
    else:
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nw, nh = int(size * w / h), size
        im = im.resize((nw, nh), Image.BICUBIC)
    w, h = im.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    x = np.asarray(im, dtype=np.float32) / 255.0
    x = (x - np.array(pre["mean"], dtype=np.float32)) / np.array(pre["std"], dtype=np.float32)
    return torch.from_numpy(x.astype(np.float32))


# -- one fixture -----------------------------------------------------------------------------
def build_fixture(name, spec, out_root, sp_path, work):
    cfg = spec["config"]
    model = randomize_(build_reference(cfg), spec["seed"])
    lay = os.path.join(work, name + "_layouts")
    paths = write_layouts(model, lay, sp_path, hf_vocab=spec["hf_vocab"])
    out = os.path.join(out_root, name)
    if os.path.exists(out):
        shutil.rmtree(out)
    dtype = spec.get("dtype", "f32")
    rc = convert_cli.main(paths["convert_args"] + ["--out", out, "--quiet", "--dtype", dtype])
    if rc != 0:
        raise SystemExit(f"{name}: the converter failed")
    with open(os.path.join(out, "config.json")) as f:
        written = json.load(f)
    if dtype != "f32":
        cfg = json.loads(json.dumps(cfg))
        cfg["vision"]["ws_folded"] = True
    for sec in ("vision", "resampler", "xattn", "lm", "tokens", "preprocess"):
        if written[sec] != cfg[sec]:
            diff = {k: (cfg[sec].get(k), written[sec].get(k)) for k in set(cfg[sec]) | set(written[sec])
                    if cfg[sec].get(k) != written[sec].get(k)}
            raise SystemExit(f"{name}: converter wrote a different {sec} section: {diff}")

    os.makedirs(os.path.join(out, "images"))
    tok = hf_tokenizer(sp_path)
    ids = torch.tensor(tok(spec["prompt"])["input_ids"], dtype=torch.int64)
    n_media = int((ids == cfg["tokens"]["image"]).sum())
    frames = spec["frames"]
    if n_media * frames != len(spec["image_sizes"]):
        raise SystemExit(f"{name}: {n_media} <image> tokens × {frames} frames != "
                         f"{len(spec['image_sizes'])} images")
    pixels = []
    k = 0
    for i in range(n_media):
        fr = []
        for f in range(frames):
            fn = f"{i}.png" if frames == 1 else f"{i}_{f}.png"
            p = os.path.join(out, "images", fn)
            make_png(p, spec["image_sizes"][k], spec["rgba"][k], spec["seed"] * 100 + k)
            fr.append(preprocess(p, cfg["preprocess"], cfg["vision"]["image_size"]))
            k += 1
        pixels.append(torch.stack(fr))

    f32_logits = None
    if dtype != "f32":
        f32_logits = model(ids, pixels)["logits"]
        source_model, model = model, load_model_dir(out)
    res = model(ids, pixels)
    greedy, margins = model.greedy(ids, pixels, GREEDY_TOKENS, return_margins=True)
    if min(margins) < MIN_GREEDY_MARGIN:
        raise SystemExit(f"{name}: greedy step {int(np.argmin(margins))} has a top-2 margin of "
                         f"{min(margins):.2e}; pick another seed so the KV-cache run cannot flip it")
    exp = {"prompt_ids": ids, "logits": res["logits"], "greedy_ids": greedy}
    if f32_logits is not None:
        exp["logits_f32"] = f32_logits
        exp.update(quantisation_samples(source_model, out, dtype))
    for i, px in enumerate(pixels):
        exp[f"pixels.{i}"] = px
        exp[f"vision.{i}"] = res["vision"][i]
        exp[f"resampler.{i}"] = res["resampler"][i]
    for j, x in enumerate(res["xattn"]):
        exp[f"xattn.{j}"] = x
    exp = {k: v.contiguous() for k, v in exp.items()}
    import timm
    import transformers

    meta = {"prompt": spec["prompt"], "frames": str(frames),
            "xattn_layers": json.dumps(model.block_layers),
            "greedy_min_margin": f"{min(margins):.6g}",
            "pixels_source": "images/{i}.png (clips: images/{i}_{f}.png) through Pillow "
                             "preprocessing per config.json preprocess",
            "versions": f"torch {torch.__version__}, timm {timm.__version__}, "
                        f"transformers {transformers.__version__}, Pillow {Image.__version__}"}
    # Outside the model directory's own *.safetensors, which the engine loads as weights.
    os.makedirs(os.path.join(out, "reference"), exist_ok=True)
    write_safetensors_deterministic(exp, os.path.join(out, "reference", "expected.safetensors"), meta)
    return out


QUANT_SAMPLES = {  # model-directory name → (reference module, its state-dict key)
    "vision.stages.1.0.conv1.weight": ("vision", "stages.1.0.conv1.weight"),
    "lm.layers.1.mlp.up_proj.weight": ("lm", "model.layers.1.mlp.up_proj.weight"),
}


def quantisation_samples(model, out, dtype):
    """For two matrices: the f32 values the converter quantised (conv: standardised) and the
    converter's own dequantisation of what it wrote, so the C++ test can check that the engine
    quantises them to the same codes and dequantises the file to the same values."""
    from safetensors.numpy import load_file as load_np

    from convert.quantize import dequantize, fold_weight_standardisation

    written = load_np(os.path.join(out, "model.safetensors"))
    samples = {}
    for name, (module, key) in QUANT_SAMPLES.items():
        sd = getattr(model, module).state_dict()
        w = sd[key].double().numpy()
        if module == "vision":
            w = fold_weight_standardisation(w, sd[key[: -len("weight")] + "gain"].double().numpy(),
                                            model.config["vision"]["ws_eps"])
        q = written[name]
        qtype = "q8_0" if q.dtype == np.int8 else "q4_0"
        if qtype != dtype:
            raise SystemExit(f"{name} is stored as {qtype} in a {dtype} fixture")
        samples[f"quant_source.{name}"] = torch.from_numpy(w.reshape(w.shape[0], -1).astype(np.float32))
        samples[f"quant_dequantized.{name}"] = torch.from_numpy(
            dequantize(qtype, q, written[name + "_scale"].view(np.uint16)))
    return samples


def write_safetensors_deterministic(tensors, path, metadata):
    """safetensors with a sorted header (the library orders __metadata__ by a hash map, so its
    bytes change run to run): tensors by decreasing element size then name, data contiguous,
    header padded with spaces to a multiple of 8."""
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for k in order:
        t = tensors[k].contiguous()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                     "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def generate(out_root, work):
    os.makedirs(out_root, exist_ok=True)
    sp_path = os.path.join(work, "tokenizer.model")
    train_tokenizer(sp_path)
    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=sp_path).get_piece_size() + 3
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    outs = []
    for name, spec in fixture_specs(vocab).items():
        outs.append(build_fixture(name, spec, out_root, sp_path, work))
        size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(outs[-1]) for f in fs)
        print(f"{name}: {size / 1024:.0f} KB", file=sys.stderr)
    return outs


# -- drift check -----------------------------------------------------------------------------
def compare_dirs(committed, fresh):
    """Returns a list of human-readable differences."""
    from safetensors.torch import load_file

    problems = []
    for dp, _, files in os.walk(fresh):
        for f in files:
            rel = os.path.relpath(os.path.join(dp, f), fresh)
            a_path, b_path = os.path.join(committed, rel), os.path.join(fresh, rel)
            if not os.path.exists(a_path):
                problems.append(f"{rel}: missing from the committed fixtures")
                continue
            if f.endswith(".safetensors"):
                a, b = load_file(a_path), load_file(b_path)
                if set(a) != set(b):
                    problems.append(f"{rel}: tensor names differ: {sorted(set(a) ^ set(b))}")
                for k in sorted(set(a) & set(b)):
                    ta, tb = a[k], b[k]
                    if ta.shape != tb.shape or ta.dtype != tb.dtype:
                        problems.append(f"{rel}:{k}: {ta.dtype}{list(ta.shape)} vs {tb.dtype}{list(tb.shape)}")
                    elif ta.is_floating_point():
                        scale = max(1.0, float(ta.abs().max()) if ta.numel() else 1.0)
                        d = float((ta.double() - tb.double()).abs().max()) if ta.numel() else 0.0
                        if d > DRIFT_TOL * scale:
                            problems.append(f"{rel}:{k}: max |diff| {d:.3e} (scale {scale:.3g})")
                    elif not torch.equal(ta, tb):
                        n = int((ta != tb).sum())
                        problems.append(f"{rel}:{k}: {n} of {ta.numel()} integers differ")
            elif f.endswith(".json"):
                with open(a_path) as fa, open(b_path) as fb:
                    ja, jb = json.load(fa), json.load(fb)
                ja.pop("provenance", None)
                jb.pop("provenance", None)
                if ja != jb:
                    problems.append(f"{rel}: differs")
            else:
                with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
                    if fa.read() != fb.read():
                        problems.append(f"{rel}: bytes differ")
    for dp, _, files in os.walk(committed):
        for f in files:
            rel = os.path.relpath(os.path.join(dp, f), committed)
            if not os.path.exists(os.path.join(fresh, rel)):
                problems.append(f"{rel}: committed but no longer generated")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="regenerate in a temp dir and compare")
    ap.add_argument("--out", default=FIXTURE_DIR)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="parity_") as work:
        if not args.check:
            generate(args.out, work)
            return 0
        fresh = os.path.join(work, "fresh")
        generate(fresh, work)
        problems = compare_dirs(args.out, fresh)
        if problems:
            print(f"parity fixtures drifted ({len(problems)} differences):", file=sys.stderr)
            for p in problems:
                print("  " + p, file=sys.stderr)
            print("regenerate with: .venv/bin/python tools/make_parity_fixtures.py", file=sys.stderr)
            return 1
        print(f"parity fixtures: no drift (tolerance {DRIFT_TOL} relative to max(1, |max|))")
        return 0


if __name__ == "__main__":
    sys.exit(main())
