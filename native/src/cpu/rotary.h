// Rotary position embedding in the half-split ("rotate_half") convention of Qwen2-VL, for the
// LLM's M-RoPE (spec §3.5) and the vision tower's 2-D RoPE (spec §2.4) alike: both are this
// rotation with a different per-position cos / sin table, built in TS (ops/rope-tables.ts).
#pragma once
#include <cstdint>

namespace othink::cpu {

// x, out: [rows, heads, dim]; cos, sin: [rows, dim] (one table row per position, shared by the
// heads). dim is even; with half = dim / 2, x1 = x[0:half], x2 = x[half:dim]:
//   out = x * cos + rotate_half(x) * sin,   rotate_half(x) = [-x2, x1].
// out may alias x (each (i, i + half) pair is read before it is written).
void rotary_forward(const float* x, const float* cos, const float* sin, float* out, int64_t rows,
                    int64_t heads, int64_t dim);

// The exact transpose (d/dx of sum(grad * out)), valid for any table:
//   dx[j] = grad[j] cos[j] + (j < half ? grad[j + half] sin[j + half] : -grad[j - half] sin[j - half]).
// With RoPE's duplicated tables (cos[j] == cos[j + half]) this is the rotation by -sin.
// dx may alias grad.
void rotary_backward(const float* grad, const float* cos, const float* sin, float* dx, int64_t rows,
                     int64_t heads, int64_t dim);

}  // namespace othink::cpu
