#include "cpu/norm.h"

#include <algorithm>
#include <cmath>

namespace othink::cpu {

namespace {
// Rows are independent: one thread per 64K elements is plenty for these memory-bound loops.
constexpr int64_t kGrain = 1 << 16;
// Columns per task of the weight / bias gradients: 64 floats = four cache lines of each row, and
// for Qwen2-VL's 1280 / 1536 widths 20 / 24 tasks to share between threads.
constexpr int64_t kColBlock = 64;

// Sum of x[0..n) and of x^2, in float64: a 1536-wide row loses nothing to rounding this way.
inline double row_sum(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}

inline double row_sum_squares(const float* x, int64_t n, double centre) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) {
    const double d = static_cast<double>(x[j]) - centre;
    s += d * d;
  }
  return s;
}

// dw[j] = sum_r g[r, j] * x_hat[r, j] and db[j] = sum_r g[r, j], with x_hat computed as in the
// forward: (x - mean) * rstd in float32 (mean null: 0, RMSNorm). Each task owns a block of columns
// and walks every row in order, so the sums are deterministic whatever the number of threads.
void column_sums(const float* g, const float* x, const float* mean, const float* rstd, int64_t rows,
                 int64_t hidden, float* dw, float* db) {
  const int64_t blocks = (hidden + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (rows * hidden > kGrain)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColBlock, len = std::min(kColBlock, hidden - c0);
    double acc_w[kColBlock] = {}, acc_b[kColBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const float* gr = g + r * hidden + c0;
      const float* xr = x + r * hidden + c0;
      const float m = mean ? mean[r] : 0.f, s = rstd[r];
      if (dw) {
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) acc_w[j] += static_cast<double>(gr[j]) * ((xr[j] - m) * s);
      }
      if (db) {
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) acc_b[j] += gr[j];
      }
    }
    for (int64_t j = 0; j < len; ++j) {
      if (dw) dw[c0 + j] = static_cast<float>(acc_w[j]);
      if (db) db[c0 + j] = static_cast<float>(acc_b[j]);
    }
  }
}
}  // namespace

void rms_norm_forward(const float* x, const float* w, int64_t rows, int64_t hidden, float eps, float* y,
                      float* rstd) {
#pragma omp parallel for schedule(static) if (rows * hidden > kGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * hidden;
    float* yr = y + r * hidden;
    const double ms = row_sum_squares(xr, hidden, 0.0) / static_cast<double>(hidden);
    const float s = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
    rstd[r] = s;
    // HF's order: the normalised row first, then the weight (spec §3.2).
#pragma omp simd
    for (int64_t j = 0; j < hidden; ++j) yr[j] = (xr[j] * s) * w[j];
  }
}

void rms_norm_backward(const float* g, const float* x, const float* w, const float* rstd, int64_t rows,
                       int64_t hidden, float* dx, float* dw) {
  if (dx) {
#pragma omp parallel for schedule(static) if (rows * hidden > kGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const float* gr = g + r * hidden;
      const float* xr = x + r * hidden;
      float* dr = dx + r * hidden;
      const float s = rstd[r];
      double dot = 0.0;  // sum_j g w x_hat
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < hidden; ++j) dot += static_cast<double>(gr[j] * w[j]) * (xr[j] * s);
      const float c = static_cast<float>(dot / static_cast<double>(hidden));
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) dr[j] = s * (gr[j] * w[j] - (xr[j] * s) * c);
    }
  }
  if (dw) column_sums(g, x, nullptr, rstd, rows, hidden, dw, nullptr);
}

void layer_norm_forward(const float* x, const float* w, const float* b, int64_t rows, int64_t hidden, float eps,
                        float* y, float* mean, float* rstd) {
#pragma omp parallel for schedule(static) if (rows * hidden > kGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * hidden;
    float* yr = y + r * hidden;
    // Two passes (mean, then the centred squares): no cancellation when |mean| >> std.
    const double mu = row_sum(xr, hidden) / static_cast<double>(hidden);
    const double var = row_sum_squares(xr, hidden, mu) / static_cast<double>(hidden);
    const float m = static_cast<float>(mu);
    const float s = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    mean[r] = m;
    rstd[r] = s;
#pragma omp simd
    for (int64_t j = 0; j < hidden; ++j) yr[j] = ((xr[j] - m) * s) * w[j] + b[j];
  }
}

void layer_norm_backward(const float* g, const float* x, const float* w, const float* mean, const float* rstd,
                         int64_t rows, int64_t hidden, float* dx, float* dw, float* db) {
  if (dx) {
#pragma omp parallel for schedule(static) if (rows * hidden > kGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const float* gr = g + r * hidden;
      const float* xr = x + r * hidden;
      float* dr = dx + r * hidden;
      const float m = mean[r], s = rstd[r];
      double sum_gw = 0.0, dot = 0.0;  // sum_j g w, sum_j g w x_hat
#pragma omp simd reduction(+ : sum_gw, dot)
      for (int64_t j = 0; j < hidden; ++j) {
        const float gw = gr[j] * w[j];
        sum_gw += gw;
        dot += static_cast<double>(gw) * ((xr[j] - m) * s);
      }
      const float a = static_cast<float>(sum_gw / static_cast<double>(hidden));
      const float c = static_cast<float>(dot / static_cast<double>(hidden));
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) dr[j] = s * (gr[j] * w[j] - a - ((xr[j] - m) * s) * c);
    }
  }
  if (dw || db) column_sums(g, x, mean, rstd, rows, hidden, dw, db);
}

}  // namespace othink::cpu
