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
// The per-core L1 data cache in bytes as the OS reports it; 32 KiB when it does not say.
long l1d_cache_bytes();

}  // namespace flamingo::kernels
