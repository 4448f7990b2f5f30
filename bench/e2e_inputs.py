#!/usr/bin/env python3
"""Inputs of the end-to-end benchmark (bench/run_e2e.sh), the same for the engine and PyTorch:
three 640x480 JPEG photos-like images (smooth gradients and blobs, fixed seeds), a few-shot
prompt of exactly 64 tokens with 3 <image> markers under the given tokenizer, and its token ids
(and the caption prompt's), tokenised as the engine does (docs/tokenizer.md: special strings
split out first, each text segment through sentencepiece, BOS first).

  python bench/e2e_inputs.py --model DIR --out DIR
"""
import argparse
import json
import os

import numpy as np
from PIL import Image

TOKENS = 64


def make_jpeg(path, seed, size=(640, 480)):
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for ch in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        img[..., ch] = 127 + 60 * np.sin(a * xx / 40 + b * yy / 35 + c * 3)
        for _ in range(6):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, 80)
            img[..., ch] += rng.uniform(-80, 80) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    img += rng.normal(0, 6, img.shape)  # sensor-like noise so the JPEG is not trivially smooth
    Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)).save(path, quality=90)


def tokenize(sp, cfg, text):
    special = cfg["tokens"]["special"]
    ids = [cfg["tokens"]["bos"]] if cfg["tokens"].get("add_bos", True) else []
    i, seg = 0, ""
    while i < len(text):
        match = max((s for s in special if text.startswith(s, i)), key=len, default=None)
        if match:
            if seg:
                ids += sp.encode(seg)
                seg = ""
            ids.append(special[match])
            i += len(match)
        else:
            seg += text[i]
            i += 1
    if seg:
        ids += sp.encode(seg)
    return ids


def fewshot_prompt(sp, cfg):
    """Two examples (image, caption, end of chunk) and an open third image; the captions are
    consecutive pieces of a fixed sentence, each optionally ending in '.' or ',', chosen so
    that the prompt is exactly TOKENS tokens."""
    words = ("a small red boat floats on a calm lake under a grey sky while two birds circle "
             "above the trees near the old wooden house and children play on the green grass "
             "beside a narrow road").split()
    ends = ("", ".", ",", " .")
    for n in range(2, len(words)):
        for e0 in ends:
            for e1 in ends:
                half = n // 2
                text = (f"<image>Output: {' '.join(words[:half])}{e0}<|endofchunk|>"
                        f"<image>Output: {' '.join(words[half:n])}{e1}<|endofchunk|><image>Output:")
                ids = tokenize(sp, cfg, text)
                if len(ids) == TOKENS:
                    return text, ids
    raise SystemExit(f"could not build a {TOKENS}-token prompt with this tokenizer")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import sentencepiece as spm

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model, "tokenizer.model"))
    for i in range(3):
        p = os.path.join(args.out, f"image{i}.jpg")
        if not os.path.exists(p):
            make_jpeg(p, 100 + i)
    text, ids = fewshot_prompt(sp, cfg)
    with open(os.path.join(args.out, "prompt.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "prompt_ids.json"), "w") as f:
        json.dump(ids, f)
    with open(os.path.join(args.out, "caption_ids.json"), "w") as f:
        json.dump(tokenize(sp, cfg, cfg["prompt"]["caption"]), f)
    print(f"{args.out}: 3 images, prompt of {len(ids)} tokens")


if __name__ == "__main__":
    main()
