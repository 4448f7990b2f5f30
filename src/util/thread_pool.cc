#include "util/thread_pool.h"

#include <algorithm>
#include <system_error>

#include "util/check.h"

namespace flamingo {
namespace {

// Set while a thread is executing tasks of some pool, so nested calls run inline instead of
// deadlocking on job_mutex_.
thread_local bool t_inside_pool = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins briefly, then yields the core: the thread being waited for may be runnable on it.
template <typename Pred>
void wait_until(Pred ready) {
  for (int spin = 0; !ready(); ++spin) {
    if (spin < 2048) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads, double min_parallel_ns)
    : min_parallel_ns_(min_parallel_ns) {
  if (num_threads <= 0)
    num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(static_cast<size_t>(num_threads - 1));
  for (int i = 1; i < num_threads; ++i) {
    try {
      workers_.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error& e) {
      // The destructor does not run for a constructor that throws, and a joinable std::thread
      // destroyed with workers_ would call std::terminate: the started workers go first.
      stop_workers();
      fail(ErrorCode::kOutOfMemory, "cannot start compute thread ", i + 1, " of ", num_threads,
           ": ", e.what(),
           " (too little memory for its stack, or a limit on threads: use fewer threads)");
    }
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(0);
  return pool;
}

void ThreadPool::run_tasks(Job& job) {
  const bool was_inside = t_inside_pool;
  t_inside_pool = true;
  for (;;) {
    const int64_t task = job.next.fetch_add(1, std::memory_order_relaxed);
    if (task >= job.num_tasks) break;
    try {
      (*job.fn)(task);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job.error_mutex);
      if (!job.error) job.error = std::current_exception();
    }
    job.done.fetch_add(1, std::memory_order_release);
  }
  t_inside_pool = was_inside;
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little before sleeping: jobs come in quick bursts (several per token in decode).
    for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin)
      cpu_relax();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock,
                    [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
      if (stop_) return;
      seen = generation_.load(std::memory_order_relaxed);
    }
    // users_ before current_ (both seq_cst): either the caller sees this worker in users_
    // and waits for it, or this worker sees the job already withdrawn.
    users_.fetch_add(1);
    if (Job* job = current_.load()) run_tasks(*job);
    users_.fetch_sub(1);
  }
}

void ThreadPool::parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& fn,
                              double work_ns) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || num_tasks == 1 || t_inside_pool || work_ns < min_parallel_ns_) {
    const bool was_inside = t_inside_pool;
    t_inside_pool = true;
    try {
      for (int64_t i = 0; i < num_tasks; ++i) fn(i);
    } catch (...) {
      t_inside_pool = was_inside;
      throw;
    }
    t_inside_pool = was_inside;
    return;
  }
  std::lock_guard<std::mutex> job_lock(job_mutex_);
  Job job;
  job.fn = &fn;
  job.num_tasks = num_tasks;
  current_.store(&job);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  run_tasks(job);
  // Only tasks already claimed are waited for; workers still asleep find nothing to do.
  wait_until([&] { return job.done.load(std::memory_order_acquire) == num_tasks; });
  current_.store(nullptr);
  wait_until([&] { return users_.load() == 0; });
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace flamingo
