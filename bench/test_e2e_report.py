#!/usr/bin/env python3
"""Self-tests of bench/e2e_report.py: the reference limits in docs/ divide the end-to-end
tables only on the machine they were measured on, and the PyTorch rows say how many threads
the reference really ran. Standard library only.

    python3 bench/test_e2e_report.py
"""
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_report  # noqa: E402

CACHES = [{"level": 1, "type": "Data", "size": 49152, "num_sharing": 1},
          {"level": 3, "type": "Unified", "size": 314572800, "num_sharing": 2}]


def reference(path, context):
    used = {"peak_flops_per_thread": 9.0e10, "triad_bytes_per_s": {"1": 1.3e10, "2": 2.6e10}}
    with open(path, "w") as f:
        json.dump({"note": "test", "context": context, "machine_limits": {"used": used}}, f)


class ReferenceLimits(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "ref.json")
        self.context = {"num_cpus": 2, "mhz_per_cpu": 2100, "caches": CACHES}
        reference(self.path, self.context)

    def tearDown(self):
        self.dir.cleanup()

    def test_the_same_machine_takes_the_reference(self):
        # Google Benchmark lists the caches in its own order and adds fields such as the date.
        run = {"num_cpus": 2, "mhz_per_cpu": 2100, "caches": list(reversed(CACHES)), "date": "x"}
        ref = e2e_report.reference_limits(self.path, run)
        self.assertEqual(ref["peak_flops_per_thread"], 9.0e10)
        self.assertEqual(ref["triad"], {1: 1.3e10, 2: 2.6e10})

    def test_another_clock_or_cache_skips_it(self):
        for run in ({"num_cpus": 2, "mhz_per_cpu": 2596, "caches": CACHES},
                    {"num_cpus": 2, "mhz_per_cpu": 2100, "caches": CACHES[:1]},
                    {"num_cpus": 4, "mhz_per_cpu": 2100, "caches": CACHES}):
            ref = e2e_report.reference_limits(self.path, run)
            self.assertEqual(set(ref), {"skipped"}, run)
            self.assertIn("another machine", ref["skipped"])

    def test_a_reference_without_a_machine_is_skipped(self):
        reference(self.path, {})
        self.assertIn("skipped", e2e_report.reference_limits(self.path, self.context))

    def test_no_file_means_no_reference(self):
        self.assertIsNone(e2e_report.reference_limits(os.path.join(self.dir.name, "none.json"),
                                                      self.context))


class LowerLimits(unittest.TestCase):
    def test_the_smaller_of_start_and_end_per_figure(self):
        start = {"BM_PeakFma/1": {"FLOP/s": 117e9}, "BM_Triad/1": {"bytes/s": 28.8e9},
                 "BM_Triad/2": {"bytes/s": 34.7e9}}
        end = {"BM_PeakFma/1": {"FLOP/s": 116e9}, "BM_Triad/1": {"bytes/s": 26.1e9},
               "BM_Triad/2": {"bytes/s": 48.9e9}}
        low = e2e_report.lower_limits({"machine_limits": start, "machine_limits_after": end})
        self.assertEqual(low["peak_flops_per_thread"], 116e9)
        self.assertEqual(low["triad"], {1: 26.1e9, 2: 34.7e9})
        high = e2e_report.limits_from({"machine_limits": start, "machine_limits_after": end})
        self.assertEqual(high["triad"], {1: 28.8e9, 2: 48.9e9})

    def test_one_measurement_is_both(self):
        only = {"BM_PeakFma/1": {"FLOP/s": 90e9}, "BM_Triad/2": {"bytes/s": 25e9}}
        low = e2e_report.lower_limits({"machine_limits": only})
        self.assertEqual((low["peak_flops_per_thread"], low["triad"]), (90e9, {2: 25e9}))


def torch_run(**extra):
    r = {"threads": 1, "load_ms": 900.0, "run": 0, "decode_preprocess_ms": 20.0, "vision_timm_ms": 1000.0,
         "vision_ms": 700.0, "resampler_ms": 300.0, "prefill_ms": 2000.0, "prefill_tokens": 64,
         "decode_ms": 1500.0, "decode_tokens": 15, "first_token_ms": 3000.0, "caption_wall_ms": 9000.0,
         "peak_rss_kb": 1 << 20}
    r.update(extra)
    return r


