"""Self-tests of the converter's quantisation (tools/convert/quantize.py) and of
tools/quantize_model.py. Run: .venv/bin/python tools/convert/test_quantize.py (or pytest).

The engine side of the bit-exactness (the C++ quantiser gives the converter's codes, the C++
dequantiser the converter's values) is tests/model/quantized_model_test.cc on the quant_*
parity fixtures; these tests pin the Python side against hand-computed blocks."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from convert import quantize as qz  # noqa: E402


def block(values, fill=0.0):
    x = np.full((1, 32), fill, dtype=np.float32)
    x[0, :len(values)] = values
    return x


class Q8(unittest.TestCase):
    def test_hand_computed_block(self):
        # absmax 127 → d = 1: codes are the values rounded half away from zero.
        x = block([127, 2.5, -2.5, 0.49999997, -126.5, 1.5])
        q, s = qz.quantize_q8_0(x)
        self.assertEqual(q[0, :6].tolist(), [127, 3, -3, 0, -127, 2])
        self.assertEqual(int(s[0, 0]), 0x3C00)  # fp16(1.0)
        np.testing.assert_array_equal(qz.dequantize("q8_0", q, s), q.astype(np.float32))

    def test_zero_block_has_zero_scale_and_codes(self):
        q, s = qz.quantize_q8_0(np.zeros((2, 64), np.float32))
        self.assertFalse(q.any())
        self.assertFalse(s.any())

    def test_error_is_at_most_half_a_step(self):
        x = np.random.default_rng(0).normal(size=(16, 256)).astype(np.float32)
        q, s = qz.quantize_q8_0(x)
        d = s.view(np.float16).astype(np.float32).repeat(32, axis=1)
        err = np.abs(qz.dequantize("q8_0", q, s) - x)
        # half a step of the fp32 scale plus the fp16 rounding of the scale (≤ 2^-11 relative).
        self.assertTrue((err <= d * (0.5 + 127 * 2.0 ** -11) + 1e-7).all())


class Q4(unittest.TestCase):
    def test_hand_computed_block(self):
        # Largest magnitude −8 → d = 1; nibble = min(15, floor(x + 8.5)); byte j = j | (j+16) << 4.
        vals = [-8, 7, 7.6, 0.5, -0.5, 0]
        x = block(vals)
        x[0, 16] = 3.0
        q, s = qz.quantize_q4_0(x)
        codes = [int(min(15, np.floor(v + 8.5))) for v in vals]
        self.assertEqual(codes, [0, 15, 15, 9, 8, 8])
        self.assertEqual(int(q[0, 0]), 0 | (11 << 4))  # element 16 = 3 → nibble 11
        self.assertEqual([int(b) & 15 for b in q[0, :6]], codes)
        self.assertEqual(int(s[0, 0]), 0x3C00)
        self.assertEqual(qz.dequantize("q4_0", q, s)[0, 16], 3.0)

    def test_positive_extreme_gets_negative_scale(self):
        q, s = qz.quantize_q4_0(block([16, -1]))
        self.assertEqual(float(s.view(np.float16)[0, 0]), -2.0)
        self.assertEqual(int(q[0, 0]) & 15, 0)  # the extreme itself is nibble 0: −8·d = 16

    def test_first_of_equal_magnitudes_sets_the_sign(self):
        _, s1 = qz.quantize_q4_0(block([-4, 4]))
        _, s2 = qz.quantize_q4_0(block([4, -4]))
        self.assertEqual(float(s1.view(np.float16)[0, 0]), 0.5)
        self.assertEqual(float(s2.view(np.float16)[0, 0]), -0.5)

    def test_rejects_non_finite_and_ragged_rows(self):
        with self.assertRaises(qz.QuantizeError):
            qz.quantize_q4_0(block([np.nan]))
        with self.assertRaises(qz.QuantizeError):
            qz.quantize_q8_0(np.zeros((2, 48), np.float32))


class Policy(unittest.TestCase):
    def test_storage_types(self):
        st = qz.storage_type
        self.assertEqual(st("lm.layers.0.mlp.up_proj.weight", [128, 64], "q4_0"), "q4_0")
        self.assertEqual(st("lm.lm_head.weight", [131, 64], "q4_0"), "q8_0")
        self.assertEqual(st("lm.lm_head.weight", [131, 64], "q8_0"), "q8_0")
        self.assertEqual(st("lm.embed_tokens.weight", [131, 64], "q4_0"), "f16")
        self.assertEqual(st("lm.embed_tokens.weight", [131, 64], "q8_0", tied_embeddings=True), "f16")
        self.assertEqual(st("lm.norm.weight", [64], "q4_0"), "f32")
        self.assertEqual(st("xattn.0.attn_gate", [1], "q8_0"), "f32")
        self.assertEqual(st("resampler.latents", [64, 1536], "q4_0"), "f32")
        self.assertEqual(st("vision.stages.0.0.conv2.weight", [64, 8, 3, 3], "q8_0"), "f16")
        self.assertEqual(st("vision.stem.conv4.weight", [32, 16, 3, 3], "q8_0"), "f16")
        self.assertEqual(st("vision.stages.0.0.conv1.weight", [32, 64, 1, 1], "q8_0"), "q8_0")
        self.assertEqual(st("lm.layers.0.self_attn.q_proj.weight", [24, 24], "q8_0"), "f16")
        self.assertEqual(st("lm.layers.0.self_attn.q_proj.weight", [64, 64], "bf16"), "bf16")

    def test_fold_matches_timm_scaled_std_conv(self):
        import torch
        from timm.layers import ScaledStdConv2dSame

        torch.manual_seed(0)
        conv = ScaledStdConv2dSame(8, 16, 3, eps=1e-5)
        with torch.no_grad():
            conv.gain.uniform_(0.5, 1.5)
        x = torch.randn(1, 8, 9, 9)
        folded = qz.fold_weight_standardisation(conv.weight.detach().numpy(), conv.gain.detach().numpy(), 1e-5)
        plain = torch.nn.Conv2d(8, 16, 3, padding=1)
        with torch.no_grad():
            plain.weight.copy_(torch.from_numpy(folded))
            plain.bias.copy_(conv.bias)
        torch.testing.assert_close(plain(x), conv(x), rtol=1e-5, atol=1e-5)


class QuantizeModelTool(unittest.TestCase):
    def test_refuses_an_already_quantised_source(self):
        src = os.path.join(ROOT, "tests", "data", "parity", "quant_q8_0")
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([sys.executable, os.path.join(TOOLS, "quantize_model.py"), src,
                                os.path.join(tmp, "x"), "--dtype", "q4_0", "--quiet"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("already quantised", r.stderr)

    def test_float_model_to_q8_and_back_through_the_reference(self):
        import torch

        from reference.model_dir import load_model_dir

        src = os.path.join(ROOT, "tests", "data", "parity", "openflamingo")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "q8")
            r = subprocess.run([sys.executable, os.path.join(TOOLS, "quantize_model.py"), src, out,
                                "--dtype", "q8_0", "--quiet"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(out, "config.json")) as f:
                cfg = json.load(f)
            self.assertTrue(cfg["vision"]["ws_folded"])
            self.assertEqual(cfg["weights"]["dtype"], "q8_0")
            # dims of 24 cannot be quantised (k % 32): those matrices fall back to f16, and the
            # folded vision must still reproduce the unfolded model.
            a, b = load_model_dir(src), load_model_dir(out)
            from safetensors.torch import load_file

            w = load_file(os.path.join(src, "reference", "expected.safetensors"))
            ids = w["prompt_ids"]
            px = [w[f"pixels.{i}"] for i in range(3)]
            with torch.no_grad():
                la, lb = a(ids, px)["logits"], b(ids, px)["logits"]
            self.assertLess(float((la - lb).abs().max()), 0.05 * float(la.abs().max()))


if __name__ == "__main__":
    unittest.main()
