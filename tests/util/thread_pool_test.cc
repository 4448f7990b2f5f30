#include "util/thread_pool.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "flamingo/error.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

TEST(ThreadPool, RunsEveryTaskExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 17, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, RethrowsTheTaskException) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(100,
                                 [](int64_t i) {
                                   if (i == 37) throw std::runtime_error("task 37");
                                 }),
               std::runtime_error);
  // The pool stays usable afterwards.
  std::atomic<int64_t> sum{0};
  pool.parallel_for(10, [&](int64_t i) { sum += i; });
  EXPECT_EQ(sum.load(), 45);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int> count{0};
  pool.parallel_for(4, [&](int64_t) { pool.parallel_for(3, [&](int64_t) { count++; }); });
  EXPECT_EQ(count.load(), 12);
}

TEST(ThreadPool, ManySmallJobsInARow) {
  ThreadPool pool(2);
  int64_t total = 0;
  for (int job = 0; job < 2000; ++job) {
    std::atomic<int64_t> s{0};
    pool.parallel_for(8, [&](int64_t i) { s += i; });
    total += s.load();
  }
  EXPECT_EQ(total, 2000 * 28);
}

TEST(ThreadPool, ConcurrentCallersAreSerialised) {
  ThreadPool pool(2);
  std::vector<std::thread> callers;
  std::atomic<int64_t> sum{0};
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int j = 0; j < 50; ++j) pool.parallel_for(16, [&](int64_t i) { sum += i; });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(sum.load(), 4 * 50 * 120);
}

TEST(ThreadPool, SmallJobsRunOnTheCaller) {
  ThreadPool pool(2);
  std::vector<std::thread::id> ran(8);
  pool.parallel_for(
      8, [&](int64_t i) { ran[static_cast<size_t>(i)] = std::this_thread::get_id(); },
      /*work_ns=*/1000);
  for (const auto& id : ran) EXPECT_EQ(id, std::this_thread::get_id());
}

// Workers that wake late for a job must neither run a task twice nor touch a finished job:
// many tiny jobs with more workers than cores make late wake-ups the common case.
TEST(ThreadPool, LateWorkersNeverRepeatOrLoseTasks) {
  ThreadPool pool(4, /*min_parallel_ns=*/0);
  for (int job = 0; job < 20000; ++job) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(1 + job % 5));
    pool.parallel_for(static_cast<int64_t>(hits.size()),
                      [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "job " << job;
  }
}

// With address space for one more thread stack but not two, a 4-thread pool starts one worker
// and fails on the next: that must be Error(kOutOfMemory) naming the thread, with the started
// worker stopped again. (A joinable std::thread destroyed in a throwing constructor calls
// std::terminate, which is what happened before.)
TEST(ThreadPool, AWorkerThatCannotStartIsAnErrorAndTheOthersStop) {
  if (testing::kUnderSanitizer) GTEST_SKIP() << "address-space limits do not work under sanitizers";
  pthread_attr_t attr;
  ASSERT_EQ(pthread_getattr_default_np(&attr), 0);
  size_t stack = 0;
  ASSERT_EQ(pthread_attr_getstacksize(&attr, &stack), 0);
  pthread_attr_destroy(&attr);
  const long threads_before = testing::proc_status("Threads");
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  {
    const testing::AddressSpaceLimit limit(stack + stack / 2);
    try {
      ThreadPool pool(4);
      message = "no error";
    } catch (const Error& e) {
      code = e.code();
      message = e.what();
    }
  }
  EXPECT_EQ(code, ErrorCode::kOutOfMemory) << message;
  EXPECT_NE(message.find("cannot start compute thread 3 of 4"), std::string::npos) << message;
  EXPECT_EQ(testing::proc_status("Threads"), threads_before) << "a started worker was left running";
  ThreadPool pool(4);  // with the limit lifted, the same pool starts
  EXPECT_EQ(pool.num_threads(), 4);
}

}  // namespace
}  // namespace flamingo
