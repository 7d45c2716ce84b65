#include "cpu/random.h"

#include <algorithm>
#include <cmath>

namespace othink::cpu {

namespace {
// SplitMix64 (Steele et al. 2014): a good 64-bit mix of a counter.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

void fill_normal(float* out, int64_t n, float mean, float std, uint64_t seed) {
  const uint64_t key = splitmix64(seed);
  const int64_t pairs = (n + 1) / 2;
  constexpr int64_t kBlock = 1024;  // pairs per block: uniforms first, then a vectorisable transform
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t b0 = 0; b0 < pairs; b0 += kBlock) {
    const int64_t len = std::min(kBlock, pairs - b0);
    float u1[kBlock], u2[kBlock], z0[kBlock], z1[kBlock];
    for (int64_t i = 0; i < len; ++i) {
      const uint64_t h = splitmix64(key ^ static_cast<uint64_t>(b0 + i));
      // 24-bit uniforms in (0, 1]: u1 > 0 keeps log finite.
      u1[i] = (static_cast<float>(h >> 40) + 1.0f) * (1.0f / 16777216.0f);
      u2[i] = static_cast<float>((h >> 16) & 0xffffff) * (1.0f / 16777216.0f);
    }
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) {
      const float r = std::sqrt(-2.0f * std::log(u1[i]));
      const float a = 6.28318530718f * u2[i];
      z0[i] = mean + std * r * std::cos(a);
      z1[i] = mean + std * r * std::sin(a);
    }
    for (int64_t i = 0; i < len; ++i) {
      const int64_t k = 2 * (b0 + i);
      out[k] = z0[i];
      if (k + 1 < n) out[k + 1] = z1[i];
    }
  }
}

}  // namespace othink::cpu
