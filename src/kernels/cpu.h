// Which instruction-set path the kernels take.
//
// Detected once from CPUID. The environment variable FLAMINGO_ISA=scalar (or avx2) overrides
// the detection at start-up, and set_isa() overrides it at run time, so tests can run both
// paths in one process. Asking for AVX2 on a CPU without AVX2+FMA+F16C throws.
#pragma once

namespace flamingo::kernels {

enum class Isa { kScalar, kAvx2 };

// The path kernels take now.
Isa active_isa();
// Whether this CPU (and OS) can run the AVX2+FMA+F16C path.
bool cpu_has_avx2();
// Forces a path for the whole process (affects calls that start afterwards).
void set_isa(Isa isa);
const char* isa_name(Isa isa);
// How the decode GEMV (one row of A) reads weight panels from DRAM. The Intel cores measured
// reached their memory bandwidth from one core only with several streams in flight (a panel's K
// split in four, or two quantised panels at once, with software prefetch); an AMD Zen 4 core
// read 5-40 % more with each panel read front to back, which its prefetchers follow, and lost
// with several streams (docs/kernels-matmul.md). Chosen from the CPU's vendor: kOne on AMD,
// kSeveral elsewhere. FLAMINGO_DECODE_STREAMS=one (or several) overrides it at start-up,
// set_decode_streams() at run time. Either gives results independent of the thread count; for
// f32/f16/bf16 the two differ in rounding, for Q8_0/Q4_0 they give the same bits.
enum class DecodeStreams { kSeveral, kOne };
DecodeStreams active_decode_streams();
void set_decode_streams(DecodeStreams streams);
const char* decode_streams_name(DecodeStreams streams);

// The per-core L1 data cache in bytes as the OS reports it; 32 KiB when it does not say.
long l1d_cache_bytes();

}  // namespace flamingo::kernels
