#!/usr/bin/env python3
"""The PyTorch side of the end-to-end benchmark (bench/run_e2e.sh): the same model directory
through the reference built from the peers' modules (tools/reference: timm NormFreeNet,
open_flamingo PerceiverResampler / GatedCrossAttentionBlock, transformers LlamaForCausalLM),
fp32, the same images, prompt ids and thread count as the engine, generating as a PyTorch user
does: HF KV cache (past_key_values) for the LM, open_flamingo's gated blocks with
use_cached_media during decoding (they recompute the visual K/V projection at every step, as
OpenFlamingo does).

The vision encoder is timed twice: as timm runs it (ScaledStdConv2d standardises the weights on
every call) and with the standardisation folded once into plain convolutions. Prints one JSON
object per repetition.

Threads. Debian's PyTorch runs `nn.Linear` through OpenBLAS (pthreads), whose thread count
`torch.set_num_threads` does not set: left alone, a "1-thread" run multiplies its matrices on
every CPU, and a 2-thread run has OpenMP's workers spin-waiting beside OpenBLAS's threads on
the same two CPUs (on the Zen 4 VM, 2026-12-07: prefill 45 tokens/s "at 1 thread" but 25 when
held to one, and 23 at 2 threads against 46 without the spinning). So --threads N sets
OpenBLAS's count too (through its C API) and OpenMP's wait policy to PASSIVE (it is read when
torch is imported: an OMP_WAIT_POLICY already in the environment is kept). Each JSON object
records the BLAS thread count, the wait policy, and the run's CPU time beside its wall time.

  /usr/bin/python3 bench/e2e_torch.py --model DIR --threads 2 --prompt-ids ids.json \
      --image a.jpg --image b.jpg --image c.jpg --decode-tokens 32 --caption-tokens 20 --runs 3
"""

import argparse
import json
import os
import resource
import sys
import time
import types

# Before torch: libgomp reads its wait policy when it is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from make_parity_fixtures import preprocess  # noqa: E402  (Pillow preprocessing, golden for the engine)
from reference import build_reference  # noqa: E402
from reference.model_dir import _block_sd, _resampler_sd, _take  # noqa: E402


def build_uninitialised(cfg):
    """The reference with its parameters allocated but not initialised (random init of 3B
    parameters would take minutes; every value is overwritten by the weights)."""
    from transformers.modeling_utils import no_init_weights

    noop = lambda t, *a, **k: t  # noqa: E731
    saved = {}
    for name in ("normal_", "uniform_", "kaiming_normal_", "kaiming_uniform_", "xavier_uniform_",
                 "xavier_normal_", "trunc_normal_", "zeros_", "ones_", "constant_"):
        saved[name] = getattr(torch.nn.init, name)
        setattr(torch.nn.init, name, noop)
    resets = {}
    for cls in (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding, torch.nn.LayerNorm):
        resets[cls] = cls.reset_parameters
        cls.reset_parameters = lambda self: None
    try:
        with no_init_weights():
            return build_reference(cfg)
    finally:
        for name, f in saved.items():
            setattr(torch.nn.init, name, f)
        for cls, f in resets.items():
            cls.reset_parameters = f


