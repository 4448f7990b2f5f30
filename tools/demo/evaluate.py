"""Evaluates the demo model on freshly generated held-out scenes, through the C++ engine.

Captions (default caption prompt of the model's config) are parsed back into objects and
scored per attribute; the three question tasks are scored by exact match with 0, 1, 2 and 4
examples in the prompt (`<image>{answer}<|endofchunk|>` per example, then `<image>`). The same
prompts also go through the PyTorch model loaded from the same directory (same f16 weights);
the report gives the fraction of prompts where both produce identical greedy token ids.

  /usr/bin/python3 tools/demo/evaluate.py --model models/demo \\
      --cli build/tools/caption/flamingo-caption --report docs/demo-eval.json

--backend torch evaluates the PyTorch model alone (no engine needed).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import modeldir  # noqa: E402
import scenes  # noqa: E402
import tokenization  # noqa: E402

QUESTION_TASKS = ("colour", "shape", "count")
SHOTS = (0, 1, 2, 4)
HELDOUT_SEED = 20261128        # training draws scenes from "{seed}/{pool}/{i}" strings only


# ----------------------------------------------------------------------------- data

def heldout_set(n: int, n_fewshot: int, seed: int):
    """n caption scenes, and per question task n_fewshot queries with 4 example scenes each."""
    rng = random.Random(f"heldout/{seed}")
    caps = [scenes.sample_scene(rng, "caption") for _ in range(n)]
    qa = {t: [[scenes.sample_scene(rng, t) for _ in range(max(SHOTS) + 1)] for _ in range(n_fewshot)]
          for t in QUESTION_TASKS}
    return caps, qa


def save_images(all_scenes, workdir: str) -> dict[int, str]:
    paths = {}
    for i, sc in enumerate(tqdm(all_scenes, desc="render held-out scenes", dynamic_ncols=True)):
        paths[id(sc)] = os.path.join(workdir, f"{i:05d}.png")
        scenes.render(sc).save(paths[id(sc)])
    return paths


def prompts(caps, qa, caption_prompt: str):
    """(key, prompt text, [scene...]) in marker order, and the expected answers."""
    jobs = []
    for i, sc in enumerate(caps):
        jobs.append((("caption", 0, i), caption_prompt, [sc]))
    for task in QUESTION_TASKS:
        for i, group in enumerate(qa[task]):
            query, examples = group[-1], group[:-1]
            for k in SHOTS:
                text = "".join(f"<image>{e.answer(task)}<|endofchunk|>" for e in examples[:k])
                jobs.append(((task, k, i), text + "<image>", examples[:k] + [query]))
    return jobs


# ----------------------------------------------------------------------------- backends

class Engine:
    def __init__(self, cli: str, model: str, max_tokens: int, threads: int):
        self.cli, self.model, self.max_tokens, self.threads = cli, model, max_tokens, threads
        with open(os.path.join(model, "config.json")) as f:
            tokens = json.load(f)["tokens"]
        self.stop = {tokens["endofchunk"], tokens["eos"]}

    def _call(self, args: list[str]):
        cmd = [self.cli, "-m", self.model, "-n", str(self.max_tokens), "--temp", "0", "--json",
               "-t", str(self.threads)] + args
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)[:300]} exited {r.returncode}: {r.stderr.strip()[-500:]}")
        results = []
        for line in r.stdout.splitlines():
            if not line.strip():
                continue
            out = json.loads(line)
            ids = [t["id"] if isinstance(t, dict) else int(t) for t in out["tokens"]]
            # The engine lists the stop token it generated; the PyTorch side does not.
            if ids and ids[-1] in self.stop:
                ids = ids[:-1]
            results.append((out["text"], ids))
        return results

    def run(self, prompt: str, image_paths: list[str]):
        args = ["-p", prompt]
        for p in image_paths:
            args += ["--image", p]
        return self._call(args)[0]

    def caption_many(self, image_paths: list[str]):
        """Default-prompt captions of several images in one process (the CLI's IMAGE... form)."""
        out = self._call(list(image_paths))
        if len(out) != len(image_paths):
            raise RuntimeError(f"engine printed {len(out)} results for {len(image_paths)} images")
        return out


class Torch:
    def __init__(self, model_dir: str, max_tokens: int):
        self.net, self.config = modeldir.load_model_dir(model_dir)
        self.tok = tokenization.Tokenizer(os.path.join(model_dir, "tokenizer.model"))
        self.size = self.config["vision"]["image_size"]
        self.max_tokens = max_tokens
        self.stop = {self.config["tokens"]["endofchunk"], self.config["tokens"]["eos"]}
        self.image_id = self.config["tokens"]["image"]

    def pixels(self, path: str) -> torch.Tensor:
        im = Image.open(path).convert("RGB")
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.BICUBIC)
        return data.to_tensor(np.asarray(im)[None])[0]

    @torch.no_grad()
    def run(self, prompt: str, image_paths: list[str]):
        return self.run_batch([(prompt, image_paths)])[0]

    @torch.no_grad()
    def run_batch(self, items):
        """Greedy decoding of several prompts at once. Rows are right-padded; causal attention
        keeps every row's real tokens independent of the padding after them, and each row
        reads its logits at its own last token."""
        n_img = [len(paths) for _, paths in items]
        vis = self.net.encode_images(torch.stack([self.pixels(p) for _, paths in items for p in paths]))
        media = data.scatter_media(vis, n_img)
        add_bos = self.config["tokens"].get("add_bos", True)
        rows = [self.tok.encode(prompt, add_bos=add_bos) for prompt, _ in items]
        lens = [len(r) for r in rows]
        buf = torch.full((len(rows), max(lens) + self.max_tokens), self.tok.pad, dtype=torch.long)
        for i, r in enumerate(rows):
            buf[i, :len(r)] = torch.tensor(r)
        outs = [[] for _ in rows]
        live = list(range(len(rows)))
        for _ in range(self.max_tokens):
            if not live:
                break
            width = max(lens[i] for i in live)
            idx = torch.tensor(live)
            logits = self.net(buf[idx, :width], media[idx])
            # As the engine: a media marker is never generated (no image would back it).
            logits[..., self.image_id] = -float("inf")
            nxt = logits[torch.arange(len(live)), torch.tensor([lens[i] - 1 for i in live])].argmax(-1)
            still = []
            for i, t in zip(live, nxt.tolist()):
                if t in self.stop:
                    continue
                outs[i].append(t)
                buf[i, lens[i]] = t
                lens[i] += 1
                still.append(i)
            live = still
        return [(self.tok.decode(o), o) for o in outs]


