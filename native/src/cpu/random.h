// Counter-based random numbers: element i of a fill depends only on (seed, i), so fills are
// reproducible whatever the thread count.
#pragma once
#include <cstdint>

namespace othink::cpu {

// out[i] = mean + std * N(0, 1): Box-Muller on two 24-bit uniforms from a SplitMix64 hash of
// (seed, i / 2).
void fill_normal(float* out, int64_t n, float mean, float std, uint64_t seed);

}  // namespace othink::cpu
