#include "cpu/rotary.h"

namespace othink::cpu {

namespace {
// Memory bound (a few flops per element): one thread per 64K elements at most.
constexpr int64_t kGrain = 1 << 16;

// One (position, head) vector. kBackward selects the transpose; c1/s1 are the table's first half,
// c2/s2 its second half. Pairs (i, i + half) are loaded before either is stored (in place is safe).
template <bool kBackward>
inline void rotate(const float* x, const float* c1, const float* s1, const float* c2, const float* s2,
                   float* out, int64_t half) {
  const float* x1 = x;
  const float* x2 = x + half;
  float* o1 = out;
  float* o2 = out + half;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    const float a = x1[i], b = x2[i];
    if (kBackward) {
      // forward: o1 = a c1 - b s1, o2 = b c2 + a s2  =>  da = g1 c1 + g2 s2, db = g2 c2 - g1 s1
      o1[i] = a * c1[i] + b * s2[i];
      o2[i] = b * c2[i] - a * s1[i];
    } else {
      o1[i] = a * c1[i] - b * s1[i];
      o2[i] = b * c2[i] + a * s2[i];
    }
  }
}

template <bool kBackward>
void run(const float* x, const float* cos, const float* sin, float* out, int64_t rows, int64_t heads,
         int64_t dim) {
  const int64_t half = dim / 2;
  const int64_t n = rows * heads;
#pragma omp parallel for if (n * dim > kGrain) schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const int64_t r = t / heads;
    const float* c = cos + r * dim;
    const float* s = sin + r * dim;
    rotate<kBackward>(x + t * dim, c, s, c + half, s + half, out + t * dim, half);
  }
}
}  // namespace

void rotary_forward(const float* x, const float* cos, const float* sin, float* out, int64_t rows,
                    int64_t heads, int64_t dim) {
  run<false>(x, cos, sin, out, rows, heads, dim);
}

void rotary_backward(const float* grad, const float* cos, const float* sin, float* dx, int64_t rows,
                     int64_t heads, int64_t dim) {
  run<true>(grad, cos, sin, dx, rows, heads, dim);
}

}  // namespace othink::cpu
