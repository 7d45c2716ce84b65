#include "cpu/activation.h"

#include <algorithm>
#include <cmath>

#include "cpu/simd.h"

namespace othink::cpu {

namespace {
using simd::f32v;
using simd::kLanes;

// Memory-bound loops: one thread per 64K elements, handed out in blocks of 4K.
constexpr int64_t kGrain = 1 << 16;
constexpr int64_t kBlock = 1 << 12;
// QuickGELU's slope (spec §2.5: QuickGELU(x) = x * sigmoid(1.702 x), as in OpenAI's CLIP).
constexpr float kQuickGeluAlpha = 1.702f;
constexpr double kSqrtHalf = 0.70710678118654752440;       // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;     // 1 / sqrt(2 pi)

// Calls fn(i, lanes) for consecutive vectors [i, i + lanes) of [0, n), lanes = 16 except at the end.
template <typename Fn>
void for_each_vector(int64_t n, Fn&& fn) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; i += kLanes) fn(i, std::min(kLanes, end - i));
  }
}

inline f32v load(const float* p, int64_t lanes) {
  return lanes == kLanes ? simd::load(p) : simd::load_partial(p, lanes, 0.f);
}

inline void store(float* p, f32v v, int64_t lanes) {
  if (lanes == kLanes)
    simd::store(p, v);
  else
    simd::store_partial(p, v, lanes);
}

// 1 / (1 + exp(-x)): simd::exp saturates, so x -> -inf gives ~3e-39 (not NaN) and x -> +inf gives 1;
// NaN stays NaN.
inline f32v sigmoid(f32v x) { return 1.f / (1.f + simd::exp(-x)); }

// Phi(x) = (1 + erf(x / sqrt 2)) / 2 with the C library's erf (< 1 ulp): the merger's GELU is the
// exact form (spec §2.6), not the tanh approximation. Computed in double, then rounded once.
inline double phi_cdf(float x) { return 0.5 * (1.0 + std::erf(static_cast<double>(x) * kSqrtHalf)); }
}  // namespace

void swiglu_forward(const float* gate, const float* up, float* out, int64_t n) {
  for_each_vector(n, [&](int64_t i, int64_t lanes) {
    const f32v a = load(gate + i, lanes);
    // As PyTorch: silu(gate) first, then the product with up.
    store(out + i, (a * sigmoid(a)) * load(up + i, lanes), lanes);
  });
}

void swiglu_backward(const float* g, const float* gate, const float* up, float* dgate, float* dup, int64_t n) {
  for_each_vector(n, [&](int64_t i, int64_t lanes) {
    const f32v a = load(gate + i, lanes), gv = load(g + i, lanes);
    const f32v s = sigmoid(a);
    if (dgate) store(dgate + i, gv * load(up + i, lanes) * (s * (1.f + a * (1.f - s))), lanes);
    if (dup) store(dup + i, gv * (a * s), lanes);
  });
}

void quick_gelu_forward(const float* x, float* y, int64_t n) {
  for_each_vector(n, [&](int64_t i, int64_t lanes) {
    const f32v v = load(x + i, lanes);
    store(y + i, v * sigmoid(kQuickGeluAlpha * v), lanes);
  });
}

void quick_gelu_backward(const float* g, const float* x, float* dx, int64_t n) {
  for_each_vector(n, [&](int64_t i, int64_t lanes) {
    const f32v v = load(x + i, lanes);
    const f32v s = sigmoid(kQuickGeluAlpha * v);
    store(dx + i, load(g + i, lanes) * (s + kQuickGeluAlpha * v * s * (1.f - s)), lanes);
  });
}

void gelu_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<double>(x[i]) * phi_cdf(x[i]));
}

void gelu_backward(const float* g, const float* x, float* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kGrain)
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double pdf = kInvSqrt2Pi * std::exp(-0.5 * v * v);
    dx[i] = static_cast<float>(g[i] * (phi_cdf(x[i]) + v * pdf));
  }
}

}  // namespace othink::cpu
