"""Trains the demo Flamingo model the Flamingo way, on this machine's CPU.

  1. a sentencepiece tokenizer on the scene text;
  2. a small LLaMA on text only: the same interleaved sequences with the images left out
     (`<image>red<|endofchunk|><image>blue<|endofchunk|>`), so it learns the answer formats
     and infers the task from earlier answers; then it is frozen;
  3. the NFNet on its own, supervised per cell of the 3x3 layout (vision_pretrain.py); then
     it is frozen too, and its features of every training scene are computed once;
  4. Perceiver resampler + gated cross-attention blocks (gates start at 0) on interleaved
     image/text sequences of 1..K pairs sharing one task, on top of the frozen features, with
     a training-only per-cell readout of the visual tokens beside the LM loss (CellReadout);
     what is exported is a moving average of these weights (WeightAverage).

Seeded and reproducible for a given --threads and --vlm-procs (deterministic CPU kernels;
--vlm-procs 2 runs the multimodal stage as two one-thread processes, faster on two cores).
Writes to --out: tokenizer.model, lm.pt, vision.pt, checkpoint.pt (config, the averaged weights
that export.py exports and the live ones beside them), losses.json and a loss-curve PNG.

  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/demo/train.py --out build/demo-train \
      --threads 2 --render-procs 2 --vlm-procs 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import model as M  # noqa: E402
import scenes  # noqa: E402
import tokenization  # noqa: E402
import vision_pretrain  # noqa: E402

# Caption dominates the mix: it is the hardest task, and it must be the most likely reading
# of a lone "<image>" so that the default caption prompt captions.
TASK_WEIGHTS = {"caption": 0.6, "colour": 0.4 / 3, "shape": 0.4 / 3, "count": 0.4 / 3}
# The text-only LM: captions are the most likely reading of a lone first "<image>" (the
# default caption prompt must caption), question sequences are short and cheap. Caption
# sequences have at most 2 pairs here, enough to learn that the task carries over.
LM_TASK_WEIGHTS = {"caption": 0.4, "colour": 0.2, "shape": 0.2, "count": 0.2}
LM_MAX_PAIRS = {"caption": 2, "colour": 5, "shape": 5, "count": 5}
MAX_PAIRS = {"caption": 4, "colour": 5, "shape": 5, "count": 5}


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def loss_fn(logits, targets):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=-100)


class CellReadout(nn.Module):
    """Training-only probe on the resampler's output: one learned query per layout cell
    attends over an image's visual tokens, and linear heads read the colour, shape and size of
    that cell's object (or "none") from what it gathers. Its loss keeps each cell's facts bound
    together in the visual tokens, where a text query can fetch them by cell: without it the
    tokens carry which attributes and which cells are in the scene but not which goes with
    which, and captions of several objects mix them up. Thrown away after training."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(len(scenes.POSITIONS), dim) * 0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, n + 1) for n in
                                   (len(scenes.COLOUR_NAMES), len(scenes.SHAPES), len(scenes.SIZES)))

    def forward(self, vis):                  # [n, tokens, D] -> 3 x [n, 9, classes]
        q = self.queries.unsqueeze(0).expand(vis.shape[0], -1, -1)
        x = self.norm(self.attn(q, vis, vis, need_weights=False)[0])
        return [h(x) for h in self.heads]

    def loss_and_accuracy(self, vis, cells, images=None):
        """images: the whole batch's image count when vis holds only a shard of it (data
        parallel), so that the shards' losses add up to the batch's mean."""
        logits = self(vis)
        n = (len(vis) if images is None else images) * cells.shape[1]
        loss = sum(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), cells[..., k].reshape(-1),
                                   reduction="sum") / n for k, lg in enumerate(logits))
        hit = torch.stack([lg.argmax(-1) == cells[..., k] for k, lg in enumerate(logits)], -1)
        return loss, float(hit.all(-1).all(-1).float().mean())


