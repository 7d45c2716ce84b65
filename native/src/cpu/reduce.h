// Reductions over one axis of a contiguous tensor viewed as [outer, axis, inner], and the
// broadcast that is their backward.
#pragma once
#include <cstdint>

namespace othink::cpu {

// out[o, i] = scale * sum_a x[o, a, i]
void sum_axis(const float* x, float* out, int64_t outer, int64_t axis, int64_t inner, float scale);

// out[o, a, i] = scale * g[o, i]
void broadcast_axis(const float* g, float* out, int64_t outer, int64_t axis, int64_t inner, float scale);

// sum_i x[i]^2 in double (gradient norms).
double sum_squares(const float* x, int64_t n);

}  // namespace othink::cpu