class PytorchRows(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, runs):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in runs)
        return path

    def test_threads_and_cpu_share_are_reported(self):
        path = self.write("torch-tinyllama-t2.jsonl", [
            torch_run(threads=2, blas_threads=2, omp_wait_policy="PASSIVE", wall_ms=1000.0, cpu_ms=c)
            for c in (1900.0, 1500.0, 1950.0)])
        tr = e2e_report.pytorch_row(path)
        self.assertEqual((tr["config"], tr["threads"], tr["runs"]), ("tinyllama", 2, 3))
        self.assertAlmostEqual(tr["cpu_share"], 1.9)
        self.assertEqual((tr["blas_threads"], tr["omp_wait_policy"]), (2, "PASSIVE"))
        self.assertAlmostEqual(tr["decode_tok_s"], 10.0)

    def test_runs_from_before_the_thread_fields_have_none(self):
        tr = e2e_report.pytorch_row(self.write("torch-flamingo3b-t1.jsonl", [torch_run()]))
        self.assertEqual((tr["config"], tr["threads"]), ("flamingo3b", 1))
        self.assertIsNone(tr["cpu_share"])
        self.assertIsNone(tr["blas_threads"])

    def test_empty_or_misnamed_files_give_no_row(self):
        self.assertIsNone(e2e_report.pytorch_row(self.write("torch-tinyllama-t1.jsonl", [])))
        self.assertIsNone(e2e_report.pytorch_row(self.write("torch-tinyllama.jsonl", [torch_run()])))


class DecodeBesideSweep(unittest.TestCase):
    @staticmethod
    def run_(tok_s, sweep):
        r = {"fewshot": {"decode_tokens": 16, "decode_ms": 16 / tok_s * 1e3}}
        if sweep is not None:
            r["sweep_after_decode_bytes_per_s"] = sweep
        return r

    def test_median_of_each_runs_own_ratio(self):
        # 1 GB per token, so 30 tok/s reads 30 GB/s: per run 0.75, 1.0 and 1.5, median 1.0
        # (the ratio of the medians, 30 over 30, would agree here only by chance).
        runs = [self.run_(30, 40e9), self.run_(30, 30e9), self.run_(45, 30e9)]
        self.assertAlmostEqual(e2e_report.decode_share_of_sweep(runs, 1e9), 1.0)

    def test_runs_without_a_sweep_are_left_out(self):
        runs = [self.run_(30, None), self.run_(20, -1), self.run_(24, 30e9)]
        self.assertAlmostEqual(e2e_report.decode_share_of_sweep(runs, 1e9), 0.8)
        self.assertIsNone(e2e_report.decode_share_of_sweep(runs[:2], 1e9))


class NextQuery(unittest.TestCase):
    @staticmethod
    def run_(first_vision, images, next_vision):
        step = {"prompt_tokens_reused": 0, "prefill_tokens": 64, "prefill_ms": 100.0,
                "first_token_ms": 500.0}
        return {"fewshot": dict(step, vision_ms=first_vision, media_encoded=images),
                "fewshot_next": dict(step, prompt_tokens_reused=56, prefill_tokens=8,
                                     vision_ms=next_vision, media_encoded=1)}

    def test_vision_is_per_image_in_both_requests(self):
        runs = [self.run_(450, 3, 130), self.run_(390, 3, 128), self.run_(600, 3, 160)]
        s = e2e_report.next_query_summary(runs)
        self.assertAlmostEqual(s["vision_ms"], 130)
        self.assertAlmostEqual(s["first_vision_ms"], 150)
        self.assertEqual((s["reused"], s["ran"]), (56, 8))

    def test_runs_before_the_next_query_give_none(self):
        self.assertIsNone(e2e_report.next_query_summary([{"fewshot": {}}]))


if __name__ == "__main__":
    unittest.main()