def train_lm(lm, seqs: data.Sequences, args, log):
    opt = torch.optim.AdamW(lm.parameters(), lr=args.lm_lr, weight_decay=0.01)
    rng = random.Random(f"{args.seed}/lm")
    tasks, weights = zip(*LM_TASK_WEIGHTS.items())
    bar = tqdm(range(args.lm_steps), desc="LM (text only)", dynamic_ncols=True)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lm_steps, args.lm_lr, 30)
        task = rng.choices(tasks, weights)[0]
        ids, targets, *_ = seqs.batch(rng, task, args.lm_batch, with_images=False,
                                      max_pairs=LM_MAX_PAIRS[task])
        loss = loss_fn(lm(ids), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        log.append({"phase": "lm", "step": step, "task": task, "loss": loss.item()})
        bar.set_postfix(loss=f"{loss.item():.3f}", task=task)


@torch.no_grad()
def residual_rms(net: M.Flamingo, seqs: data.Sequences) -> list[float]:
    """RMS of the frozen LM's residual stream at each gated block (text-only batch)."""
    rng = random.Random("residual-rms")
    ids = seqs.batch(rng, "caption", 16, with_images=False).ids
    keep = ids != seqs.tok.pad
    seen = {}

    def probe(i, h):
        if i in net.xattn_layers:
            seen[net.xattn_layers.index(i)] = float(h[keep].pow(2).mean().sqrt())
        return h

    net.lm(ids, probe)
    return [seen[j] for j in range(len(net.xattn_layers))]


class WeightAverage:
    """Exponential moving average of the trained weights, which is what gets exported. Late
    in the schedule (learning rate at its 10 % floor) single steps still move the weights by
    more than the remaining improvement, and two runs of one recipe ended 2 points apart per
    caption attribute; averaging over the last ~1/(1-decay) steps keeps the improvement and
    drops most of that step noise. The decay ramps up from 0 as (1+t)/(10+t) so that early
    weights do not linger."""

    def __init__(self, named: list[tuple[str, torch.Tensor]], decay: float):
        self.decay = decay
        self.named = named
        self.shadow = [p.detach().clone() for _, p in named]

    @torch.no_grad()
    def update(self, step: int):
        d = min(self.decay, (1 + step) / (10 + step))
        for s, (_, p) in zip(self.shadow, self.named):
            s.mul_(d).add_(p, alpha=1 - d)

    @torch.no_grad()
    def swap(self):
        """Exchanges the live weights with the averages (call again to swap back)."""
        for s, (_, p) in zip(self.shadow, self.named):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)

    @staticmethod
    @contextlib.contextmanager
    def applied(average: WeightAverage | None):
        """The averaged weights in place for the with block (the live ones when no average)."""
        if average is None:
            yield
            return
        average.swap()
        try:
            yield
        finally:
            average.swap()

    def state_dict(self) -> dict:
        return {n: s.clone() for s, (n, _) in zip(self.shadow, self.named)}


