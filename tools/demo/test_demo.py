"""Self-tests of the demo tools: scene text grammar, deterministic rendering, training batches,
bit-reproducible training, the training model against the peers' reference modules, and the
shipped model against its examples.

  .venv/bin/python tools/demo/test_demo.py      (registered with ctest when .venv exists)
"""

import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import data  # noqa: E402
import export  # noqa: E402
import model as M  # noqa: E402
import modeldir  # noqa: E402
import scenes  # noqa: E402
import tokenization  # noqa: E402

DEMO = os.path.join(ROOT, "models", "demo")


class SceneText(unittest.TestCase):
    def test_caption_parses_back_to_the_objects(self):
        rng = random.Random("test/parse")
        for _ in range(2000):
            sc = scenes.sample_scene(rng, rng.choice(scenes.TASKS))
            got = scenes.parse_caption(sc.caption())
            self.assertEqual(sorted(got, key=lambda o: o.cell), sorted(sc.objects, key=lambda o: o.cell))

    def test_repeats_are_counted(self):
        objs = [scenes.Obj("square", "green", "small", c) for c in (0, 4)]
        objs.append(scenes.Obj("circle", "red", "large", 2))
        self.assertEqual(scenes.caption_of(objs),
                         "in the top left and center two small green squares, "
                         "in the top right a large red circle")

    def test_parse_rejects_text_outside_the_grammar(self):
        for bad in ("", "red", "a large red circle", "in the center a huge red circle",
                    "in the center two small green squares", "in the middle a large red circle",
                    "a large red circle in the center", "in the top left and a large red circle",
                    "in the center a large red circle,"):
            self.assertIsNone(scenes.parse_caption(bad), bad)

    def test_question_answers(self):
        rng = random.Random("test/answers")
        for task in ("colour", "shape"):
            for _ in range(200):
                sc = scenes.sample_scene(rng, task)
                large = [o for o in sc.objects if o.size == "large"]
                self.assertEqual(len(large), 1)
                self.assertIn(sc.answer(task), scenes.COLOURS if task == "colour" else scenes.SHAPES)
        sc = scenes.sample_scene(rng, "count")
        self.assertEqual(sc.answer("count"), scenes.NUMBERS[len(sc.objects)])

    def test_rendering_is_deterministic(self):
        a = data.render_pool(9, "caption", 6)[0]
        b = data.render_pool(9, "caption", 6)[0]
        self.assertTrue(np.array_equal(a, b))
        self.assertEqual(a.shape, (6, scenes.IMAGE_SIZE, scenes.IMAGE_SIZE, 3))
        self.assertFalse(np.array_equal(a[0], a[1]))


class TrainingData(unittest.TestCase):
    def test_cell_facts_describe_each_cell(self):
        objs = [scenes.Obj("star", "pink", "small", 0), scenes.Obj("square", "cyan", "large", 7)]
        got = data.cell_facts([scenes.Scene(objs, 0)])[0]
        none = (len(scenes.COLOUR_NAMES), len(scenes.SHAPES), len(scenes.SIZES))
        for cell in range(len(scenes.POSITIONS)):
            want = {0: (scenes.COLOUR_NAMES.index("pink"), scenes.SHAPES.index("star"),
                        scenes.SIZES.index("small")),
                    7: (scenes.COLOUR_NAMES.index("cyan"), scenes.SHAPES.index("square"),
                        scenes.SIZES.index("large"))}.get(cell, none)
            self.assertEqual(tuple(got[cell]), want, cell)

    def test_batch_cells_follow_the_images_in_marker_order(self):
        rng = random.Random("test/batch")
        facts = [scenes.sample_scene(rng, "caption") for _ in range(20)]
        qa = [scenes.sample_scene(rng, "colour") for _ in range(20)]
        feats = np.arange(20, dtype=np.float32).reshape(20, 1, 1)   # feature = scene index
        tok = tokenization.Tokenizer(os.path.join(DEMO, "tokenizer.model"))
        seqs = data.Sequences(tok, {"caption": (None, facts), "qa": (None, qa)},
                              {"caption": 4, "colour": 4, "shape": 4, "count": 4},
                              {"caption": feats, "qa": feats})
        b = seqs.batch(random.Random(3), "caption", 5)
        self.assertEqual(b.media.shape[0], sum(b.counts))
        for img, scene_index in enumerate(b.media[:, 0, 0].long().tolist()):
            self.assertTrue(np.array_equal(b.cells[img].numpy(),
                                           data.cell_facts([facts[scene_index]])[0]))