# ----------------------------------------------------------------------------- scoring

ATTRS = ("colour", "shape", "size", "position", "count")


def score_caption(text: str, truth: list[scenes.Obj]) -> dict[str, float]:
    """Per-attribute scores of one caption. colour/shape/size: fraction of true objects whose
    cell holds a described object with the right value; position: the described cells are
    exactly the true cells; count: as many objects described as there are."""
    pred = scenes.parse_caption(text.strip()) or []
    at = {}
    for o in pred:
        at.setdefault(o.cell, o)
    res = {}
    for a in ("colour", "shape", "size"):
        res[a] = sum(1 for o in truth if o.cell in at and getattr(at[o.cell], a) == getattr(o, a)) / len(truth)
    res["position"] = float(sorted(o.cell for o in pred) == sorted(o.cell for o in truth))
    res["count"] = float(len(pred) == len(truth))
    res["exact"] = float(text.strip() == scenes.caption_of(truth))
    res["parsed"] = float(scenes.parse_caption(text.strip()) is not None)
    return res


def summarise(jobs, outputs, caps):
    cap_scores = {a: [] for a in ATTRS + ("exact", "parsed")}
    exact_by_n = {}       # objects in the scene -> exact-match scores (where captions fail)
    few = {(t, k): [] for t in QUESTION_TASKS for k in SHOTS}
    zero_shot_caption = {t: [] for t in QUESTION_TASKS}
    for (key, _, sc_list), (text, _) in zip(jobs, outputs):
        task, k, i = key
        if task == "caption":
            for a, v in score_caption(text, caps[i].objects).items():
                cap_scores[a].append(v)
            exact_by_n.setdefault(len(caps[i].objects), []).append(
                float(text.strip() == caps[i].caption()))
        else:
            few[(task, k)].append(float(text.strip() == sc_list[-1].answer(task)))
            if k == 0:
                zero_shot_caption[task].append(float(scenes.parse_caption(text.strip()) is not None))
    return {
        "caption": {a: float(np.mean(v)) for a, v in cap_scores.items()},
        "caption_exact_by_objects": {str(n): [float(np.mean(v)), len(v)]
                                     for n, v in sorted(exact_by_n.items())},
        "fewshot": {f"{t}/{k}": float(np.mean(v)) for (t, k), v in few.items()},
        "zero_shot_answers_with_caption": {t: float(np.mean(v)) for t, v in zero_shot_caption.items()},
    }


def markdown(result) -> str:
    lines = []
    for name in ("engine", "torch"):
        if name not in result:
            continue
        r = result[name]
        c = r["caption"]
        lines += [f"**{name}** — captions of {result['n']} held-out scenes (prompt `{result['caption_prompt']}`):", "",
                  "| colour | shape | size | position | count | whole caption exact | parsable |",
                  "|---|---|---|---|---|---|---|",
                  "| " + " | ".join(f"{100 * c[a]:.1f} %" for a in ATTRS + ("exact", "parsed")) + " |", "",
                  "Whole caption exact by objects in the scene: " + ", ".join(
                      f"{n}: {100 * v[0]:.1f} % of {v[1]}"
                      for n, v in r.get("caption_exact_by_objects", {}).items()), "",
                  f"**{name}** — question tasks ({result['n_fewshot']} held-out queries each), exact-match "
                  "accuracy by number of examples in the prompt:", "",
                  "| task | 0 | 1 | 2 | 4 |", "|---|---|---|---|---|"]
        for t in QUESTION_TASKS:
            lines.append(f"| {t} | " + " | ".join(f"{100 * r['fewshot'][f'{t}/{k}']:.1f} %" for k in SHOTS) + " |")
        z = r["zero_shot_answers_with_caption"]
        lines += ["", "0-shot prompts answered with a caption: " +
                  ", ".join(f"{t} {100 * z[t]:.0f} %" for t in QUESTION_TASKS), ""]
    if "agreement" in result:
        a = result["agreement"]
        lines.append(f"Engine vs PyTorch greedy token ids identical: {100 * a['all']:.2f} % of "
                     f"{a['prompts']} prompts (captions {100 * a['caption']:.2f} %, "
                     f"questions {100 * a['questions']:.2f} %).")
    return "\n".join(lines) + "\n"


