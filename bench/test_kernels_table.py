#!/usr/bin/env python3
"""Self-tests of bench/kernels_table.py on synthetic Google Benchmark results: which peak the
matmul percentages divide by, and the targets computed from them. Standard library only.

    python3 bench/test_kernels_table.py
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def median_row(name, **counters):
    row = {"run_name": name + "/real_time", "aggregate_name": "median", "real_time": 1.0,
           "cpu_time": 1.0, "time_unit": "ms"}
    row.update(counters)
    return row


def write(path, rows):
    with open(path, "w") as f:
        json.dump({"context": {"date": "2026-12-06T00:00:00+00:00", "num_cpus": 2},
                   "benchmarks": rows}, f)


def gemm(impl, m, t, flops):
    return median_row(f"matmul/{impl}/M:{m}/K:2048/N:2048/threads:{t}",
                      **{"FLOP/s": flops, "weight_bytes/s": 1e9})


class MatmulPeak(unittest.TestCase):
    def render(self, matmul_rows, limits_rows=()):
        with tempfile.TemporaryDirectory() as d:
            res = os.path.join(d, "results")
            os.mkdir(res)
            # machine_limits_bench before and after: the table takes the larger per thread.
            write(os.path.join(res, "machine_limits.json"),
                  [median_row("BM_PeakFma/1", **{"FLOP/s": 100e9}),
                   median_row("BM_Triad/1", **{"bytes/s": 10e9}), *limits_rows])
            write(os.path.join(res, "machine_limits_after.json"),
                  [median_row("BM_PeakFma/1", **{"FLOP/s": 90e9})])
            write(os.path.join(res, "matmul.json"), matmul_rows)
            out = os.path.join(d, "out.json")
            subprocess.run([sys.executable, os.path.join(HERE, "kernels_table.py"), "--results",
                            res, "--md", os.path.join(d, "out.md"), "--json", out], check=True,
                           stdout=subprocess.DEVNULL)
            with open(out) as f:
                doc = json.load(f)
            with open(os.path.join(d, "out.md")) as f:
                return doc["matmul"], f.read()

    def row(self, table, m, t):
        return next(r for r in table["rows"] if r["M"] == m and r["threads"] == t)

    def test_without_own_peak_the_limits_run_times_threads(self):
        mm, _ = self.render([gemm("f32", 64, 1, 90e9), gemm("f32", 64, 2, 160e9),
                             gemm("openblas", 64, 1, 75e9)])
        self.assertAlmostEqual(self.row(mm, 64, 1)["f32"]["pct_peak"], 0.9)
        self.assertAlmostEqual(self.row(mm, 64, 2)["f32"]["pct_peak"], 0.8)
        self.assertAlmostEqual(self.row(mm, 64, 1)["f32"]["ratio_openblas"], 1.2)
        self.assertEqual(mm["own_peak_flops"], {})
        scaling = next(t for t in mm["targets"] if "2 threads" in t["target"])
        self.assertEqual(scaling["measured"], "1.78×")
        self.assertFalse(scaling["met"])

    def test_own_peak_rows_are_the_yardstick_per_thread_count(self):
        mm, md = self.render([median_row("BM_PeakFma/1", **{"FLOP/s": 80e9}),
                              median_row("BM_PeakFma/2", **{"FLOP/s": 150e9}),
                              gemm("f32", 512, 1, 72e9), gemm("f32", 512, 2, 135e9)])
        self.assertAlmostEqual(self.row(mm, 512, 1)["f32"]["pct_peak"], 0.9)
        self.assertAlmostEqual(self.row(mm, 512, 2)["f32"]["pct_peak"], 0.9)
        self.assertIn("80.0 GFLOP/s at 1 thread, 150.0 GFLOP/s at 2 threads", md)
        peak = next(t for t in mm["targets"] if "88 % of peak" in t["target"])
        self.assertTrue(peak["met"])
        scaling = next(t for t in mm["targets"] if "2 threads" in t["target"])
        self.assertEqual(scaling["measured"], "1.88× (the FMA loop among these rows: 1.88×)")
        self.assertTrue(scaling["met"])

    def test_gemv_beside_sweep_targets_use_the_paired_ratio(self):
        def beside(impl, k, t, ratio):
            return median_row(f"matmul_beside_sweep/{impl}/M:1/K:{k}/N:2048/threads:{t}",
                              **{"weight_bytes/s": ratio * 30e9, "sweep_bytes/s": 30e9,
                                 "of_sweep": ratio})
        mm, md = self.render([beside("f32", 2048, 1, 0.93), beside("f32", 5632, 1, 0.84),
                              beside("q4_0", 2048, 2, 1.02)])
        f32 = next(t for t in mm["targets"] if "f32, 1 thread(s) ≥ 85 % of a read sweep" in t["target"])
        self.assertEqual(f32["measured"], "84 %")
        self.assertFalse(f32["met"])
        q4 = next(t for t in mm["targets"] if "q4_0, 2 thread(s) ≥ 85 % of a read sweep" in t["target"])
        self.assertTrue(q4["met"])
        self.assertIn("| 2048 | 2048 | 1 | 27.9 GB/s (93 % of 30.0) | – |", md)
        self.assertEqual(len(mm["gemv_beside_sweep"]), 3)

    def test_the_f16_gemv_runs_against_the_convert_fma_roof(self):
        def hot(kernel, gbs):
            return median_row(f"microkernel/{kernel}/K:2048", **{"weight_bytes/s": gbs * 1e9})
        mm, md = self.render([gemm("f32", 64, 1, 90e9), hot("gemv_f16_1x16_avx2", 40),
                              hot("gemv_bf16_1x16_avx2", 70), hot("gemv_f16_scalar", 2)],
                             [median_row("BM_PeakF16Fma/1", **{"bytes/s": 50e9})])
        f16 = next(e for e in mm["gemv_hot"] if e["type"] == "f16_1x16")
        self.assertAlmostEqual(f16["pct_f16_fma_roof"], 0.8)
        self.assertIn("| gemv_f16_1x16_avx2 | 2048 | 40.0 (80 % of PeakF16Fma/1) |", md)
        self.assertIn("| gemv_bf16_1x16_avx2 | 2048 | 70.0 |", md)
        self.assertIn("| gemv_f16_scalar | 2048 | 2.0 |", md)
        # The roof is not a FLOP/s peak: the GEMM still divides by BM_PeakFma.
        self.assertAlmostEqual(self.row(mm, 64, 1)["f32"]["pct_peak"], 0.9)

    def test_a_miss_never_reads_as_the_threshold(self):
        mm, _ = self.render([median_row("matmul_beside_sweep/q4_0/M:1/K:2048/N:2048/threads:2",
                                        **{"weight_bytes/s": 25.47e9, "sweep_bytes/s": 30e9,
                                           "of_sweep": 0.849})])
        q4 = next(t for t in mm["targets"] if "q4_0, 2 thread(s)" in t["target"])
        self.assertEqual(q4["measured"], "84.9 %")
        self.assertFalse(q4["met"])


if __name__ == "__main__":
    unittest.main()