TINY = ["--threads", "1", "--caption-pool", "48", "--qa-pool", "48", "--lm-steps", "6",
        "--vision-steps", "6", "--vision-batch", "6", "--vision-eval-every", "0",
        "--steps", "8", "--batch", "3", "--qa-batch", "3", "--eval-every", "0",
        "--quick-eval", "0", "--save-every", "1000"]


def _train_tiny(out, *extra):
    """A tiny run of train.py through all three stages; its exported weights and log."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--out", out, *TINY,
                    *extra], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    ckpt = torch.load(os.path.join(out, "checkpoint.pt"))
    with open(os.path.join(out, "losses.json")) as f:
        log = json.load(f)["log"]
    return ckpt["state_dict"], log


class TrainingIsReproducible(unittest.TestCase):
    """docs/demo-model.md says that rerunning train.py gives the same model. Three tiny runs
    through every stage: a second run with another number of render processes, and a run
    that reuses the first run's LM and NFNet, must all end in bit-identical weights and
    losses."""

    def assert_same(self, a, b, what):
        (wa, la), (wb, lb) = a, b
        self.assertEqual(len(la), 6 + 6 + 8)     # every step of the three stages logged
        self.assertEqual(la, lb, f"{what}: losses differ")
        self.assertEqual(sorted(wa), sorted(wb))
        for k in wa:
            self.assertTrue(torch.equal(wa[k], wb[k]), f"{what}: {k} differs")

    def test_data_parallel_reruns_give_identical_weights(self):
        # Each run also checks that its two processes ended with identical weights.
        with tempfile.TemporaryDirectory() as d:
            a = _train_tiny(os.path.join(d, "a"), "--vlm-procs", "2")
            self.assert_same(a, _train_tiny(os.path.join(d, "b"), "--vlm-procs", "2"),
                             "a rerun with the multimodal stage in 2 processes")
            # The shards' losses add up to the whole batch's: before the first update, the
            # one-process run computes the same losses up to rounding.
            one = _train_tiny(os.path.join(d, "c"))
            first = [next(r for r in log if r["phase"] == "vlm") for log in (a[1], one[1])]
            for key in ("loss", "cell_loss"):
                self.assertAlmostEqual(first[0][key], first[1][key], delta=1e-5 * first[1][key])

    def test_evaluating_during_training_changes_no_weight(self):
        with tempfile.TemporaryDirectory() as d:
            quiet = _train_tiny(os.path.join(d, "a"))
            watched = _train_tiny(os.path.join(d, "b"), "--eval-every", "3", "--eval-live")
            self.assertIn("vlm-eval-average", {r["phase"] for r in watched[1]})
            for k in quiet[0]:
                self.assertTrue(torch.equal(quiet[0][k], watched[0][k]), k)

    def test_reruns_and_reuse_give_identical_weights(self):
        with tempfile.TemporaryDirectory() as d:
            runs = [os.path.join(d, n) for n in ("a", "b", "c")]
            first = _train_tiny(runs[0], "--render-procs", "1")
            self.assert_same(first, _train_tiny(runs[1], "--render-procs", "2"),
                             "a rerun with 2 render processes")
            os.makedirs(runs[2])
            for f in ("lm.pt", "vision.pt"):
                shutil.copy(os.path.join(runs[0], f), runs[2])
            self.assert_same(first, _train_tiny(runs[2], "--render-procs", "1", "--reuse-lm",
                                                "--reuse-vision"),
                             "a run reusing the first run's LM and NFNet")


class TokenizerFile(unittest.TestCase):
    def test_file_does_not_depend_on_where_it_is_written(self):
        with tempfile.TemporaryDirectory() as d:
            paths = [os.path.join(d, sub, "tokenizer.model") for sub in ("a", "longer-name")]
            for p in paths:
                os.makedirs(os.path.dirname(p))
                tokenization.train_tokenizer(p, seed=1, lines=2000)
            with open(paths[0], "rb") as f0, open(paths[1], "rb") as f1:
                self.assertEqual(f0.read(), f1.read())


class WeightAverageTest(unittest.TestCase):
    def test_average_follows_the_weights_with_a_ramped_decay(self):
        import train
        w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        avg = train.WeightAverage([("w", w)], decay=0.5)
        with torch.no_grad():
            w.copy_(torch.tensor([3.0, 4.0]))
        avg.update(0)                 # decay min(0.5, 1/10): mostly the new weights
        expect = 0.1 * torch.tensor([1.0, -2.0]) + 0.9 * torch.tensor([3.0, 4.0])
        self.assertTrue(torch.allclose(avg.state_dict()["w"], expect))
        with torch.no_grad():
            w.copy_(torch.tensor([5.0, 0.0]))
        avg.update(100)               # ramp over: the decay itself
        expect = 0.5 * expect + 0.5 * torch.tensor([5.0, 0.0])
        self.assertTrue(torch.allclose(avg.state_dict()["w"], expect))
        avg.swap()
        self.assertTrue(torch.allclose(w.detach(), expect))
        avg.swap()
        self.assertTrue(torch.equal(w.detach(), torch.tensor([5.0, 0.0])))

    def test_checkpoint_holds_the_average_of_the_trained_parts_only(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "run")
            _train_tiny(out)
            ck = torch.load(os.path.join(out, "checkpoint.pt"))
            avg, live = ck["state_dict"], ck["live_state_dict"]
            self.assertEqual(sorted(avg), sorted(live))
            for k in avg:
                frozen = k.startswith(("lm.", "vision."))
                self.assertEqual(torch.equal(avg[k], live[k]), frozen, k)


def _reference_available():
    try:
        import reference.flamingo_ref  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 - timm/transformers/open_flamingo missing outside the venv
        return False


@unittest.skipUnless(_reference_available(), "needs the tools venv (tools/setup_venv.sh)")
class TrainingModelMatchesPeers(unittest.TestCase):
    def test_same_logits_as_the_reference_with_random_weights(self):
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as d:
            tokenization.train_tokenizer(os.path.join(d, "t.model"), seed=5, lines=2000)
            tok = tokenization.Tokenizer(os.path.join(d, "t.model"))
        cfg = M.DemoCfg()
        cfg.lm.vocab_size = len(tok)
        net = M.Flamingo(cfg, tok.image)
        with torch.no_grad():            # open the gates and residual branches: all paths count
            for n, p in net.named_parameters():
                if n.endswith("_gate"):
                    p.uniform_(0.3, 1.0)
                elif n.endswith("skipinit_gain"):
                    p.uniform_(0.3, 1.0)
        net.eval()
        tokens = {"bos": tok.bos, "eos": tok.eos, "pad": tok.pad, "image": tok.image,
                  "endofchunk": tok.eoc}
        export.build_and_check_reference(net, cfg, export.engine_config(cfg, tokens), tok)


@unittest.skipUnless(os.path.exists(os.path.join(DEMO, "config.json")), "no models/demo")
class ShippedModel(unittest.TestCase):
    def test_examples_are_captioned_as_listed(self):
        net, config = modeldir.load_model_dir(DEMO)
        tok = tokenization.Tokenizer(os.path.join(DEMO, "tokenizer.model"))
        from PIL import Image
        with open(os.path.join(DEMO, "examples", "captions.tsv")) as f:
            rows = list(csv.reader(f, delimiter="\t"))
        self.assertGreaterEqual(len(rows), 4)
        for name, caption in rows:
            im = Image.open(os.path.join(DEMO, "examples", name)).convert("RGB")
            self.assertEqual(im.size, (config["vision"]["image_size"],) * 2)
            pix = data.to_tensor(np.asarray(im)[None])
            self.assertEqual(export.greedy(net, tok, config["prompt"]["caption"], pix), caption, name)

    def test_size_budget(self):
        total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(DEMO) for f in fs)
        self.assertLessEqual(total, 25 * 1000 * 1000)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