def find_cli(root: str) -> str | None:
    hits = sorted(glob.glob(os.path.join(root, "build", "**", "flamingo-caption"), recursive=True))
    hits = [h for h in hits if os.access(h, os.X_OK) and os.path.isfile(h)]
    return hits[0] if hits else None


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=os.path.join(root, "models", "demo"))
    ap.add_argument("--cli", default=None, help="flamingo-caption binary (default: found in build/)")
    ap.add_argument("--backend", choices=["both", "engine", "torch"], default="both")
    ap.add_argument("-n", type=int, default=500, help="held-out scenes to caption")
    ap.add_argument("--n-fewshot", type=int, default=200,
                    help="held-out queries per question task (each asked with 0, 1, 2, 4 examples)")
    ap.add_argument("--jobs", type=int, default=2, help="engine processes at a time")
    ap.add_argument("--seed", type=int, default=HELDOUT_SEED)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=50, help="prompts per PyTorch batch")
    ap.add_argument("--report", default=None, help="write results as JSON here")
    ap.add_argument("--markdown", default=None, help="write the tables as Markdown here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with open(os.path.join(args.model, "config.json")) as f:
        caption_prompt = json.load(f).get("prompt", {}).get("caption", "<image>Output:")
    caps, qa = heldout_set(args.n, args.n_fewshot, args.seed)
    jobs = prompts(caps, qa, caption_prompt)
    workdir = tempfile.mkdtemp(prefix="demo-eval-")
    uniq = {id(s): s for _, _, lst in jobs for s in lst}
    paths = save_images(list(uniq.values()), workdir)

    backends = {}
    if args.backend in ("both", "engine"):
        cli = args.cli or find_cli(root)
        if cli is None:
            sys.exit("evaluate: no flamingo-caption binary found; build it or pass --cli "
                     "(or use --backend torch)")
        backends["engine"] = Engine(cli, args.model, args.max_tokens, args.threads)
    if args.backend in ("both", "torch"):
        backends["torch"] = Torch(args.model, args.max_tokens)

    result = {"n": args.n, "n_fewshot": args.n_fewshot, "seed": args.seed,
              "caption_prompt": caption_prompt}
    outputs = {}
    for name, be in backends.items():
        t0 = time.time()
        items = [(prompt, [paths[id(s)] for s in lst]) for _, prompt, lst in jobs]
        if isinstance(be, Torch):
            outs = []
            for b in tqdm(range(0, len(items), args.batch), desc=name, dynamic_ncols=True):
                outs += be.run_batch(items[b:b + args.batch])
        else:
            # Captions use the default prompt: many images per process. Question prompts
            # need one process each; --jobs of them run at a time.
            n_cap = sum(1 for key, _, _ in jobs if key[0] == "caption")
            if any(key[0] == "caption" for key, _, _ in jobs[n_cap:]) or \
                    any(p != caption_prompt for p, _ in items[:n_cap]):
                raise RuntimeError("internal: caption jobs must come first with the default prompt")
            outs = []
            for b in tqdm(range(0, n_cap, 50), desc=f"{name} captions", dynamic_ncols=True):
                outs += be.caption_many([paths_[0] for _, paths_ in items[b:min(n_cap, b + 50)]])
            with ThreadPoolExecutor(args.jobs) as pool:
                outs += list(tqdm(pool.map(lambda it: be.run(*it), items[n_cap:]),
                                  total=len(items) - n_cap, desc=f"{name} questions",
                                  dynamic_ncols=True))
        outputs[name] = outs
        result[name] = summarise(jobs, outs, caps)
        result[name]["seconds"] = time.time() - t0
    if len(outputs) == 2:
        same = [a[1] == b[1] for a, b in zip(outputs["engine"], outputs["torch"])]
        is_cap = [key[0] == "caption" for key, _, _ in jobs]
        result["agreement"] = {
            "prompts": len(same),
            "all": float(np.mean(same)),
            "caption": float(np.mean([s for s, c in zip(same, is_cap) if c])),
            "questions": float(np.mean([s for s, c in zip(same, is_cap) if not c])),
            "first_differences": [
                {"prompt": jobs[i][1], "engine": outputs["engine"][i][0], "torch": outputs["torch"][i][0]}
                for i in [j for j, s in enumerate(same) if not s][:10]],
        }
    md = markdown(result)
    print(md)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)


if __name__ == "__main__":
    main()
