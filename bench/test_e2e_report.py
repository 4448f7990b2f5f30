#!/usr/bin/env python3
"""Self-tests of bench/e2e_report.py's yardstick: the reference limits in docs/ divide the
end-to-end tables only on the machine they were measured on. Standard library only.

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


if __name__ == "__main__":
    unittest.main()