class DataParallel:
    """The multimodal stage as `procs` forked processes of one thread each, every batch split
    between them by rows. Two single-threaded processes keep both cores busy where one process
    with two threads does not: the stage's tensors are small (width 128, a few thousand tokens
    per batch), and much of a two-thread step went to PyTorch's and OpenBLAS's threads waiting
    for each other (a quarter of the CPU time in the kernel).

    Every process builds the same whole batch (same generator) and computes the gradients of
    its rows; they are summed through shared memory in rank order, so each process adds the
    same numbers in the same order and takes the identical optimiser step. The replicas never
    drift apart (checked at the end), and a run is reproducible for a given `procs`. The sums
    round differently from one process's whole-batch gradients, so the weights differ from a
    --vlm-procs 1 run's.

        with DataParallel(params, procs) as dp:   # forks; dp.rank is 0 in the parent
            ...  # every rank runs the loop; dp.all_reduce(step, losses...) after backward()
            dp.check_replicas()
    Processes other than rank 0 exit when the with block ends (or fails)."""

    TIMEOUT_S = 1800  # how long a rank waits for the others (rank 0 evaluates meanwhile)

    def __init__(self, params: list[torch.Tensor], procs: int):
        self.params, self.procs, self.rank = params, procs, 0
        self.numel = sum(p.numel() for p in params)
        self.children: list[int] = []

    def __enter__(self):
        if self.procs == 1:
            return self
        import ctypes
        import multiprocessing as mp
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:     # Debian's PyTorch calls OpenBLAS, whose threads are set on their own
            self.openblas = ctypes.CDLL("libopenblas.so.0")
            self.blas_threads = self.openblas.openblas_get_num_threads()
            self.openblas.openblas_set_num_threads(1)
        except (OSError, AttributeError):
            self.openblas = None
        # Two slots, used by alternate steps, of per-rank gradients and losses: a rank may
        # write step s+1 while another still reads step s (never s+2: it waits at s+1's barrier).
        self.buf = torch.zeros(2, self.procs, self.numel + 2).share_memory_()
        self.barrier = mp.get_context("fork").Barrier(self.procs, timeout=self.TIMEOUT_S)
        for rank in range(1, self.procs):
            pid = os.fork()
            if pid == 0:
                self.rank, self.children = rank, []
                try:     # Linux: end with the parent instead of waiting for it at the barrier
                    ctypes.CDLL(None).prctl(1, signal.SIGTERM)    # PR_SET_PDEATHSIG
                except (OSError, AttributeError):
                    pass
                return self
            self.children.append(pid)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and self.procs > 1:
            self.barrier.abort()      # the others stop waiting now, not after TIMEOUT_S
        if self.rank > 0:
            if exc is not None:
                import traceback
                traceback.print_exception(exc_type, exc, tb)
            os._exit(0 if exc is None else 1)
        if exc is not None:
            for pid in self.children:
                os.kill(pid, signal.SIGTERM)
        failed = [pid for pid in self.children if os.waitpid(pid, 0)[1] != 0]
        if self.procs > 1:
            torch.set_num_threads(self.threads)
            if self.openblas is not None:
                self.openblas.openblas_set_num_threads(self.blas_threads)
        if failed and exc is None:
            raise RuntimeError(f"data-parallel training: {len(failed)} worker process(es) failed")
        return False

    def all_reduce(self, step: int, *losses: torch.Tensor) -> list[torch.Tensor]:
        """Replaces every parameter's gradient by the sum over the ranks; returns the losses
        summed the same way."""
        slot = self.buf[step % 2]
        mine = slot[self.rank]
        o = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                mine[o:o + n].zero_()
            else:
                mine[o:o + n].copy_(p.grad.reshape(-1))
            o += n
        mine[o:].copy_(torch.stack(losses))
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            raise RuntimeError("data-parallel training: another process failed or timed out "
                               "(its error, if any, is printed above)") from None
        total = slot[0].clone()
        for r in range(1, self.procs):
            total += slot[r]
        o = 0
        for p in self.params:
            n = p.numel()
            p.grad = total[o:o + n].view_as(p).clone()
            o += n
        return list(total[o:])

    def check_replicas(self):
        """Raises in rank 0 unless every rank ends with bit-identical parameters."""
        if self.procs == 1:
            return
        slot = self.buf[0]
        self.barrier.wait()       # nobody still reads slot 0 of the last steps
        slot[self.rank, :self.numel].copy_(torch.cat([p.detach().reshape(-1) for p in self.params]))
        self.barrier.wait()
        if self.rank == 0:
            for r in range(1, self.procs):
                if not torch.equal(slot[0, :self.numel], slot[r, :self.numel]):
                    raise RuntimeError(f"data-parallel training: rank {r} ended with other weights")


