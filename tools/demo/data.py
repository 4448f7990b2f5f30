"""Training data for the demo: pools of rendered scenes and interleaved few-shot sequences.

A sequence is 1..K pairs `<image>{answer}<|endofchunk|>` that all share one task, preceded by
BOS. The image pixels are looked up by the pool index of each pair's scene."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
from typing import NamedTuple

import numpy as np
import torch

import scenes

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Tasks answered on each pool: the caption pool (any scene) and the "one large object" pool.
POOL_OF_TASK = {"caption": "caption", "count": "caption", "colour": "qa", "shape": "qa"}


def _render_chunk(args):
    seed, task, start, n, jpeg_frac = args
    out = np.empty((n, scenes.IMAGE_SIZE, scenes.IMAGE_SIZE, 3), dtype=np.uint8)
    facts = []
    for i in range(n):
        # One rng per scene: any chunking of the pool renders the same scenes.
        rng = random.Random(f"{seed}/{task}/{start + i}")
        sc = scenes.sample_scene(rng, "caption" if task == "caption" else "colour")
        q = rng.randint(40, 95) if rng.random() < jpeg_frac else None
        out[i] = np.asarray(scenes.render(sc, jpeg_quality=q))
        facts.append(sc)
    return out, facts


def render_pool(seed: int, task: str, n: int, procs: int = 1, jpeg_frac: float = 0.15,
                progress=None):
    """Render `n` scenes of pool `task` ("caption" or "qa"); deterministic in `seed`."""
    chunk = 500
    jobs = [(seed, task, s, min(chunk, n - s), jpeg_frac) for s in range(0, n, chunk)]
    images, facts = [], []
    if procs > 1:
        with mp.get_context("fork").Pool(procs) as pool:
            it = pool.imap(_render_chunk, jobs)
            for im, fa in (progress(it, total=len(jobs)) if progress else it):
                images.append(im)
                facts += fa
    else:
        for job in (progress(jobs) if progress else jobs):
            im, fa = _render_chunk(job)
            images.append(im)
            facts += fa
    return np.concatenate(images), facts


def load_or_render_pool(cache_dir: str, seed: int, task: str, n: int, procs: int, progress):
    path = os.path.join(cache_dir, f"pool-{task}-s{seed}-n{n}.npz")
    if os.path.exists(path):
        z = np.load(path, allow_pickle=True)
        return z["images"], list(z["facts"])
    images, facts = render_pool(seed, task, n, procs, progress=progress)
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(path, images=images, facts=np.array(facts, dtype=object))
    return images, facts


def to_tensor(images_u8: np.ndarray) -> torch.Tensor:
    x = (images_u8.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def cell_facts(facts) -> np.ndarray:
    """[N, 9, 3] int64: colour, shape and size of the object in each cell of the 3x3 layout,
    "none" being the last class of each."""
    out = np.empty((len(facts), len(scenes.POSITIONS), 3), dtype=np.int64)
    out[:] = (len(scenes.COLOUR_NAMES), len(scenes.SHAPES), len(scenes.SIZES))
    for i, sc in enumerate(facts):
        for o in sc.objects:
            out[i, o.cell] = (scenes.COLOUR_NAMES.index(o.colour), scenes.SHAPES.index(o.shape),
                              scenes.SIZES.index(o.size))
    return out


class Batch(NamedTuple):
    ids: torch.Tensor            # [B, S] token ids, BOS first, padded
    targets: torch.Tensor        # [B, S-1] next-token targets, -100 where not scored
    media: torch.Tensor | None   # pixels [n, 3, H, W] or features [n, v, D] in marker order
    counts: list                 # images per sequence
    cells: torch.Tensor | None   # [n, 9, 3] what each image's cells hold (cell_facts)


class Sequences:
    """Samples batches of same-task interleaved sequences from the pools."""

    def __init__(self, tok, pools: dict, max_pairs: dict, features: dict | None = None):
        self.tok = tok
        self.pools = pools                  # pool name -> (images u8, facts)
        # pool name -> [N, v, D] frozen vision features; batches then carry these, not pixels
        self.features = features
        self.max_pairs = max_pairs          # task -> K
        self.cells = {name: cell_facts(f) for name, (_, f) in pools.items()}
        self.answer_ids = {}
        for task, pool in POOL_OF_TASK.items():
            facts = pools[pool][1]
            self.answer_ids[task] = [tok.sp.encode(sc.answer(task)) for sc in facts]

    def batch(self, rng: random.Random, task: str, size: int, with_images: bool = True,
              max_pairs: int | None = None, min_pairs: int = 1):
        pool = POOL_OF_TASK[task]
        images, facts = self.pools[pool]
        if self.features is not None:
            images = self.features[pool]
        seqs, idxs = [], []
        # One pair count per batch keeps the rows of similar length (little padding).
        k = rng.randint(min_pairs, max_pairs or self.max_pairs[task])
        for _ in range(size):
            chosen = [rng.randrange(len(facts)) for _ in range(k)]
            ids = [self.tok.bos]
            for c in chosen:
                ids += [self.tok.image] + self.answer_ids[task][c] + [self.tok.eoc]
            seqs.append(ids)
            idxs.append(chosen)
        return self.collate(seqs, idxs, images if with_images else None, self.cells[pool])

    def collate(self, seqs, idxs, images, cells) -> Batch:
        tok = self.tok
        s = max(len(x) for x in seqs)
        ids = torch.full((len(seqs), s), tok.pad, dtype=torch.long)
        for i, x in enumerate(seqs):
            ids[i, :len(x)] = torch.tensor(x)
        targets = ids[:, 1:].clone()
        ignore = (targets == tok.pad) | (targets == tok.image)
        targets[ignore] = -100
        media = cell_targets = None
        counts = [len(c) for c in idxs]
        if images is not None:
            flat = [c for chosen in idxs for c in chosen]
            media = (torch.from_numpy(images[flat]) if images.dtype == np.float32
                     else to_tensor(images[flat]))
            cell_targets = torch.from_numpy(cells[flat])
        return Batch(ids, targets, media, counts, cell_targets)


def scatter_media(vis: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """[sum(counts), n, D] visual tokens -> [B, max(counts), n, D] in marker order."""
    b, t = len(counts), max(counts)
    media = vis.new_zeros(b, t, vis.shape[1], vis.shape[2])
    o = 0
    for i, c in enumerate(counts):
        media[i, :c] = vis[o:o + c]
        o += c
    return media
