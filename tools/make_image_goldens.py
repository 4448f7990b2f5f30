#!/usr/bin/python3
"""Generates the image decode/preprocess golden files in tests/data/images/.

Run with Debian's interpreter (it has python3-pil 9.4 and numpy):

    /usr/bin/python3 tools/make_image_goldens.py [--out tests/data/images]

Test images are synthetic and deterministic. PNGs are written by the small encoder below so
that every colour type, bit depth, filter type and Adam7 interlacing is covered (Pillow cannot
write 16-bit colour or interlaced PNGs); JPEGs are written by Pillow (baseline, progressive,
4:4:4/4:2:2/4:2:0, grey, Adobe CMYK). Pillow then decodes every file and applies the
reference pipelines:

  decode      convert("RGBA") for images with alpha, convert("RGB") otherwise. Exception:
              16-bit greyscale, which Pillow opens as mode "I" and clamps to 255 on convert,
              so the golden is the high byte of each sample (what Pillow does for every other
              16-bit PNG type and what our decoder does for all of them).
  composite   Image.alpha_composite(Image.new("RGBA", size, background), rgba).convert("RGB")
              (IDEFICS' convert_to_rgb), applied to every image with alpha or a tRNS key.
  shortest    torchvision Resize(size) + CenterCrop(size) on a PIL image: the shorter side
              becomes size, the longer int(size * long / short), Image.BICUBIC, then a crop at
              int(round((side - size) / 2.0)).
  squash      timm squash / IDEFICS: resize to floor(size / crop_pct) on both sides,
              Image.BICUBIC, then the same centre crop.

Outputs: the images, raw uint8 goldens (*.u8, HWC) and manifest.json describing them.
"""

import argparse
import io
import json
import math
import os
import struct
import zlib

import numpy as np
from PIL import Image

SIZE = 32


# ----------------------------------------------------------------------------- PNG writer