@torch.no_grad()
def load_weights(model, directory, cfg):
    """Streams the f32 weights of a model directory into the reference, one tensor (or one
    block) at a time, so peak memory stays near one copy of the weights."""
    from safetensors import safe_open

    files = [os.path.join(directory, f) for f in sorted(os.listdir(directory)) if f.endswith(".safetensors")]
    where = {}
    handles = [safe_open(f, framework="pt") for f in files]
    for h in handles:
        for k in h.keys():
            where[k] = h
    for k in where:
        if where[k].get_slice(k).get_dtype() not in ("F32", "F16", "BF16"):
            raise SystemExit(f"{directory}: {k} is quantised; benchmark PyTorch on the f32 directory")

    def get(k):
        return where[k].get_tensor(k).float()

    eps = cfg["vision"].get("ws_eps", 1e-5)
    for k, p in model.vision.state_dict().items():
        if k.startswith("head."):
            continue
        name = f"vision.{k}"
        if name in where:
            p.copy_(get(name).reshape(p.shape))
        elif k.endswith(".gain") and cfg["vision"].get("ws_folded"):
            # standardising Ŵ (mean 0) with gain sqrt(fan_in·(var Ŵ + eps)) gives back Ŵ
            w = get(f"vision.{k[:-len('gain')]}weight").double()
            rows = w.reshape(w.shape[0], -1)
            p.copy_((rows.shape[1] * (rows.var(dim=1, unbiased=False) + eps)).sqrt().reshape(p.shape))
        else:
            raise SystemExit(f"{directory}: no tensor for vision.{k}")
    res = {k: get(k) for k in where if k.startswith("resampler.")}
    model.resampler.load_state_dict(_resampler_sd(res, cfg), strict=True)
    del res
    for j, blk in enumerate(model.xattn):
        b = {k: get(k) for k in where if k.startswith(f"xattn.{j}.")}
        blk.load_state_dict(_block_sd(_take(b, f"xattn.{j}."), cfg), strict=True)
    for k, p in model.lm.state_dict().items():
        name = "lm.lm_head.weight" if k == "lm_head.weight" else "lm." + k[len("model."):]
        p.copy_(get(name))


def fold_vision(model, stored_folded):
    """Replaces every ScaledStdConv2dSame's forward by a plain convolution with the weight
    standardised once (what the engine does at load). stored_folded: the directory's weights
    are already standardised (ws_folded) and are used as they are."""
    from timm.layers import ScaledStdConv2dSame
    from timm.layers.padding import pad_same

    for m in model.vision.modules():
        if isinstance(m, ScaledStdConv2dSame):
            with torch.no_grad():
                w = m.weight.detach() if stored_folded else F.batch_norm(m.weight.reshape(1, m.out_channels, -1), None, None,
                                 weight=(m.gain * m.scale).view(-1), training=True, momentum=0.,
                                 eps=m.eps).reshape_as(m.weight).contiguous()
            m._folded = w

            def forward(self, x):
                if self.same_pad:
                    x = pad_same(x, self.kernel_size, self.stride, self.dilation)
                return F.conv2d(x, self._folded, self.bias, self.stride, self.padding, self.dilation,
                                self.groups)

            m.forward = types.MethodType(forward, m)


class Generator:
    """Prefill + KV-cache decoding through HF LLaMA with the gated blocks as pre-hooks."""

    def __init__(self, model):
        self.model = model
        self.state = {}
        for i in model.block_layers:
            model.lm.model.layers[i]._forward_pre_hooks.clear()
        for j, i in enumerate(model.block_layers):
            model.lm.model.layers[i].register_forward_pre_hook(self._hook(j))

    def _hook(self, j):
        def hook(module, args):
            st = self.state
            h = self.model.xattn[j](args[0], st["media"], media_locations=st["locations"],
                                    use_cached_media=st["cached"])
            return (h,) + tuple(args[1:])

        return hook

    @torch.no_grad()
    def run(self, ids, media, n_new, image_id):
        """ids [S] int64, media [T, n, D]. Returns (prefill s, decode s, first-token s, tokens)."""
        ids = ids.unsqueeze(0)
        self.state = {"media": media.unsqueeze(0), "locations": ids == image_id, "cached": False}
        t0 = time.perf_counter()
        out = self.model.lm(ids, use_cache=True)
        logits = out.logits[0, -1].clone()
        logits[image_id] = -float("inf")
        tok = int(logits.argmax())
        t_prefill = time.perf_counter() - t0
        pkv, toks = out.past_key_values, [tok]
        self.state["cached"] = True
        t1 = time.perf_counter()
        for _ in range(n_new - 1):
            out = self.model.lm(torch.tensor([[tok]]), past_key_values=pkv, use_cache=True)
            pkv = out.past_key_values
            logits = out.logits[0, -1].clone()
            logits[image_id] = -float("inf")
            tok = int(logits.argmax())
            toks.append(tok)
        return t_prefill, time.perf_counter() - t1, toks


