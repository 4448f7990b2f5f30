#include "kernels/cpu.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "util/check.h"

namespace flamingo::kernels {
namespace {

bool detect_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // AVX2 and FMA from CPUID; __builtin_cpu_supports also checks the OS saves YMM state.
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
  unsigned eax, ebx, ecx, edx;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
  return (ecx >> 29) & 1u;  // F16C
#else
  return false;
#endif
}

Isa initial_isa() {
  const bool has = detect_avx2();
  const char* env = std::getenv("FLAMINGO_ISA");
  if (env != nullptr && std::strcmp(env, "scalar") == 0) return Isa::kScalar;
  return has ? Isa::kAvx2 : Isa::kScalar;
}

std::atomic<Isa>& isa_state() {
  static std::atomic<Isa> isa{initial_isa()};
  return isa;
}

bool cpu_is_amd() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

DecodeStreams initial_decode_streams() {
  const char* env = std::getenv("FLAMINGO_DECODE_STREAMS");
  if (env != nullptr && std::strcmp(env, "one") == 0) return DecodeStreams::kOne;
  if (env != nullptr && std::strcmp(env, "several") == 0) return DecodeStreams::kSeveral;
  return cpu_is_amd() ? DecodeStreams::kOne : DecodeStreams::kSeveral;
}

std::atomic<DecodeStreams>& decode_streams_state() {
  static std::atomic<DecodeStreams> streams{initial_decode_streams()};
  return streams;
}

}  // namespace

bool cpu_has_avx2() {
  static const bool has = detect_avx2();
  return has;
}

Isa active_isa() { return isa_state().load(std::memory_order_relaxed); }

void set_isa(Isa isa) {
  if (isa == Isa::kAvx2 && !cpu_has_avx2())
    fail(ErrorCode::kUnsupported,
         "this CPU lacks AVX2, FMA or F16C; only the scalar kernels can run");
  isa_state().store(isa, std::memory_order_relaxed);
}

const char* isa_name(Isa isa) { return isa == Isa::kAvx2 ? "avx2+fma+f16c" : "scalar"; }

DecodeStreams active_decode_streams() {
  return decode_streams_state().load(std::memory_order_relaxed);
}

void set_decode_streams(DecodeStreams streams) {
  decode_streams_state().store(streams, std::memory_order_relaxed);
}

const char* decode_streams_name(DecodeStreams streams) {
  return streams == DecodeStreams::kOne ? "one" : "several";
}

long l1d_cache_bytes() {
  static const long bytes = [] {
    const long v = ::sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return v > 0 ? v : 32 * 1024L;
  }();
  return bytes;
}

}  // namespace flamingo::kernels
