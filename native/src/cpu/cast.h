// float32 <-> bfloat16 on the host. bfloat16 is the top half of a float32 (sign, 8-bit exponent,
// 7-bit mantissa), so widening is exact and narrowing is one rounding: round to nearest, ties to
// even, NaN kept NaN (its sign and top payload bits, the quiet bit set, so no NaN rounds to inf).
// The CUDA twin (cuda/cast.cu) uses the same bit formula, so both sides agree bit for bit.
#pragma once
#include <cstdint>
#include <cstring>

namespace othink::cpu {

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu) != 0) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  // Adding 0x7fff plus the lowest kept bit carries into the kept half exactly when the dropped half
  // is above one half, or equal to it with an odd kept half (ties to even). The carry may run into
  // the exponent: the largest finite values round to inf, subnormals to the nearest bf16 subnormal.
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

void cast_f32_to_bf16(const float* x, uint16_t* out, int64_t n);
void cast_bf16_to_f32(const uint16_t* x, float* out, int64_t n);

}  // namespace othink::cpu
