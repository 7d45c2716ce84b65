// Elementwise activations of Qwen2-VL, forward and backward (shared/docs/qwen2vl-spec.md §2.5,
// §2.6, §3.4, §8.8):
//   swiglu(gate, up) = silu(gate) * up,   silu(x) = x * sigmoid(x)    (LLM MLP: down(silu(gate(x)) * up(x)))
//   quick_gelu(x)    = x * sigmoid(1.702 x)                           (vision-block MLP)
//   gelu(x)          = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))       (merger MLP, the exact erf form)
// All arrays hold n floats; outputs may not alias inputs of the backward that are read after them.
#pragma once
#include <cstdint>

namespace othink::cpu {

void swiglu_forward(const float* gate, const float* up, float* out, int64_t n);
// dgate = g * up * sigmoid(gate) * (1 + gate * (1 - sigmoid(gate))),  dup = g * silu(gate).
// Either output may be null (not computed).
void swiglu_backward(const float* g, const float* gate, const float* up, float* dgate, float* dup, int64_t n);

void quick_gelu_forward(const float* x, float* y, int64_t n);
// dx = g * (s + 1.702 x s (1 - s)),  s = sigmoid(1.702 x).
void quick_gelu_backward(const float* g, const float* x, float* dx, int64_t n);

void gelu_forward(const float* x, float* y, int64_t n);
// dx = g * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
void gelu_backward(const float* g, const float* x, float* dx, int64_t n);

}  // namespace othink::cpu
