#include "cpu/cast.h"

namespace othink::cpu {

void cast_f32_to_bf16(const float* x, uint16_t* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = float_to_bf16(x[i]);
}

void cast_bf16_to_f32(const uint16_t* x, float* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(x[i]);
}

}  // namespace othink::cpu
