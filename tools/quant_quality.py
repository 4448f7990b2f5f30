#!/usr/bin/env python3
"""Quality of quantised models against their float self (docs/quantization.md).

For each prompt the float model greedily continues N tokens; the prompt plus that
continuation is then run (teacher-forced) through each quantised variant, and at every
continuation position the variant's next-token distribution is compared with the float
one: top-1 agreement and KL(float ‖ variant). Variants are written by tools/quantize_model.py
(the converter's policy) and read back through tools/reference/model_dir.py, which
dequantises exactly as the engine does (the quant_* parity fixtures check the engine against
this reference at 1e-4).

  .venv/bin/python tools/quant_quality.py --model models/demo --prompts demo --n 60
  .venv/bin/python tools/quant_quality.py --prompts fixture      # the quant fixture's model in f32

--prompts demo uses the demo evaluation's held-out scenes (tools/demo/evaluate.py: captions
and the few-shot question prompts); fixture rebuilds the quant_* parity fixture's random model
in f32 with its prompt.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)

from quantize_model import quantize_model  # noqa: E402
from reference.model_dir import load_model_dir  # noqa: E402

VARIANTS = {  # name → (dtype, lm_head kept q8_0 in q4_0 models)
    "q8_0": ("q8_0", True),
    "q4_0": ("q4_0", True),
    "q4_0, head q4_0 too": ("q4_0", False),
}


def fixture_prompts(work):
    import make_parity_fixtures as mpf

    sp = os.path.join(work, "tokenizer.model")
    mpf.train_tokenizer(sp)
    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=sp).get_piece_size() + 3
    spec = dict(mpf.fixture_specs(vocab)["quant_q4_0"], dtype="f32")
    torch.set_grad_enabled(False)
    out = mpf.build_fixture("quant_f32", spec, work, sp, work)
    from safetensors.torch import load_file

    e = load_file(os.path.join(out, "reference", "expected.safetensors"))
    n = sum(1 for k in e if k.startswith("pixels."))
    return out, [(e["prompt_ids"], [e[f"pixels.{i}"] for i in range(n)])]


def demo_prompts(model_dir, n, work):
    """The demo evaluation's held-out prompts (tools/demo/evaluate.py): n caption prompts and,
    per question task, n/4 two-shot prompts; images rendered by the demo's scene renderer and
    preprocessed as the engine does."""
    sys.path.insert(0, os.path.join(TOOLS, "demo"))
    sys.path.insert(0, os.path.join(os.path.dirname(TOOLS), "bench"))
    import evaluate as demo_eval
    import scenes
    import sentencepiece as spm
    from e2e_inputs import tokenize
    from make_parity_fixtures import preprocess

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    caps, qa = demo_eval.heldout_set(n, max(1, n // 4), demo_eval.HELDOUT_SEED)
    out = []
    for key, text, scs in demo_eval.prompts(caps, qa, cfg["prompt"]["caption"]):
        if key[0] != "caption" and key[1] != 2:
            continue
        pixels = []
        for sc in scs:
            path = os.path.join(work, f"scene{len(out)}_{len(pixels)}.png")
            scenes.render(sc).save(path)
            pixels.append(preprocess(path, cfg["preprocess"], cfg["vision"]["image_size"]).unsqueeze(0))
        out.append((torch.tensor(tokenize(sp, cfg, text), dtype=torch.int64), pixels))
    return out


@torch.no_grad()
def continuation(model, ids, pixels, n, image_id):
    greedy = model.greedy(ids, pixels, n)
    return torch.cat([ids, greedy])


@torch.no_grad()
def compare(ref, var, seqs, prompt_lens):
    agree, kls = [], []
    for (ids, pixels), plen in zip(seqs, prompt_lens):
        a = ref(ids, pixels)["logits"][plen - 1:-1].double().log_softmax(-1)
        b = var(ids, pixels)["logits"][plen - 1:-1].double().log_softmax(-1)
        agree += (a.argmax(-1) == b.argmax(-1)).tolist()
        kls += (a.exp() * (a - b)).sum(-1).tolist()
    return float(np.mean(agree)), float(np.mean(kls)), float(np.max(kls)), len(agree)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="float model directory (for --prompts demo)")
    ap.add_argument("--prompts", choices=("demo", "fixture"), default="fixture")
    ap.add_argument("--n", type=int, default=40, help="caption prompts (demo); question prompts = n/4 per task")
    ap.add_argument("--tokens", type=int, default=16, help="greedy continuation per prompt")
    ap.add_argument("--json", help="write the table as JSON here")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory(prefix="qq_") as work:
        if args.prompts == "fixture":
            src, prompts = fixture_prompts(work)
        else:
            src, prompts = args.model, demo_prompts(args.model, args.n, work)
        ref = load_model_dir(src)
        image_id = ref.config["tokens"]["image"]
        seqs = [(continuation(ref, ids, px, args.tokens, image_id), px) for ids, px in prompts]
        lens = [len(ids) for ids, _ in prompts]
        rows = {}
        for name, (dtype, head_q8) in VARIANTS.items():
            out = os.path.join(work, name.replace(" ", "_").replace(",", ""))
            quantize_model(src, out, dtype, progress=False, head_q8_in_q4=head_q8)
            var = load_model_dir(out)
            top1, kl, kl_max, n = compare(ref, var, seqs, lens)
            size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".safetensors"))
            rows[name] = {"top1_agreement": top1, "mean_kl": kl, "max_kl": kl_max, "positions": n,
                          "weight_bytes": size}
            print(f"{name:24s} top-1 {100 * top1:6.2f} %  mean KL {kl:.2e}  max KL {kl_max:.2e}  "
                  f"({n} positions, {size / 1e6:.2f} MB)", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"source": src, "prompts": args.prompts, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
