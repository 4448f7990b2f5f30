"""Writes the PyTorch model's greedy outputs for the shipped demo examples, the goldens that
tests/api/demo_model_test.cc compares the engine against (engine == PyTorch, token for token).

The PyTorch model is loaded from the model directory itself (f16 weights widened to f32), so
both sides compute with the same weights. Cases: every example captioned with the config's
caption prompt; 2-shot count prompts over the examples; 2-shot colour and shape prompts over
the examples that have exactly one large object (their captions say so).

  /usr/bin/python3 tools/demo/make_goldens.py [--model models/demo] [--out tests/data/demo/goldens.tsv]

Each line: prompt, comma-separated image files (relative to the model's examples/), the
generated token ids (space-separated, without the stop token), the text, and the smallest
top-1/top-2 logit margin along the greedy path (how far the case is from a tie).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import evaluate  # noqa: E402
import scenes  # noqa: E402


def cases(examples: list[tuple[str, str]], caption_prompt: str):
    """(prompt, [image names]) of every golden case."""
    out = [(caption_prompt, [name]) for name, _ in examples]
    objs = {name: scenes.parse_caption(cap) for name, cap in examples}
    names = [n for n, _ in examples]
    for i in range(len(names)):                       # count: every example is a query once
        shots = [names[(i + 1) % len(names)], names[(i + 2) % len(names)]]
        prompt = "".join(f"<image>{scenes.NUMBERS[len(objs[s])]}<|endofchunk|>" for s in shots)
        out.append((prompt + "<image>", shots + [names[i]]))
    single = [n for n in names if sum(o.size == "large" for o in objs[n]) == 1]
    if len(single) < 3:
        raise SystemExit(f"make_goldens: need 3 examples with one large object, have {single}")
    for task in ("colour", "shape"):
        for i in range(len(single)):
            shots = [single[(i + 1) % len(single)], single[(i + 2) % len(single)]]
            answers = [next(getattr(o, task) for o in objs[s] if o.size == "large") for s in shots]
            prompt = "".join(f"<image>{a}<|endofchunk|>" for a in answers)
            out.append((prompt + "<image>", shots + [single[i]]))
    return out


@torch.no_grad()
def min_margin(tb: evaluate.Torch, prompt: str, paths: list[str], generated: list[int]) -> float:
    """Smallest top-1 minus top-2 logit over the greedy steps (stop token included)."""
    vis = tb.net.encode_images(torch.stack([tb.pixels(p) for p in paths]))[None]
    ids = tb.tok.encode(prompt, add_bos=tb.config["tokens"].get("add_bos", True)) + generated
    logits = tb.net(torch.tensor([ids]), vis)[0]
    logits[:, tb.image_id] = -float("inf")
    steps = logits[len(ids) - len(generated) - 1:]
    top = steps.topk(2, dim=-1).values
    return float((top[:, 0] - top[:, 1]).min())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "demo"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "demo", "goldens.tsv"))
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)

    tb = evaluate.Torch(args.model, args.max_tokens)
    ex_dir = os.path.join(args.model, "examples")
    with open(os.path.join(ex_dir, "captions.tsv")) as f:
        examples = [tuple(r) for r in csv.reader(f, delimiter="\t")]
    rows = []
    for prompt, names in cases(examples, tb.config["prompt"]["caption"]):
        paths = [os.path.join(ex_dir, n) for n in names]
        text, ids = tb.run(prompt, paths)
        margin = min_margin(tb, prompt, paths, ids)
        rows.append((prompt, ",".join(names), " ".join(map(str, ids)), text.strip(), f"{margin:.3f}"))
        print(f"{prompt!r:70} {','.join(names):32} -> {text.strip()!r} (margin {margin:.2f})")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
    print(f"wrote {len(rows)} cases to {args.out}")


if __name__ == "__main__":
    main()
