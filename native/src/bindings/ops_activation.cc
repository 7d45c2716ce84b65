// Elementwise activations (cpu/activation.h): SwiGLU, QuickGELU, exact GELU, forward and
// backward. Every array must have as many elements as the first input; outputs are passed in.
#include <string>

#include "args.h"
#include "bindings/ops_registry.h"
#include "cpu/activation.h"

namespace othink {
namespace {

// swiglu({ gate, up, out }): out = silu(gate) * up
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  Args a(info, "ops.swiglu");
  const Args::Buffer gate = a.buffer("gate", "float32");
  const float* up = a.f32_buffer("up", gate.length, "the size of gate");
  float* out = a.f32_buffer("out", gate.length, "the size of gate");
  cpu::swiglu_forward(static_cast<const float*>(gate.data), up, out, static_cast<int64_t>(gate.length));
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("swiglu", Swiglu);

// swigluBackward({ grad, gate, up, gradGate?, gradUp? })
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.swigluBackward");
  const Args::Buffer g = a.buffer("grad", "float32");
  const float* gate = a.f32_buffer("gate", g.length, "the size of grad");
  const float* up = a.f32_buffer("up", g.length, "the size of grad");
  float* dgate = a.f32_buffer("gradGate", g.length, "the size of grad", false);
  float* dup = a.f32_buffer("gradUp", g.length, "the size of grad", false);
  cpu::swiglu_backward(static_cast<const float*>(g.data), gate, up, dgate, dup, static_cast<int64_t>(g.length));
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("swigluBackward", SwigluBackward);

using Forward = void (*)(const float*, float*, int64_t);
using Backward = void (*)(const float*, const float*, float*, int64_t);

// { x, out }: out = f(x)
Napi::Value Unary(const Napi::CallbackInfo& info, const char* name, Forward fn) {
  Args a(info, name);
  const Args::Buffer x = a.buffer("x", "float32");
  float* out = a.f32_buffer("out", x.length, "the size of x");
  fn(static_cast<const float*>(x.data), out, static_cast<int64_t>(x.length));
  return info.Env().Undefined();
}

// { grad, x, gradX }: gradX = grad * f'(x)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info, const char* name, Backward fn) {
  Args a(info, name);
  const Args::Buffer g = a.buffer("grad", "float32");
  const float* x = a.f32_buffer("x", g.length, "the size of grad");
  float* dx = a.f32_buffer("gradX", g.length, "the size of grad");
  fn(static_cast<const float*>(g.data), x, dx, static_cast<int64_t>(g.length));
  return info.Env().Undefined();
}

Napi::Value QuickGelu(const Napi::CallbackInfo& info) { return Unary(info, "ops.quickGelu", cpu::quick_gelu_forward); }
OTHINK_REGISTER_OP("quickGelu", QuickGelu);

Napi::Value QuickGeluBackward(const Napi::CallbackInfo& info) {
  return UnaryBackward(info, "ops.quickGeluBackward", cpu::quick_gelu_backward);
}
OTHINK_REGISTER_OP("quickGeluBackward", QuickGeluBackward);

Napi::Value Gelu(const Napi::CallbackInfo& info) { return Unary(info, "ops.gelu", cpu::gelu_forward); }
OTHINK_REGISTER_OP("gelu", Gelu);

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  return UnaryBackward(info, "ops.geluBackward", cpu::gelu_backward);
}
OTHINK_REGISTER_OP("geluBackward", GeluBackward);

}  // namespace
}  // namespace othink
