// Elementwise float32 arithmetic for the tensor ops: binary ops with a trailing broadcast,
// affine maps and accumulation.
#pragma once
#include <cstdint>

namespace othink::cpu {

enum class BinaryOp { Add, Sub, Mul };

// out[i] = a[i] op b[i % b_len]: b has a's shape or is broadcast over a's leading dimensions.
void binary(BinaryOp op, const float* a, const float* b, float* out, int64_t n, int64_t b_len);

// out[i] = alpha * a[i] + beta  (out may alias a)
void affine(const float* a, float* out, int64_t n, float alpha, float beta);

// y[i] += alpha * x[i]
void axpy(float alpha, const float* x, float* y, int64_t n);

void fill(float* out, int64_t n, float value);

}  // namespace othink::cpu
