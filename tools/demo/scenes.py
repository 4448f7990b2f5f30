"""Procedural scenes for the demo model: images, captions and question answers.

Every scene is a 3x3 layout holding 1-4 objects in distinct cells. An object has a shape, a
colour and a size; it is jittered inside its cell, slightly rotated, and large objects may
overlap their neighbours. Backgrounds are unsaturated gradients with pixel noise so that the
eight object colours stay distinguishable from them.

The caption is a deterministic function of the scene, which is what makes per-attribute
accuracy measurable (see `parse_caption`). Objects with the same size, colour and shape form
one group; groups are listed in reading order of their first cell, each led by where it is:

    in the top left a large red circle, in the center and bottom right two small blue stars

Position comes first because it is what ties a phrase to one object: once the text has named
the cell, the colour, shape and size that follow are looked up at that cell. Written the other
way round ("a large red circle in the top left"), the model has to pick the next object in
reading order silently and keep its attributes together with nothing in the text to anchor
them, and in scenes of 3-4 objects it gave objects a neighbour's colour or shape.

Question tasks (answers written without any task word):
  colour  the colour of the only large object of the scene  ("red")
  shape   the shape of the only large object of the scene   ("circle")
  count   the number of objects in the scene                ("three")

Everything is driven by one `random.Random`, so a seed fixes the scene, its rendering and its
text bit for bit.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 96          # NFNet stride 32 -> a 3x3 feature grid, one token per layout cell
SUPERSAMPLE = 4          # object masks are drawn 4x larger and box-filtered for anti-aliasing

SHAPES = ["circle", "square", "triangle", "star", "cross", "diamond", "hexagon"]
PLURAL = {s: s + "s" for s in SHAPES}
PLURAL["cross"] = "crosses"

# Reference RGB of each colour; rendering jitters hue/value slightly around it.
COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 130, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 50),
    "cyan": (30, 210, 220),
    "blue": (35, 60, 220),
    "purple": (140, 40, 190),
    "pink": (250, 120, 190),
}
COLOUR_NAMES = list(COLOURS)
SIZES = ["small", "large"]
SIZE_PX = {"small": (12.0, 15.0), "large": (24.0, 28.0)}   # bounding diameter in pixels

POSITIONS = ["top left", "top middle", "top right",
             "middle left", "center", "middle right",
             "bottom left", "bottom middle", "bottom right"]
NUMBERS = ["zero", "one", "two", "three", "four"]
COUNT_WORDS = ["", "a", "two", "three", "four"]      # determiners used inside captions

TASKS = ["caption", "colour", "shape", "count"]


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    cell: int            # 0..8, row-major over the 3x3 layout


@dataclass
class Scene:
    objects: list[Obj]
    seed: int            # seed of the rendering (background, jitter, noise)

    def caption(self) -> str:
        return caption_of(self.objects)

    def answer(self, task: str) -> str:
        if task == "caption":
            return self.caption()
        if task == "count":
            return NUMBERS[len(self.objects)]
        large = [o for o in self.objects if o.size == "large"]
        if len(large) != 1:
            raise ValueError(f"task {task} needs exactly one large object, scene has {len(large)}")
        return large[0].colour if task == "colour" else large[0].shape


def caption_of(objects: list[Obj]) -> str:
    groups: dict[tuple[str, str, str], list[int]] = {}
    for o in sorted(objects, key=lambda o: o.cell):
        groups.setdefault((o.size, o.colour, o.shape), []).append(o.cell)
    phrases = []
    for (size, colour, shape), cells in groups.items():
        n = len(cells)
        noun = shape if n == 1 else PLURAL[shape]
        where = " and ".join(POSITIONS[c] for c in cells)
        phrases.append(f"in the {where} {COUNT_WORDS[n]} {size} {colour} {noun}")
    return ", ".join(phrases)


def parse_caption(text: str) -> list[Obj] | None:
    """Inverse of caption_of; None when the text is not in the caption grammar."""
    singular = {v: k for k, v in PLURAL.items()}
    objs = []
    for phrase in text.strip().split(", "):
        words = phrase.split(" ")
        if len(words) < 6 or words[:2] != ["in", "the"]:
            return None
        where, head = " ".join(words[2:-4]), words[-4:]
        if head[0] not in COUNT_WORDS[1:]:
            return None
        n = COUNT_WORDS.index(head[0])
        size, colour, noun = head[1], head[2], head[3]
        shape = noun if n == 1 else singular.get(noun)
        if size not in SIZES or colour not in COLOURS or shape not in SHAPES:
            return None
        cells = where.split(" and ")
        if len(cells) != n or any(c not in POSITIONS for c in cells):
            return None
        objs += [Obj(shape, colour, size, POSITIONS.index(c)) for c in cells]
    return objs


# ----------------------------------------------------------------------------- sampling

def _random_object(rng: random.Random, cell: int, size: str | None = None) -> Obj:
    return Obj(rng.choice(SHAPES), rng.choice(COLOUR_NAMES), size or rng.choice(SIZES), cell)


def sample_scene(rng: random.Random, task: str = "caption") -> Scene:
    """A scene that has a well-defined answer for `task`."""
    if task in ("colour", "shape"):
        n = rng.randint(1, 3)
        cells = rng.sample(range(9), n)
        objs = [_random_object(rng, cells[0], "large")]
        objs += [_random_object(rng, c, "small") for c in cells[1:]]
    else:
        n = rng.randint(1, 4)
        cells = rng.sample(range(9), n)
        objs = []
        for c in cells:
            # Repeats are rare by chance (1 in 112), so copy an earlier object's look often
            # enough for captions to teach "two small green squares".
            if objs and rng.random() < 0.35:
                src = rng.choice(objs)
                objs.append(Obj(src.shape, src.colour, src.size, c))
            else:
                objs.append(_random_object(rng, c))
    return Scene(objs, rng.getrandbits(31))


# ----------------------------------------------------------------------------- rendering

def _shape_points(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple]:
    def poly(k, radii, phase):
        pts = []
        for i in range(k * len(radii)):
            a = phase + rot + 2 * math.pi * i / (k * len(radii))
            rr = r * radii[i % len(radii)]
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts

    if shape == "square":
        return poly(4, [1.0], math.pi / 4)             # corners on the circle, sides axis-aligned
    if shape == "diamond":
        return [(cx + r * 0.75 * math.cos(a + rot), cy + r * math.sin(a + rot))
                for a in (0, math.pi / 2, math.pi, 3 * math.pi / 2)]
    if shape == "triangle":
        return poly(3, [1.0], -math.pi / 2)
    if shape == "star":
        return poly(5, [1.0, 0.45], -math.pi / 2)
    if shape == "hexagon":
        return poly(6, [1.0], 0.0)
    if shape == "cross":
        w = 0.36
        base = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w),
                (-1, w), (-1, -w), (-w, -w)]
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in base]
    raise ValueError(shape)


def _jitter_colour(rng: random.Random, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    scale = rng.uniform(0.85, 1.1)
    return tuple(int(max(0, min(255, v * scale + rng.uniform(-12, 12)))) for v in rgb)


def _background(rng: random.Random, size: int) -> np.ndarray:
    """Linear gradient between two unsaturated colours, [size, size, 3] float32 in 0..255.
    Unsaturated so that no background is mistaken for an object colour."""
    base = rng.uniform(0.12, 0.88)
    tint = np.array([rng.uniform(-0.06, 0.06) for _ in range(3)], dtype=np.float32)
    c0 = np.clip(base + tint, 0, 1)
    c1 = np.clip(c0 + rng.uniform(-0.18, 0.18), 0, 1)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    t = ramp[None, :] * math.cos(angle) + ramp[:, None] * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (c0 * 255.0) + t[..., None] * ((c1 - c0) * 255.0)


def _object_alpha(o: Obj, cx: float, cy: float, r: float, rot: float):
    """Anti-aliased coverage of one object: (alpha [h,w] in 0..1, x0, y0) of its pixel box."""
    x0, y0 = int(math.floor(cx - r)) - 1, int(math.floor(cy - r)) - 1
    w = h = int(math.ceil(2 * r)) + 3
    s = SUPERSAMPLE
    mask = Image.new("L", (w * s, h * s), 0)
    draw = ImageDraw.Draw(mask)
    lx, ly = cx - x0, cy - y0
    if o.shape == "circle":
        draw.ellipse([(lx - r) * s, (ly - r) * s, (lx + r) * s, (ly + r) * s], fill=255)
    else:
        draw.polygon([(x * s, y * s) for x, y in _shape_points(o.shape, lx, ly, r, rot)],
                     fill=255)
    alpha = np.asarray(mask.resize((w, h), Image.BOX), dtype=np.float32) / 255.0
    return alpha, x0, y0


def render(scene: Scene, size: int = IMAGE_SIZE, jpeg_quality: int | None = None) -> Image.Image:
    rng = random.Random(scene.seed)
    img = _background(rng, size)
    cell = size / 3
    # Large objects first so small ones stay visible where they overlap.
    for o in sorted(scene.objects, key=lambda o: o.size != "large"):
        row, col = divmod(o.cell, 3)
        lo, hi = SIZE_PX[o.size]
        r = rng.uniform(lo, hi) / 2
        slack = max(cell / 2 - r, 0) * 0.6 + (3.0 if o.size == "large" else 0.0)
        cx = (col + 0.5) * cell + rng.uniform(-slack, slack)
        cy = (row + 0.5) * cell + rng.uniform(-slack, slack)
        rot = math.radians(rng.uniform(-10, 10))
        fill = np.array(_jitter_colour(rng, COLOURS[o.colour]), dtype=np.float32)
        alpha, x0, y0 = _object_alpha(o, cx, cy, r, rot)
        # Clip the object's box to the image (jitter may push it over the border).
        ax0, ay0 = max(0, -x0), max(0, -y0)
        ax1 = min(alpha.shape[1], size - x0)
        ay1 = min(alpha.shape[0], size - y0)
        a = alpha[ay0:ay1, ax0:ax1, None]
        region = img[y0 + ay0:y0 + ay1, x0 + ax0:x0 + ax1]
        region[...] = region * (1 - a) + fill * a
    noise_rng = np.random.default_rng(rng.getrandbits(32))
    img += noise_rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(2, 9)
    out = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.6)))
    if jpeg_quality is not None:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=jpeg_quality)
        buf.seek(0)
        out = Image.open(buf).convert("RGB")
    return out


def text_corpus(rng: random.Random, n: int) -> list[str]:
    """Answers of every task, for training the tokenizer."""
    out = []
    for _ in range(n):
        task = rng.choice(TASKS)
        out.append(sample_scene(rng, task).answer(task))
    return out


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Render a few scenes with their captions.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--out", default="/tmp/scenes")
    a = ap.parse_args()
    import os
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    for i in range(a.n):
        task = TASKS[i % 4]
        sc = sample_scene(rng, task)
        render(sc).save(f"{a.out}/{i:03d}.png")
        print(f"{i:03d} {task:8s} {sc.answer(task)}   | {sc.caption()}")
