// Elementwise activations (cpu/activation.h): SwiGLU, QuickGELU, exact GELU, forward and
// backward. Every array must have as many elements as the first input; outputs are passed in.
// Runs where the tensors are: the CPU kernel, or (CUDA builds) the CUDA twin (cuda/activation.cuh).
#include <cstddef>
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/activation.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/activation.cuh"
#endif

namespace othink {
namespace {

// swiglu({ gate, up, out }): out = silu(gate) * up
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  Args a(info, "ops.swiglu", Args::Devices::AnyDevice);
  const Args::Buffer gate = a.buffer("gate", "float32");
  const float* up = a.f32_buffer("up", gate.length, "the size of gate");
  float* out = a.f32_buffer("out", gate.length, "the size of gate");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      cuda::swiglu_forward(static_cast<const float*>(gate.data), up, out, static_cast<int64_t>(gate.length),
                           cuda::tensor_stream());
    });
#endif
  cpu::swiglu_forward(static_cast<const float*>(gate.data), up, out, static_cast<int64_t>(gate.length));
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("swiglu", Swiglu);

// swigluBackward({ grad, gate, up, gradGate?, gradUp? })
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.swigluBackward", Args::Devices::AnyDevice);
  const Args::Buffer g = a.buffer("grad", "float32");
  const float* gate = a.f32_buffer("gate", g.length, "the size of grad");
  const float* up = a.f32_buffer("up", g.length, "the size of grad");
  float* dgate = a.f32_buffer("gradGate", g.length, "the size of grad", false);
  float* dup = a.f32_buffer("gradUp", g.length, "the size of grad", false);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      cuda::swiglu_backward(static_cast<const float*>(g.data), gate, up, dgate, dup, static_cast<int64_t>(g.length),
                            cuda::tensor_stream());
    });
#endif
  cpu::swiglu_backward(static_cast<const float*>(g.data), gate, up, dgate, dup, static_cast<int64_t>(g.length));
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("swigluBackward", SwigluBackward);

using Forward = void (*)(const float*, float*, int64_t);
using Backward = void (*)(const float*, const float*, float*, int64_t);
#ifdef OTHINK_WITH_CUDA
using CudaForward = void (*)(const float*, float*, int64_t, cudaStream_t);
using CudaBackward = void (*)(const float*, const float*, float*, int64_t, cudaStream_t);
#else
// CPU builds have no launcher: the slot is always null there.
using CudaForward = std::nullptr_t;
using CudaBackward = std::nullptr_t;
#endif

// { x, out }: out = f(x)
Napi::Value Unary(const Napi::CallbackInfo& info, const char* name, Forward fn, [[maybe_unused]] CudaForward cuda_fn) {
  Args a(info, name, Args::Devices::AnyDevice);
  const Args::Buffer x = a.buffer("x", "float32");
  float* out = a.f32_buffer("out", x.length, "the size of x");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda_fn(static_cast<const float*>(x.data), out, static_cast<int64_t>(x.length), cuda::tensor_stream()); });
#endif
  fn(static_cast<const float*>(x.data), out, static_cast<int64_t>(x.length));
  return info.Env().Undefined();
}

// { grad, x, gradX }: gradX = grad * f'(x)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info, const char* name, Backward fn,
                          [[maybe_unused]] CudaBackward cuda_fn) {
  Args a(info, name, Args::Devices::AnyDevice);
  const Args::Buffer g = a.buffer("grad", "float32");
  const float* x = a.f32_buffer("x", g.length, "the size of grad");
  float* dx = a.f32_buffer("gradX", g.length, "the size of grad");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      cuda_fn(static_cast<const float*>(g.data), x, dx, static_cast<int64_t>(g.length), cuda::tensor_stream());
    });
#endif
  fn(static_cast<const float*>(g.data), x, dx, static_cast<int64_t>(g.length));
  return info.Env().Undefined();
}

// The CUDA launcher of a formula (the float32 instantiation), or null in a CPU build.
#ifdef OTHINK_WITH_CUDA
#define OTHINK_CUDA_LAUNCHER(fn) (&cuda::fn<float>)
#else
#define OTHINK_CUDA_LAUNCHER(fn) nullptr
#endif

Napi::Value QuickGelu(const Napi::CallbackInfo& info) {
  return Unary(info, "ops.quickGelu", cpu::quick_gelu_forward, OTHINK_CUDA_LAUNCHER(quick_gelu_forward));
}
OTHINK_REGISTER_OP("quickGelu", QuickGelu);

Napi::Value QuickGeluBackward(const Napi::CallbackInfo& info) {
  return UnaryBackward(info, "ops.quickGeluBackward", cpu::quick_gelu_backward, OTHINK_CUDA_LAUNCHER(quick_gelu_backward));
}
OTHINK_REGISTER_OP("quickGeluBackward", QuickGeluBackward);

Napi::Value Gelu(const Napi::CallbackInfo& info) {
  return Unary(info, "ops.gelu", cpu::gelu_forward, OTHINK_CUDA_LAUNCHER(gelu_forward));
}
OTHINK_REGISTER_OP("gelu", Gelu);

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  return UnaryBackward(info, "ops.geluBackward", cpu::gelu_backward, OTHINK_CUDA_LAUNCHER(gelu_backward));
}
OTHINK_REGISTER_OP("geluBackward", GeluBackward);

#undef OTHINK_CUDA_LAUNCHER

}  // namespace
}  // namespace othink
