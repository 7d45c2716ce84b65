// Row normalisations over the last dimension of a contiguous [rows, hidden] tensor, forward and
// backward, as Qwen2-VL uses them (shared/docs/qwen2vl-spec.md §2.5, §3.2, §8.6):
//   RMSNorm   y = (x * rstd) * w,                  rstd = 1 / sqrt(mean(x^2) + eps)
//   LayerNorm y = ((x - mean) * rstd) * w + b,     rstd = 1 / sqrt(mean((x - mean)^2) + eps)
// (biased variance). The row statistics are accumulated in float64 and stored as float32 [rows]
// for the backward, which recomputes x_hat from them instead of keeping it.
#pragma once
#include <cstdint>

namespace othink::cpu {

// x, y [rows, hidden]; w [hidden]; rstd [rows] (written).
void rms_norm_forward(const float* x, const float* w, int64_t rows, int64_t hidden, float eps, float* y,
                      float* rstd);

// With x_hat = x * rstd:  dx = rstd * (g * w - x_hat * mean(g * w * x_hat)),  dw = sum_rows g * x_hat.
// dx [rows, hidden] and dw [hidden] are written (either may be null: not computed).
void rms_norm_backward(const float* g, const float* x, const float* w, const float* rstd, int64_t rows,
                       int64_t hidden, float* dx, float* dw);

// x, y [rows, hidden]; w, b [hidden]; mean, rstd [rows] (written).
void layer_norm_forward(const float* x, const float* w, const float* b, int64_t rows, int64_t hidden, float eps,
                        float* y, float* mean, float* rstd);

// With x_hat = (x - mean) * rstd and gw = g * w:
//   dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat)),  dw = sum_rows g * x_hat,  db = sum_rows g.
// Any of dx, dw, db may be null (not computed).
void layer_norm_backward(const float* g, const float* x, const float* w, const float* mean, const float* rstd,
                         int64_t rows, int64_t hidden, float* dx, float* dw, float* db);

}  // namespace othink::cpu
