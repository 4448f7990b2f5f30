// Rough single-thread time of a kernel call, for ThreadPool::parallel_for's work_ns: below
// about 20 µs the call runs on the caller alone, since handing tasks to a worker costs a few
// microseconds even when it is awake. Deliberately conservative rates (about half of what
// the kernels reach), so that borderline calls still go parallel.
#pragma once

namespace flamingo::kernels::detail {

// Multiply-adds at ~50 GFLOP/s.
constexpr double compute_ns(double flops) { return flops / 50.0; }
// Streaming memory at ~10 GB/s.
constexpr double stream_ns(double bytes) { return bytes / 10.0; }

}  // namespace flamingo::kernels::detail
