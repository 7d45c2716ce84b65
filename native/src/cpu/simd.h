// Portable SIMD for the CPU kernels: GCC/Clang vector extensions with 16 float lanes, lowered to
// AVX-512, AVX2 or SSE by the compiler for the CPU the addon is built on. Explicit vectors, because
// auto-vectorisation of loops with exp() is fragile.
#pragma once
#include <cstdint>
#include <cmath>
#include <cstring>
#include <utility>

namespace othink::cpu::simd {

constexpr int64_t kLanes = 16;
typedef float f32v __attribute__((vector_size(64)));
typedef int32_t i32v __attribute__((vector_size(64)));

inline f32v load(const float* p) {
  f32v v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, f32v v) { std::memcpy(p, &v, sizeof v); }

// Loads n < kLanes values and fills the other lanes with `fill`.
inline f32v load_partial(const float* p, int64_t n, float fill) {
  float buf[kLanes];
  for (int64_t i = 0; i < kLanes; ++i) buf[i] = i < n ? p[i] : fill;
  return load(buf);
}

inline void store_partial(float* p, f32v v, int64_t n) {
  float buf[kLanes];
  store(buf, v);
  std::memcpy(p, buf, static_cast<size_t>(n) * sizeof(float));
}

inline f32v splat(float x) { return f32v{} + x; }
inline f32v max(f32v a, f32v b) { return a > b ? a : b; }
inline f32v min(f32v a, f32v b) { return a < b ? a : b; }

// Lanewise sqrt (vectorised by the compiler: -fno-math-errno is set for the addon).
inline f32v sqrt(f32v v) {
  for (int i = 0; i < kLanes; ++i) v[i] = std::sqrt(v[i]);
  return v;
}

namespace detail {
template <int S, size_t... I>
inline f32v permute_xor(f32v v, std::index_sequence<I...>) {
  return __builtin_shufflevector(v, v, static_cast<int>(I ^ S)...);
}
}  // namespace detail

// Lane i takes lane i ^ S (one shuffle instruction).
template <int S>
inline f32v permute_xor(f32v v) {
  return detail::permute_xor<S>(v, std::make_index_sequence<kLanes>{});
}

// Lanes 0 .. kLanes / G - 1 take the first lane of each aligned segment of G lanes (one shuffle).
template <int G, size_t... I>
inline f32v segment_heads(f32v v, std::index_sequence<I...>) {
  return __builtin_shufflevector(v, v, static_cast<int>((I * G) % kLanes)...);
}
template <int G>
inline f32v segment_heads(f32v v) {
  return segment_heads<G>(v, std::make_index_sequence<kLanes>{});
}

// Sum over aligned segments of G lanes (G a power of two <= kLanes) by a butterfly: afterwards
// every lane holds the sum of its segment. Sums of equal values are exact (each step doubles).
template <int G>
inline f32v segment_sum(f32v v) {
  static_assert(G >= 1 && G <= kLanes && (G & (G - 1)) == 0, "G must be a power of two <= kLanes");
  if constexpr (G >= 2) v += permute_xor<1>(v);
  if constexpr (G >= 4) v += permute_xor<2>(v);
  if constexpr (G >= 8) v += permute_xor<4>(v);
  if constexpr (G >= 16) v += permute_xor<8>(v);
  return v;
}

inline float reduce_add(f32v v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

inline float reduce_max(f32v v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// exp(x) = 2^n * 2^f with n = round(x / ln2), |f| <= 1/2, 2^f by a degree-5 polynomial fitted for
// minimal relative error on [-1/2, 1/2]: max relative error 2.5e-7 (~2 ulp). Inputs below -87.9
// give exactly 0 (n = -127 makes the scale's exponent bits 0), so exp(-inf) == 0; inputs above
// 88.7 saturate at ~3.4e38; NaN stays NaN (the clamps are written so NaN passes through).
inline f32v exp(f32v x) {
  x = x < -87.9f ? splat(-87.9f) : x;
  x = x > 88.7f ? splat(88.7f) : x;
  const f32v t = x * 1.44269504088896341f;
  // Adding 1.5 * 2^23 rounds t to an integer held in the low mantissa bits of `shifted`.
  const f32v shifter = splat(12582912.f);
  const f32v shifted = t + shifter;
  const f32v f = t - (shifted - shifter);
  f32v p = splat(1.3266975292935967e-3f);
  p = p * f + 9.675459936261177e-3f;
  p = p * f + 5.550742521882057e-2f;
  p = p * f + 2.4022121727466583e-1f;
  p = p * f + 6.931469440460205e-1f;
  p = p * f + 1.f;
  // 2^n: n + 127 in the exponent field; (int)shifted - (int)shifter == n.
  const i32v bits = ((i32v)shifted - (i32v)shifter + 127) << 23;
  return p * (f32v)bits;  // a same-size vector cast reinterprets the bits
}

// Scalar exp with the same rounding as the vector one (for per-element code outside hot loops).
inline float exp(float x) { return exp(splat(x))[0]; }

}  // namespace othink::cpu::simd