def train_vlm(net: M.Flamingo, seqs: data.Sequences, heldout: data.Sequences, args, log,
              readout: CellReadout, save_fn=None) -> WeightAverage | None:
    """The multimodal stage. Question sequences hold at least one example before the query
    and their first answer is not scored: no example shows the task yet, so that answer cannot
    be known, and scoring it teaches a lone <image> (the default caption prompt) to answer a
    question instead of captioning."""
    # The frozen LM's residual stream is large (RMS ~20 after its first layer), so a block's
    # output must be as large to matter at all. The output projections of each block start
    # at the scale of the residual stream where it sits and learn at a proportionally larger
    # rate, which is the same as training weights of the usual scale behind a fixed x`scale`
    # (folded into the exported weights).
    # Before the first layer the stream is just the token embeddings (RMS ~0.05); scaling that
    # block down as well would switch it off, so no block starts below the usual scale.
    scales = [max(1.0, x) for x in residual_rms(net, seqs)]
    out_proj = {f"xattn.{j}.{w}": scales[j] for j in range(len(net.xattn))
                for w in ("attn.o_proj.weight", "mlp.down_proj.weight")}
    with torch.no_grad():
        for n, p in net.named_parameters():
            if n in out_proj:
                p.mul_(out_proj[n])
    print("LM residual RMS at the gated blocks:", [round(x, 2) for x in scales])
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    named += [(f"readout.{n}", p) for n, p in readout.named_parameters()]
    params = [p for _, p in named]
    average = WeightAverage(named, args.average) if args.average else None
    gates = [p for n, p in named if n.endswith("_gate")]
    decay = [p for n, p in named if p.ndim >= 2 and n not in out_proj]
    no_decay = [p for n, p in named if p.ndim < 2 and not n.endswith("_gate")]
    # The gates start at 0 and hold back every gradient into the blocks until they open, so
    # they get a larger step; tanh keeps them bounded.
    groups = [{"params": decay, "weight_decay": 0.01, "mult": 1.0},
              *({"params": [p], "weight_decay": 0.0, "mult": out_proj[n]}
                for n, p in named if n in out_proj),
              {"params": no_decay, "weight_decay": 0.0, "mult": 1.0},
              {"params": gates, "weight_decay": 0.0, "mult": args.gate_lr_mult}]
    steps, lr = args.steps, args.lr
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98))
    rng = random.Random(f"{args.seed}/vlm")
    tasks, weights = zip(*TASK_WEIGHTS.items())
    with DataParallel(params, args.vlm_procs) as dp:
        bar = tqdm(range(steps), desc="resampler + xattn", dynamic_ncols=True, disable=dp.rank > 0)
        ema = {}
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps, lr, args.warmup) * g["mult"]
            task = rng.choices(tasks, weights)[0]
            size = args.batch if task == "caption" else args.qa_batch
            ids, targets, feats, counts, cells = seqs.batch(rng, task, size,
                                                            min_pairs=1 if task == "caption" else 2)
            if task != "caption":
                first = torch.cumsum((ids[:, 1:] == net.image_token).long(), 1) == 1
                targets = targets.masked_fill(first, -100)
            opt.zero_grad(set_to_none=True)
            # This process's rows of the batch (all of them with one process); the losses are
            # divided by the whole batch's counts so that the shards' gradients add up to the
            # batch's.
            lo, hi = dp.rank * size // dp.procs, (dp.rank + 1) * size // dp.procs
            i0, i1 = sum(counts[:lo]), sum(counts[:hi])
            vis = net.resampler(feats[i0:i1])
            logits = net(ids[lo:hi], data.scatter_media(vis, counts[lo:hi]))
            lm_loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                      targets[lo:hi].reshape(-1), ignore_index=-100,
                                      reduction="sum") / (targets != -100).sum()
            cell_loss, _ = readout.loss_and_accuracy(vis, cells[i0:i1], images=sum(counts))
            (lm_loss + args.readout_weight * cell_loss).backward()
            if dp.procs > 1:
                lm_loss, cell_loss = dp.all_reduce(step, lm_loss.detach(), cell_loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if dp.rank > 0:
                continue
            if average is not None:
                average.update(step)
            log.append({"phase": "vlm", "step": step, "task": task,
                        "loss": lm_loss.item(), "cell_loss": cell_loss.item()})
            for key, value in ((task, lm_loss.item()), ("cells", cell_loss.item())):
                ema[key] = value if key not in ema else 0.9 * ema[key] + 0.1 * value
            bar.set_postfix({t[:3]: f"{v:.3f}" for t, v in ema.items()})
            if args.eval_every and (step + 1) % args.eval_every == 0:
                # The weights that get exported; the other ranks wait meanwhile, so the live
                # weights are evaluated only when asked (--eval-live).
                kinds = [] if average is None else ["averaged"]
                if average is None or args.eval_live:
                    kinds.append("live")
                for kind in kinds:
                    with WeightAverage.applied(average if kind == "averaged" else None):
                        acc = answer_accuracy(net, heldout, readout)
                        gate_text = " ".join(f"{float(torch.tanh(b.attn_gate)):.2f}/"
                                             f"{float(torch.tanh(b.ff_gate)):.2f}" for b in net.xattn)
                    log.append({"phase": "vlm-eval-average" if kind == "averaged" else "vlm-eval",
                                "step": step + 1, **acc})
                    tqdm.write(f"step {step + 1}: {kind} weights, held-out answer accuracy "
                               "(teacher-forced, last pair) " +
                               " ".join(f"{k} {v:.3f}" for k, v in acc.items()) +
                               f" | tanh(gates) {gate_text}")
            if save_fn is not None and (step + 1) % args.save_every == 0:
                save_fn(step + 1, average)
        dp.check_replicas()
    return average


@torch.no_grad()
def answer_accuracy(net: M.Flamingo, heldout: data.Sequences, readout: CellReadout,
                    n: int = 256) -> dict[str, float]:
    """Teacher-forced accuracy on the last pair of 3-pair held-out sequences: for the question
    tasks, the whole answer right; for captions, the fraction of caption tokens right and the
    fraction of captions entirely right; and the fraction of caption images whose nine cells
    the readout probe reads entirely right from the visual tokens."""
    net.eval()
    rng = random.Random("answer-accuracy")
    res = {}
    for task in TASK_WEIGHTS:
        ids, targets, feats, counts, cells = heldout.batch(rng, task, n,
                                                           max_pairs=3 if task != "caption" else 1)
        if task != "caption":
            while min(counts) < 3:        # one pair count per batch: redraw until it is 3
                ids, targets, feats, counts, cells = heldout.batch(rng, task, n, max_pairs=3)
        vis = net.resampler(feats)
        logits = net(ids, data.scatter_media(vis, counts))[:, :-1]
        last = torch.cumsum((ids[:, 1:] == net.image_token).long(), 1) == torch.tensor(counts)[:, None]
        scored = last & (targets != -100) & (targets != heldout.tok.eoc)
        hit = (logits.argmax(-1) == targets) | ~scored
        res[task] = (float(hit[scored].float().mean()) if task == "caption"
                     else float(hit.all(1).float().mean()))
        if task == "caption":
            # Every token right under teacher forcing is exactly what greedy decoding outputs.
            res["caption_exact"] = float(hit.all(1).float().mean())
            res["cells_read"] = readout.loss_and_accuracy(vis, cells)[1]
    net.train()
    return res


def smooth_plot(ax, pts, label):
    if not pts:
        return
    x, y = np.array(pts).T
    k = max(1, len(y) // 40)
    ax.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), label=label)


