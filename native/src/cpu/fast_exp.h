// A vectorisable float exp for the softmax-style kernels (Cephes expf: 2^n * p(r), |r| <= ln2/2,
// max relative error ~2 ulp). Written branch-free so `#pragma omp simd` loops vectorise it.
#pragma once
#include <cstdint>
#include <cstring>

namespace othink::cpu {

#pragma omp declare simd notinbranch
inline float fast_exp(float x) {
  // Below -87.3 the result would be subnormal; clamp (exp(-87.3) ~ 1e-38 is 0 for any sum here).
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.7f ? 88.7f : x;
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  // r = x - n*ln2 with ln2 split in two for accuracy.
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace othink::cpu
