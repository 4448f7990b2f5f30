"""Stage 1 of the demo recipe: supervised pretraining of the NFNet on the rendered scenes.

As in Flamingo, the vision encoder is trained on its own and then frozen. Here the objective is
per cell: the NFNet's stage-3 output is a 3x3 grid that lines up with the scenes' 3x3 layout,
so a linear head on each grid token predicts the colour, shape and size of the object in that
cell (or "none"), and which cell the token is. The last target makes the features carry
absolute position, which the resampler (no position embeddings, as in OpenFlamingo) cannot
recover otherwise. The heads are thrown away after training.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import data
import scenes

CELLS = len(scenes.POSITIONS)
# (name, classes incl. "none" as the last class)
TARGETS = (("colour", len(scenes.COLOUR_NAMES) + 1), ("shape", len(scenes.SHAPES) + 1),
           ("size", len(scenes.SIZES) + 1), ("cell", CELLS))


def cell_targets(facts) -> np.ndarray:
    """[N, 9, 4] int64: colour, shape, size ("none" = last class) and cell index per cell."""
    out = np.empty((len(facts), CELLS, 4), dtype=np.int64)
    out[:, :, :3] = data.cell_facts(facts)
    out[:, :, 3] = np.arange(CELLS)
    return out


class CellHeads(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, n) for _, n in TARGETS)

    def forward(self, grid):                 # [N, C, 3, 3] -> list of [N, 9, classes]
        x = self.norm(grid.flatten(2).transpose(1, 2))
        return [h(x) for h in self.heads]


def _loss_and_hits(heads, grid, y):
    logits = heads(grid)
    loss = sum(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), y[..., k].reshape(-1))
               for k, lg in enumerate(logits))
    hits = [(lg.argmax(-1) == y[..., k]) for k, lg in enumerate(logits)]
    return loss, hits


@torch.no_grad()
def accuracy(vision, heads, images_u8, facts, batch=100) -> dict[str, float]:
    """Per-cell accuracy of each target, and of cells holding an object (colour/shape/size)."""
    vision.eval()
    y_all = torch.from_numpy(cell_targets(facts))
    hits, occupied = [], []
    for s in range(0, len(facts), batch):
        y = y_all[s:s + batch]
        _, h = _loss_and_hits(heads, vision(data.to_tensor(images_u8[s:s + batch])), y)
        hits.append(torch.stack(h, -1))
        occupied.append(y[..., 2] != len(scenes.SIZES))
    vision.train()
    hits, occupied = torch.cat(hits), torch.cat(occupied)
    res = {name: float(hits[..., k].float().mean()) for k, (name, _) in enumerate(TARGETS)}
    for k, (name, _) in enumerate(TARGETS[:3]):
        res[f"{name}|object"] = float(hits[..., k][occupied].float().mean())
    res["scene_all_cells"] = float(hits.all(-1).all(-1).float().mean())
    return res


def pretrain(vision, pools, heldout, args, log) -> dict[str, float]:
    """Trains `vision` in place on every scene of `pools` (list of (images, facts))."""
    images = np.concatenate([p[0] for p in pools])
    y_all = torch.from_numpy(cell_targets([f for p in pools for f in p[1]]))
    heads = CellHeads(vision_dim(vision))
    params = list(vision.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=args.vision_lr, weight_decay=1e-4)
    rng = np.random.default_rng([args.seed, 1])
    order = rng.permutation(len(images))
    pos = 0
    bar = tqdm(range(args.vision_steps), desc="NFNet per-cell pretraining", dynamic_ncols=True)
    ema = None
    for step in bar:
        p = step / max(1, args.vision_steps)
        lr = args.vision_lr * min(1.0, (step + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + args.vision_batch > len(order):
            order, pos = rng.permutation(len(images)), 0
        idx = np.sort(order[pos:pos + args.vision_batch])
        pos += args.vision_batch
        x = data.to_tensor(images[idx])
        # Horizontal flips would move objects between cells and swap the left/right words,
        # so the only augmentation is the pool's own variety (jitter, noise, blur, JPEG).
        loss, hits = _loss_and_hits(heads, vision(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        log.append({"phase": "vision", "step": step, "task": "cells", "loss": loss.item()})
        bar.set_postfix(loss=f"{ema:.3f}",
                        col=f"{float(hits[0].float().mean()):.2f}",
                        shp=f"{float(hits[1].float().mean()):.2f}")
        if args.vision_eval_every and (step + 1) % args.vision_eval_every == 0:
            acc = accuracy(vision, heads, *heldout)
            tqdm.write(f"vision step {step + 1}: held-out " +
                       " ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    return accuracy(vision, heads, *heldout)


def vision_dim(vision) -> int:
    return vision.stages[-1][-1].conv3.weight.shape[0]


@torch.no_grad()
def features(vision, images_u8, batch=200, progress=None) -> np.ndarray:
    """[N, 9, C] float32 stage-3 tokens of every image (the frozen encoder's output)."""
    vision.eval()
    out = []
    it = range(0, len(images_u8), batch)
    for s in (progress(it) if progress else it):
        f = vision(data.to_tensor(images_u8[s:s + batch]))
        out.append(f.flatten(2).transpose(1, 2).numpy())
    return np.concatenate(out)


def heldout_scenes(n: int, seed: str = "vision-heldout"):
    """Fresh scenes (both pools' kinds) that training never draws."""
    rng = random.Random(seed)
    facts = [scenes.sample_scene(rng, "caption" if i % 2 == 0 else "colour") for i in range(n)]
    images = np.stack([np.asarray(scenes.render(sc)) for sc in facts])
    return images, facts
