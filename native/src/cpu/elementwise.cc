#include "cpu/elementwise.h"

#include <algorithm>

namespace othink::cpu {

namespace {
// Elementwise loops are memory bound: one thread per 64K elements is plenty.
constexpr int64_t kGrain = 1 << 16;
}  // namespace

void binary(BinaryOp op, const float* a, const float* b, float* out, int64_t n, int64_t b_len) {
  const int64_t rows = n / b_len;
#pragma omp parallel for if (n > kGrain) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = a + r * b_len;
    float* o = out + r * b_len;
    switch (op) {
      case BinaryOp::Add:
#pragma omp simd
        for (int64_t j = 0; j < b_len; ++j) o[j] = ar[j] + b[j];
        break;
      case BinaryOp::Sub:
#pragma omp simd
        for (int64_t j = 0; j < b_len; ++j) o[j] = ar[j] - b[j];
        break;
      case BinaryOp::Mul:
#pragma omp simd
        for (int64_t j = 0; j < b_len; ++j) o[j] = ar[j] * b[j];
        break;
    }
  }
}

void affine(const float* a, float* out, int64_t n, float alpha, float beta) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * a[i] + beta;
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void fill(float* out, int64_t n, float value) { std::fill(out, out + n, value); }

}  // namespace othink::cpu