def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_rows(rows, bpp):
    """Filters each row with type (row index % 5) so every unfilter path is exercised."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        ftype = y % 5
        f = bytearray(len(row))
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[ftype]
            f[i] = (row[i] - pred) & 0xFF
        out.append(ftype)
        out += f
        prev = row
    return bytes(out)


def _pack_rows(samples, depth):
    """samples: [h, w*channels] integer array -> list of packed row bytes."""
    rows = []
    for r in samples:
        if depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = len(r)
            padded = np.zeros(((n + per - 1) // per) * per, dtype=np.int64)
            padded[:n] = r
            g = padded.reshape(-1, per)
            shifts = np.array([8 - depth * (k + 1) for k in range(per)])
            rows.append((g << shifts).sum(axis=1).astype(np.uint8).tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def write_png(samples, color_type, depth, palette=None, trns=None, interlace=False):
    """samples: [h, w, ch] integer array of raw sample values (palette indices for type 3)."""
    h, w, ch = samples.shape
    bpp = max(1, ch * depth // 8)
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            data += _filter_rows(_pack_rows(sub.reshape(sub.shape[0], -1), depth), bpp)
    else:
        data = _filter_rows(_pack_rows(samples.reshape(h, -1), depth), bpp)
    out = b"\x89PNG\r\n\x1a\n"
    out += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                       1 if interlace else 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    comp = zlib.compress(data, 9)
    # Split the stream over several IDAT chunks, as real encoders do.
    step = max(1, len(comp) // 3)
    for i in range(0, len(comp), step):
        out += _chunk(b"IDAT", comp[i:i + step])
    out += _chunk(b"IEND", b"")
    return out


# ----------------------------------------------------------------------------- content

def scene(h, w, seed, maxval=255):
    """A smooth photo-like field with edges and noise, in [0, maxval], shape [h, w, 3]."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y /= max(h - 1, 1)
    x /= max(w - 1, 1)
    r = 0.5 + 0.5 * np.sin(6.0 * x + 2.0 * y + rng.uniform(0, 6))
    g = 0.5 + 0.5 * np.cos(4.0 * y - 3.0 * x + rng.uniform(0, 6))
    b = np.clip(x * y + 0.3 * (((x * 7).astype(int) + (y * 5).astype(int)) % 2), 0, 1)
    img = np.stack([r, g, b], axis=-1)
    img += rng.normal(0, 0.06, img.shape)
    # a hard-edged disc: ringing of the bicubic filter shows up at its border
    disc = (x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.05
    img[disc] = [0.95, 0.1, 0.2]
    return np.clip(np.rint(img * maxval), 0, maxval).astype(np.int64)


def alpha_field(h, w, seed, maxval=255):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.clip((x / max(w - 1, 1)) * 1.2 - 0.1 + rng.normal(0, 0.05, (h, w)), 0, 1)
    a[: max(1, h // 5)] = 0.0           # fully transparent band
    a[-max(1, h // 5):] = 1.0           # fully opaque band
    return np.rint(a * maxval).astype(np.int64)


def grey(img):
    return (img[..., 0] * 3 + img[..., 1] * 5 + img[..., 2] * 2) // 10


# ----------------------------------------------------------------------------- references

def decode_reference(im, name):
    """What our decoder must return: (channels, uint8 array)."""
    if im.mode == "I":  # 16-bit greyscale: high byte (see module docstring)
        a = np.asarray(im).astype(np.int64) >> 8
        return 3, np.repeat(a[..., None], 3, axis=-1).astype(np.uint8)
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    if has_alpha:
        return 4, np.asarray(im.convert("RGBA"))
    return 3, np.asarray(im.convert("RGB"))


def composite(im, background):
    """IDEFICS' convert_to_rgb with a configurable background colour."""
    if im.mode == "I":
        a = (np.asarray(im).astype(np.int64) >> 8).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    # IDEFICS returns every mode "RGB" image unchanged, so it ignores a tRNS colour key on
    # RGB PNGs while honouring it on grey and palette ones; we composite all of them.
    rgba = im.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, tuple(background) + (255,))
    return Image.alpha_composite(bg, rgba).convert("RGB")


def py_round_half_even(v):
    return int(round(v))


def shortest_crop(rgb, size):
    w, h = rgb.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long_ / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    r = rgb.resize((nw, nh), Image.BICUBIC)
    top = py_round_half_even((nh - size) / 2.0)
    left = py_round_half_even((nw - size) / 2.0)
    return r.crop((left, top, left + size, top + size))


def squash(rgb, size, crop_pct):
    s = math.floor(size / crop_pct)
    r = rgb.resize((s, s), Image.BICUBIC)
    off = py_round_half_even((s - size) / 2.0)
    return r.crop((off, off, off + size, off + size))


# ----------------------------------------------------------------------------- the set

def png_cases():
    cases = []

    def add(name, data):
        cases.append((name, data))

    img = scene(23, 37, 1)
    add("rgb8_37x23.png", write_png(img, 2, 8))
    img = scene(30, 40, 2)
    a = alpha_field(30, 40, 3)
    add("rgba8_40x30.png", write_png(np.concatenate([img, a[..., None]], -1), 6, 8))
    add("grey8_33x47.png", write_png(grey(scene(47, 33, 4))[..., None], 0, 8))
    g = grey(scene(31, 29, 5))
    a = alpha_field(31, 29, 6)
    add("greyalpha8_29x31.png", write_png(np.stack([g, a], -1), 4, 8))
    # 4-bit palette with a partial tRNS (entries beyond it stay opaque)
    rng = np.random.RandomState(7)
    pal = rng.randint(0, 256, (16, 3))
    idx = (scene(27, 35, 8)[..., 0] * 16 // 256)[..., None]
    add("palette4_trns_35x27.png",
        write_png(idx, 3, 4, palette=pal, trns=bytes([0, 64, 128, 200, 255, 10])))
    pal8 = rng.randint(0, 256, (256, 3))
    idx8 = (scene(26, 34, 9)[..., 1])[..., None]
    add("palette8_34x26.png", write_png(idx8, 3, 8, palette=pal8))
    add("grey1_45x13.png", write_png((grey(scene(13, 45, 10)) > 127).astype(np.int64)[..., None],
                                     0, 1))
    add("grey2_interlaced_19x17.png",
        write_png((grey(scene(17, 19, 11)) >> 6)[..., None], 0, 2, interlace=True))
    add("rgb16_31x19.png", write_png(scene(19, 31, 12, 65535), 2, 16))
    img = scene(21, 27, 13, 65535)
    a = alpha_field(21, 27, 14, 65535)
    add("rgba16_27x21.png", write_png(np.concatenate([img, a[..., None]], -1), 6, 16))
    add("grey16_30x30.png", write_png(grey(scene(30, 30, 15, 65535))[..., None], 0, 16))
    g = grey(scene(18, 22, 16, 65535))
    a = alpha_field(18, 22, 17, 65535)
    add("greyalpha16_22x18.png", write_png(np.stack([g, a], -1), 4, 16))
    add("rgb8_interlaced_41x37.png", write_png(scene(37, 41, 18), 2, 8, interlace=True))
    img = scene(25, 26, 19)
    a = alpha_field(25, 26, 20)
    add("rgba8_interlaced_26x25.png",
        write_png(np.concatenate([img, a[..., None]], -1), 6, 8, interlace=True))
    # tRNS on greyscale and RGB: one colour becomes transparent
    g = (grey(scene(20, 24, 21)) // 32) * 32
    add("grey8_trns_24x20.png", write_png(g[..., None], 0, 8, trns=struct.pack(">H", 96)))
    img = (scene(20, 24, 22) // 64) * 64
    add("rgb8_trns_24x20.png", write_png(img, 2, 8, trns=struct.pack(">HHH", 64, 128, 0)))
    add("rgb8_1x1.png", write_png(np.array([[[200, 100, 50]]]), 2, 8))
    add("rgba8_2x2.png", write_png(np.array([[[255, 0, 0, 255], [0, 255, 0, 128]],
                                             [[0, 0, 255, 0], [10, 20, 30, 1]]]), 6, 8))
    add("grey8_1x7.png", write_png(np.arange(7).reshape(7, 1, 1) * 40, 0, 8))
    add("rgb8_wide_120x9.png", write_png(scene(9, 120, 23), 2, 8))
    add("rgb8_tall_7x90.png", write_png(scene(90, 7, 24), 2, 8))
    add("rgb8_128x96.png", write_png(scene(96, 128, 25), 2, 8))
    return cases


def jpeg_cases():
    cases = []

    def add(name, pil_image, **kw):
        buf = io.BytesIO()
        pil_image.save(buf, "JPEG", **kw)
        cases.append((name, buf.getvalue()))

    def rgb(h, w, seed):
        return Image.fromarray(scene(h, w, seed).astype(np.uint8), "RGB")

    add("baseline420_64x48.jpg", rgb(48, 64, 30), quality=90)
    add("progressive420_57x41.jpg", rgb(41, 57, 31), quality=85, progressive=True)
    add("baseline444_33x25.jpg", rgb(25, 33, 32), quality=95, subsampling=0)
    add("baseline422_50x31.jpg", rgb(31, 50, 33), quality=80, subsampling=1)
    add("grey_45x35.jpg", rgb(35, 45, 34).convert("L"), quality=90)
    add("cmyk_30x22.jpg", rgb(22, 30, 35).convert("CMYK"), quality=90)
    add("progressive_cmyk_23x19.jpg", rgb(19, 23, 36).convert("CMYK"), quality=90,
        progressive=True)
    add("baseline_1x1.jpg", rgb(1, 1, 37), quality=90)
    add("progressive420_131x77.jpg", rgb(77, 131, 38), quality=75, progressive=True)
    add("optimized_17x100.jpg", rgb(100, 17, 39), quality=90, optimize=True)
    return cases


# (mode, size, crop_pct, background) applied to every image
PIPELINES = [
    ("shortest_crop", SIZE, 1.0, (255, 255, 255)),
    ("squash", SIZE, 1.0, (255, 255, 255)),
    ("squash", SIZE, 0.875, (255, 255, 255)),
]
EXTRA = {  # a few more for selected images: other sizes, another background
    "rgba8_40x30.png": [("shortest_crop", 24, 1.0, (0, 128, 255))],
    "rgb8_128x96.png": [("shortest_crop", 48, 1.0, (255, 255, 255)),
                        ("squash", 7, 0.9, (255, 255, 255))],
    "baseline420_64x48.jpg": [("shortest_crop", 64, 1.0, (255, 255, 255))],
    "rgb8_1x1.png": [("squash", 5, 1.0, (255, 255, 255))],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "images"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    manifest = {"generator": "tools/make_image_goldens.py",
                "pillow": Image.__version__, "numpy": np.__version__, "images": []}
    for name, data in png_cases() + jpeg_cases():
        path = os.path.join(args.out, name)
        with open(path, "wb") as f:
            f.write(data)
        im = Image.open(io.BytesIO(data))
        im.load()
        channels, dec = decode_reference(im, name)
        stem = os.path.splitext(name)[0]
        dec_name = stem + ".decoded.u8"
        with open(os.path.join(args.out, dec_name), "wb") as f:
            f.write(np.ascontiguousarray(dec, dtype=np.uint8).tobytes())
        entry = {"file": name, "width": im.size[0], "height": im.size[1],
                 "pillow_mode": im.mode, "channels": channels, "decoded": dec_name,
                 "preprocessed": []}
        for i, (mode, size, crop_pct, bg) in enumerate(PIPELINES + EXTRA.get(name, [])):
            rgb = composite(im, bg)
            out = shortest_crop(rgb, size) if mode == "shortest_crop" else squash(rgb, size,
                                                                               crop_pct)
            arr = np.asarray(out)
            assert arr.shape == (size, size, 3), (name, arr.shape)
            golden = "%s.%s_%d_%g_%02x%02x%02x.u8" % (stem, mode, size, crop_pct, *bg)
            with open(os.path.join(args.out, golden), "wb") as f:
                f.write(arr.tobytes())
            entry["preprocessed"].append({"mode": mode, "size": size, "crop_pct": crop_pct,
                                          "background": list(bg), "golden": golden})
        manifest["images"].append(entry)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print("wrote %d images, %d bytes in %s" % (len(manifest["images"]), total, args.out))


if __name__ == "__main__":
    main()
