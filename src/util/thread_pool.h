// A pool of persistent worker threads shared by all kernels.
//
// Determinism contract: parallel_for(n, fn) calls fn(i) exactly once for every task index i
// in [0, n), each on one thread. Kernels choose task boundaries from the problem shape only
// (never from num_threads()), and each task writes its own outputs with a fixed operation
// order, so results are bitwise identical for any number of threads.
//
// Tasks are claimed dynamically, and the caller waits only for tasks, never for a worker to
// wake up: on a busy machine a descheduled worker would otherwise stall every call (measured
// on a tiny model with 2 threads on a loaded 2-core machine: 25-100× slower decode).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace flamingo {

class ThreadPool {
 public:
  // num_threads counts the calling thread: 1 means no workers, everything runs inline.
  // 0 means one per available hardware thread. Jobs estimated below min_parallel_ns run
  // inline (tests pass 0 to force every job through the workers). A worker the system
  // cannot start (no memory for its stack, a thread limit) is Error(kOutOfMemory), with
  // the workers already started stopped again.
  explicit ThreadPool(int num_threads = 1, double min_parallel_ns = kDefaultMinParallelNs);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(task) for every task in [0, num_tasks) and returns when all are done. The caller
  // takes part. The first exception thrown by a task is rethrown here after the others finish.
  // Calls from several threads are serialised; a call from inside a task runs inline.
  //
  // work_ns estimates the single-threaded time of the whole job; below min_parallel_ns the
  // tasks run inline on the caller, since waking a worker costs more than it saves. The
  // result is the same either way (same tasks, same per-task order).
  void parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& fn,
                    double work_ns = kUnknownWork);

  static constexpr double kUnknownWork = 1e300;
  static constexpr double kDefaultMinParallelNs = 20'000;

  // The default pool for code that was not handed one: sized once from the hardware.
  static ThreadPool& global();

 private:
  // One parallel_for call, on the caller's stack. Workers reach it through current_ and
  // announce themselves in users_ first, so the caller knows when none can still touch it.
  struct Job {
    const std::function<void(int64_t)>* fn;
    int64_t num_tasks;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    std::exception_ptr error;
    std::mutex error_mutex;
  };

  void worker_loop();
  void stop_workers();
  static void run_tasks(Job& job);

  std::vector<std::thread> workers_;
  double min_parallel_ns_;
  std::mutex job_mutex_;  // one job at a time

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<Job*> current_{nullptr};
  std::atomic<int> users_{0};
  bool stop_ = false;
};

}  // namespace flamingo
