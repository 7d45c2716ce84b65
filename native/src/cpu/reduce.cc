#include "cpu/reduce.h"

#include <cstddef>
#include <vector>

namespace othink::cpu {

void sum_axis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner, float scale) {
  if (inner == 1) {
    // Rows of `axis` contiguous values: one double-accumulated dot per row.
#pragma omp parallel for if (outer * axis > (1 << 16))
    for (int64_t o = 0; o < outer; ++o) {
      double s = 0.0;
      const float* row = x + o * axis;
      for (int64_t a = 0; a < axis; ++a) s += row[a];
      out[o] = static_cast<float>(s * scale);
    }
    return;
  }
  // Sum rows of `inner` values: vectorised over inner, float accumulation in a double buffer.
#pragma omp parallel for if (outer * axis * inner > (1 << 16))
  for (int64_t o = 0; o < outer; ++o) {
    std::vector<double> acc(static_cast<size_t>(inner), 0.0);
    for (int64_t a = 0; a < axis; ++a) {
      const float* row = x + (o * axis + a) * inner;
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) acc[i] += row[i];
    }
    for (int64_t i = 0; i < inner; ++i) out[o * inner + i] = static_cast<float>(acc[i] * scale);
  }
}

void broadcast_axis(const float* g, float* out, int64_t outer, int64_t axis, int64_t inner, float scale) {
#pragma omp parallel for collapse(2) if (outer * axis * inner > (1 << 16))
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t a = 0; a < axis; ++a) {
      float* row = out + (o * axis + a) * inner;
      const float* src = g + o * inner;
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) row[i] = scale * src[i];
    }
}

double sum_squares(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

}  // namespace othink::cpu
