// A pool of persistent worker threads shared by all kernels.
//
// Determinism contract: parallel_for(n, fn) calls fn(i) exactly once for every task index i
// in [0, n), each on one thread. Kernels choose task boundaries from the problem shape only
// (never from num_threads()), and each task writes its own outputs with a fixed operation
// order, so results are bitwise identical for any number of threads.
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
  // 0 means one per available hardware thread.
  explicit ThreadPool(int num_threads = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(task) for every task in [0, num_tasks) and returns when all are done. The caller
  // takes part. The first exception thrown by a task is rethrown here after the others finish.
  // Calls from several threads are serialised; a call from inside a task runs inline.
  void parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& fn);

  // The default pool for code that was not handed one: sized once from the hardware.
  static ThreadPool& global();

 private:
  void worker_loop();
  void run_tasks();

  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // one job at a time

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;

  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t num_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> active_workers_{0};
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

}  // namespace flamingo