def plot(log, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ax, phase, title in ((axes[0], "lm", "1. LLaMA on text only"),
                             (axes[1], "vision", "2. NFNet per-cell pretraining"),
                             (axes[2], "vlm", "3. resampler + gated xattn (LM, NFNet frozen)")):
        for task in (*TASK_WEIGHTS, "cells"):
            smooth_plot(ax, [(r["step"], r["loss"]) for r in log
                             if r["phase"] == phase and r["task"] == task], task)
        if phase == "vlm":
            smooth_plot(ax, [(r["step"], r["cell_loss"]) for r in log
                             if r["phase"] == phase and "cell_loss" in r], "cell readout")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (moving average)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@torch.no_grad()
def greedy(net: M.Flamingo, tok, prompt_ids: list[int], vis: torch.Tensor, max_new: int = 64):
    """Greedy continuation; stops at <|endofchunk|> or </s> (not returned)."""
    ids = list(prompt_ids)
    out = []
    media = vis.unsqueeze(0)
    for _ in range(max_new):
        logits = net(torch.tensor([ids]), media)[0, -1]
        logits[tok.image] = -float("inf")          # the engine never generates a marker
        nxt = int(torch.argmax(logits))
        if nxt in (tok.eoc, tok.eos):
            break
        out.append(nxt)
        ids.append(nxt)
    return out


def quick_eval(net, tok, n, seed):
    """Accuracy of a few held-out answers in PyTorch, as a sanity check after training."""
    net.eval()
    rng = random.Random(f"quick-eval/{seed}")
    res = {}
    for task in ("caption", "colour", "shape", "count"):
        ok = 0
        for _ in range(n):
            shots = [scenes.sample_scene(rng, task) for _ in range(3 if task != "caption" else 1)]
            prompt = "".join(f"<image>{s.answer(task)}<|endofchunk|>" for s in shots[:-1])
            prompt += "<image>"
            pix = data.to_tensor(np.stack([np.asarray(scenes.render(s)) for s in shots]))
            vis = net.encode_images(pix)
            got = tok.decode(greedy(net, tok, tok.encode(prompt), vis)).strip()
            ok += got == shots[-1].answer(task)
        res[task] = ok / n
    net.train()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lm-threads", type=int, default=None,
                    help="threads for the text-only LM stage (default: --threads); results "
                         "depend on the thread count of each stage")
    ap.add_argument("--render-procs", type=int, default=1)
    ap.add_argument("--caption-pool", type=int, default=16000)
    ap.add_argument("--qa-pool", type=int, default=8000)
    ap.add_argument("--lm-steps", type=int, default=500)
    ap.add_argument("--lm-batch", type=int, default=16)
    ap.add_argument("--lm-lr", type=float, default=3e-3)
    ap.add_argument("--reuse-lm", action="store_true",
                    help="load OUT/lm.pt from an earlier run instead of training the LM")
    ap.add_argument("--vision-steps", type=int, default=1500)
    ap.add_argument("--vision-batch", type=int, default=48)
    ap.add_argument("--vision-lr", type=float, default=3e-3)
    ap.add_argument("--vision-eval-every", type=int, default=200)
    ap.add_argument("--reuse-vision", action="store_true",
                    help="load OUT/vision.pt from an earlier run instead of pretraining the NFNet")
    ap.add_argument("--xattn-every", type=int, default=M.XattnCfg().every,
                    help="a gated block before every N-th LM layer")
    ap.add_argument("--latents", type=int, default=M.ResamplerCfg().num_latents,
                    help="visual tokens per image out of the resampler")
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--batch", type=int, default=16, help="caption sequences per batch")
    ap.add_argument("--qa-batch", type=int, default=16, help="question sequences per batch")
    ap.add_argument("--vlm-procs", type=int, default=1,
                    help="processes for the multimodal stage, one thread each, splitting every "
                         "batch (data parallel; reproducible for a given value, but not equal "
                         "to a run with another value)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--gate-lr-mult", type=float, default=5.0)
    ap.add_argument("--readout-weight", type=float, default=1.0,
                    help="weight of the per-cell readout loss on the visual tokens (0: none)")
    ap.add_argument("--average", type=float, default=0.999,
                    help="decay of the weight average that is exported (0: export the live weights)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--save-every", type=int, default=250, help="checkpoint every N steps")
    ap.add_argument("--eval-live", action="store_true",
                    help="also evaluate the live weights, not only the averaged ones")
    ap.add_argument("--eval-every", type=int, default=500,
                    help="held-out answer accuracy every N steps (0: never)")
    ap.add_argument("--quick-eval", type=int, default=50)
    ap.add_argument("--plot", default=None, help="loss-curve PNG (default OUT/loss.png)")
    args = ap.parse_args()
    if not 1 <= args.vlm_procs <= min(args.batch, args.qa_batch):
        ap.error(f"--vlm-procs must be between 1 and the batch size, not {args.vlm_procs}")

    # Subnormal floats appear as the multimodal stage trains, and each costs a microcode
    # assist: with the weights of step 6 000 a step took 1.9x the CPU time it takes with them
    # flushed to zero, and a run slowed from 4 to under 2 steps/s. Set before any worker
    # thread or forked process exists: they inherit it.
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    timings = {}

    tok_path = os.path.join(args.out, "tokenizer.model")
    tokenization.train_tokenizer(tok_path, args.seed)
    tok = tokenization.Tokenizer(tok_path)

    pools = {}
    for name, n in (("caption", args.caption_pool), ("qa", args.qa_pool)):
        pools[name] = data.load_or_render_pool(
            os.path.join(args.out, "cache"), args.seed, name, n, args.render_procs,
            lambda it, **kw: tqdm(it, desc=f"render {name} pool", dynamic_ncols=True, **kw))
    timings["data_s"] = time.time() - t0
    seqs = data.Sequences(tok, pools, MAX_PAIRS)

    cfg = M.DemoCfg()
    cfg.lm.vocab_size = len(tok)
    cfg.xattn.every = args.xattn_every
    cfg.resampler.num_latents = args.latents
    net = M.Flamingo(cfg, tok.image)
    log = []
    t1 = time.time()
    lm_path = os.path.join(args.out, "lm.pt")
    if args.reuse_lm and os.path.exists(lm_path):
        saved = torch.load(lm_path)
        net.lm.load_state_dict(saved["state_dict"])
        log += saved["log"]
        print(f"reusing the text-only LM of {lm_path}")
    else:
        torch.set_num_threads(args.lm_threads or args.threads)
        train_lm(net.lm, seqs, args, log)
        torch.set_num_threads(args.threads)
        torch.save({"state_dict": net.lm.state_dict(), "log": list(log)}, lm_path)
    timings["lm_s"] = time.time() - t1
    for p in net.lm.parameters():
        p.requires_grad_(False)

    t_v = time.time()
    vis_path = os.path.join(args.out, "vision.pt")
    heldout_imgs, heldout_facts = vision_pretrain.heldout_scenes(600)
    if args.reuse_vision and os.path.exists(vis_path):
        saved = torch.load(vis_path)
        net.vision.load_state_dict(saved["state_dict"])
        log += saved["log"]
        vision_acc = saved["accuracy"]
        print(f"reusing the pretrained NFNet of {vis_path}")
    else:
        vlog = []
        vision_acc = vision_pretrain.pretrain(net.vision, [pools["caption"], pools["qa"]],
                                              (heldout_imgs, heldout_facts), args, vlog)
        log += vlog
        torch.save({"state_dict": net.vision.state_dict(), "log": vlog, "accuracy": vision_acc},
                   vis_path)
    print("NFNet per-cell accuracy on 600 held-out scenes:",
          {k: round(v, 4) for k, v in vision_acc.items()})
    timings["vision_s"] = time.time() - t_v
    for p in net.vision.parameters():
        p.requires_grad_(False)
    t_f = time.time()
    feats = {name: vision_pretrain.features(
        net.vision, pools[name][0],
        progress=lambda it: tqdm(it, desc=f"features {name} pool", dynamic_ncols=True))
        for name in pools}
    timings["features_s"] = time.time() - t_f
    seqs = data.Sequences(tok, pools, MAX_PAIRS, feats)
    ho_pools = {"caption": (None, [f for i, f in enumerate(heldout_facts) if i % 2 == 0]),
                "qa": (None, [f for i, f in enumerate(heldout_facts) if i % 2 == 1])}
    ho_feats = vision_pretrain.features(net.vision, heldout_imgs)
    heldout = data.Sequences(tok, ho_pools, MAX_PAIRS, {"caption": ho_feats[0::2], "qa": ho_feats[1::2]})

    def save(step, average):
        # The exported weights are the averaged ones; the live ones are kept beside them.
        live = {k: v.clone() for k, v in net.state_dict().items()}
        with WeightAverage.applied(average):
            weights = {k: v.clone() for k, v in net.state_dict().items()}
        torch.save({"cfg": asdict(cfg), "state_dict": weights, "live_state_dict": live,
                    "tokens": {"bos": tok.bos, "eos": tok.eos, "pad": tok.pad, "image": tok.image,
                               "endofchunk": tok.eoc},
                    "args": vars(args), "timings": timings, "step": step},
                   os.path.join(args.out, "checkpoint.pt"))
        with open(os.path.join(args.out, "losses.json"), "w") as f:
            json.dump({"timings": timings, "log": log}, f)

    t2 = time.time()
    # Seeded here so that the probe starts the same whether or not the stages before it ran.
    torch.manual_seed(args.seed)
    average = train_vlm(net, seqs, heldout, args, log,
                        CellReadout(cfg.resampler.dim, cfg.resampler.heads), save)
    timings["vlm_s"] = time.time() - t2
    timings["total_s"] = time.time() - t0
    timings["total_cpu_s"] = time.process_time() - c0
    save(args.steps, average)
    if average is not None:
        average.swap()         # the quick evaluation below sees what export.py exports
    with open(os.path.join(args.out, "losses.json"), "w") as f:
        json.dump({"timings": timings, "log": log}, f)
    plot(log, args.plot or os.path.join(args.out, "loss.png"))
    gates = {f"xattn.{j}": (round(float(torch.tanh(b.attn_gate)), 3),
                            round(float(torch.tanh(b.ff_gate)), 3))
             for j, b in enumerate(net.xattn)}
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    print("tanh(gates) attn, ff:", gates)
    if args.quick_eval:
        print("quick held-out accuracy (PyTorch, 2-shot for questions):",
              quick_eval(net, tok, args.quick_eval, args.seed))


if __name__ == "__main__":
    main()
