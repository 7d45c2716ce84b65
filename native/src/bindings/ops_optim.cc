// Optimizer kernels: the fused AdamW update, on the CPU or (CUDA builds) the GPU, where the tensors are.
#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/adamw.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/adamw.cuh"
#endif

namespace othink {
namespace {

// adamwStep({ param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale = 1 })
// Updates param, m and v in place (all float32 of the same length).
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Args a(info, "ops.adamwStep", Args::Devices::AnyDevice);
  Args::Buffer param = a.buffer("param", "float32");
  const size_t n = param.length;
  const float* grad = a.f32_buffer("grad", n, "the size of param");
  float* m = a.f32_buffer("m", n, "the size of param");
  float* v = a.f32_buffer("v", n, "the size of param");
  cpu::AdamWConfig c;
  c.lr = static_cast<float>(a.number("lr", 0, true));
  c.beta1 = static_cast<float>(a.number("beta1", 0.9));
  c.beta2 = static_cast<float>(a.number("beta2", 0.999));
  c.eps = static_cast<float>(a.number("eps", 1e-8));
  c.weight_decay = static_cast<float>(a.number("weightDecay", 0.01));
  c.step = a.positive_int("step", 0, true);
  c.grad_scale = static_cast<float>(a.number("gradScale", 1));
  if (c.lr < 0) a.range_error("lr must be >= 0");
  if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1)) a.range_error("beta1 and beta2 must be in [0, 1)");
  if (c.eps <= 0) a.range_error("eps must be > 0");
  if (c.weight_decay < 0) a.range_error("weightDecay must be >= 0");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda) {
    const cuda::AdamWConfig g{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.step, c.grad_scale};
    return run_cuda(a, [&] { cuda::adamw_step(static_cast<float*>(param.data), grad, m, v, static_cast<int64_t>(n), g, cuda::tensor_stream()); });
  }
#endif
  cpu::adamw_step(static_cast<float*>(param.data), grad, m, v, static_cast<int64_t>(n), c);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("adamwStep", AdamwStep);

}  // namespace
}  // namespace othink