def set_blas_threads(n):
    """Sets OpenBLAS's own thread count to n; returns the count it reports, or None when the
    BLAS torch loaded is not OpenBLAS (then its default stands, and the record says so)."""
    import ctypes
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
        blas.openblas_set_num_threads(n)
        return int(blas.openblas_get_num_threads())
    except (OSError, AttributeError):
        return None


def timed(f, *a):
    t0 = time.perf_counter()
    r = f(*a)
    return r, (time.perf_counter() - t0) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--prompt-ids", required=True, help="JSON list of token ids (the engine's tokenisation)")
    ap.add_argument("--caption-ids", required=True, help="JSON list of the caption prompt's ids")
    ap.add_argument("--image", action="append", required=True)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--caption-tokens", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    blas_threads = set_blas_threads(args.threads)
    if blas_threads is not None and blas_threads != args.threads:
        sys.exit(f"error: OpenBLAS runs {blas_threads} threads after asking for {args.threads}")
    torch.set_grad_enabled(False)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    t0 = time.perf_counter()
    model = build_uninitialised(cfg)
    load_weights(model, args.model, cfg)
    model.eval()
    load_ms = (time.perf_counter() - t0) * 1e3
    gen = Generator(model)
    image_id = cfg["tokens"]["image"]
    size = cfg["vision"]["image_size"]
    with open(args.prompt_ids) as f:
        ids = torch.tensor(json.load(f), dtype=torch.int64)
    with open(args.caption_ids) as f:
        cap_ids = torch.tensor(json.load(f), dtype=torch.int64)

    for rep in range(args.runs):
        r = {"threads": args.threads, "load_ms": load_ms, "run": rep, "blas_threads": blas_threads,
             "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
        wall0, cpu0 = time.perf_counter(), time.process_time()
        pixels, r["decode_preprocess_ms"] = timed(
            lambda: [preprocess(p, cfg["preprocess"], size) for p in args.image])
        # timm as is (standardisation per call) once, then folded for every later stage.
        if rep == 0 or not hasattr(model, "_folded"):
            _, r["vision_timm_ms"] = timed(lambda: [model.encode_vision(p) for p in pixels])
        if not hasattr(model, "_folded"):
            fold_vision(model, cfg["vision"].get("ws_folded", False))
            model._folded = True
        feats, r["vision_ms"] = timed(lambda: [model.encode_vision(p[None]) for p in pixels])
        t_first0 = time.perf_counter()
        media, r["resampler_ms"] = timed(model.resample, feats)
        prefill_s, decode_s, toks = gen.run(ids, media, args.decode_tokens, image_id)
        r["prefill_ms"], r["prefill_tokens"] = prefill_s * 1e3, int(ids.numel())
        r["decode_ms"], r["decode_tokens"] = decode_s * 1e3, len(toks) - 1
        r["first_token_ms"] = r["decode_preprocess_ms"] + r["vision_ms"] + (time.perf_counter() - t_first0 - decode_s) * 1e3
        # Caption: one image from its file, caption prompt, fixed token count.
        tc = time.perf_counter()
        px = preprocess(args.image[0], cfg["preprocess"], size)
        cm = model.resample([model.encode_vision(px[None])])
        _, _, ctoks = gen.run(cap_ids, cm, args.caption_tokens, image_id)
        r["caption_wall_ms"] = (time.perf_counter() - tc) * 1e3
        r["caption_tokens"] = len(ctoks)
        r["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r["wall_ms"] = (time.perf_counter() - wall0) * 1e3
        r["cpu_ms"] = (time.process_time() - cpu0) * 1e3
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
