// RMSNorm and LayerNorm over the last dimension (cpu/norm.h), forward and backward. The TS ops in
// @othink/core (ops/norm.ts) allocate the outputs and the per-row statistics and pass the shape as
// rows x hidden; here every length is checked against it before a kernel runs. Runs where the
// tensors are: the CPU kernel, or (CUDA builds) the CUDA twin (cuda/norm.cuh), which saves the same
// statistics (float32 rstd, and mean for LayerNorm) and overwrites the same gradients.
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/norm.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/allocator.cuh"
#include "cuda/norm.cuh"
#endif

namespace othink {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

struct NormShape {
  int64_t rows, hidden;
  std::string matrix, row, column;  // how each length follows from the shape, for the errors
};

NormShape read_shape(const Args& a) {
  const int64_t rows = a.positive_int("rows", 0, true), hidden = a.positive_int("hidden", 0, true);
  return {rows, hidden, "[rows, hidden] = " + dims({rows, hidden}), "[hidden] = " + dims({hidden}),
          "[rows] = " + dims({rows})};
}

float read_eps(const Args& a) {
  const double eps = a.number("eps", 0, true);
  if (eps < 0) a.range_error("eps must be >= 0 (got " + std::to_string(eps) + ")");
  return static_cast<float>(eps);
}

// rmsNorm({ x, weight, out, rstd, rows, hidden, eps }): out = x * rstd * weight, rstd [rows] written.
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Args a(info, "ops.rmsNorm", Args::Devices::AnyDevice);
  const NormShape s = read_shape(a);
  const float eps = read_eps(a);
  const float* x = a.f32_buffer("x", s.rows * s.hidden, s.matrix);
  const float* w = a.f32_buffer("weight", s.hidden, s.row);
  float* out = a.f32_buffer("out", s.rows * s.hidden, s.matrix);
  float* rstd = a.f32_buffer("rstd", s.rows, s.column);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::rms_norm_forward(x, w, s.rows, s.hidden, eps, out, rstd, cuda::tensor_stream()); });
#endif
  cpu::rms_norm_forward(x, w, s.rows, s.hidden, eps, out, rstd);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("rmsNorm", RmsNorm);

// rmsNormBackward({ grad, x, weight, rstd, rows, hidden, gradX?, gradWeight? })
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.rmsNormBackward", Args::Devices::AnyDevice);
  const NormShape s = read_shape(a);
  const float* g = a.f32_buffer("grad", s.rows * s.hidden, s.matrix);
  const float* x = a.f32_buffer("x", s.rows * s.hidden, s.matrix);
  const float* w = a.f32_buffer("weight", s.hidden, s.row);
  const float* rstd = a.f32_buffer("rstd", s.rows, s.column);
  float* dx = a.f32_buffer("gradX", s.rows * s.hidden, s.matrix, false);
  float* dw = a.f32_buffer("gradWeight", s.hidden, s.row, false);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      // The weight gradient's per-chunk column sums (deterministic, no atomics); none without it.
      const size_t bytes = dw ? cuda::norm_backward_workspace_bytes(s.rows, s.hidden) : 0;
      const cuda::DeviceScratch ws(bytes);
      cuda::rms_norm_backward(g, x, w, rstd, s.rows, s.hidden, dx, dw, ws.as<void>(), bytes, cuda::tensor_stream());
    });
#endif
  cpu::rms_norm_backward(g, x, w, rstd, s.rows, s.hidden, dx, dw);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("rmsNormBackward", RmsNormBackward);

// layerNorm({ x, weight, bias, out, mean, rstd, rows, hidden, eps })
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Args a(info, "ops.layerNorm", Args::Devices::AnyDevice);
  const NormShape s = read_shape(a);
  const float eps = read_eps(a);
  const float* x = a.f32_buffer("x", s.rows * s.hidden, s.matrix);
  const float* w = a.f32_buffer("weight", s.hidden, s.row);
  const float* b = a.f32_buffer("bias", s.hidden, s.row);
  float* out = a.f32_buffer("out", s.rows * s.hidden, s.matrix);
  float* mean = a.f32_buffer("mean", s.rows, s.column);
  float* rstd = a.f32_buffer("rstd", s.rows, s.column);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      cuda::layer_norm_forward(x, w, b, s.rows, s.hidden, eps, out, mean, rstd, cuda::tensor_stream());
    });
#endif
  cpu::layer_norm_forward(x, w, b, s.rows, s.hidden, eps, out, mean, rstd);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("layerNorm", LayerNorm);

// layerNormBackward({ grad, x, weight, mean, rstd, rows, hidden, gradX?, gradWeight?, gradBias? })
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.layerNormBackward", Args::Devices::AnyDevice);
  const NormShape s = read_shape(a);
  const float* g = a.f32_buffer("grad", s.rows * s.hidden, s.matrix);
  const float* x = a.f32_buffer("x", s.rows * s.hidden, s.matrix);
  const float* w = a.f32_buffer("weight", s.hidden, s.row);
  const float* mean = a.f32_buffer("mean", s.rows, s.column);
  const float* rstd = a.f32_buffer("rstd", s.rows, s.column);
  float* dx = a.f32_buffer("gradX", s.rows * s.hidden, s.matrix, false);
  float* dw = a.f32_buffer("gradWeight", s.hidden, s.row, false);
  float* db = a.f32_buffer("gradBias", s.hidden, s.row, false);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      const size_t bytes = dw || db ? cuda::norm_backward_workspace_bytes(s.rows, s.hidden) : 0;
      const cuda::DeviceScratch ws(bytes);
      cuda::layer_norm_backward(g, x, w, mean, rstd, s.rows, s.hidden, dx, dw, db, ws.as<void>(), bytes,
                                cuda::tensor_stream());
    });
#endif
  cpu::layer_norm_backward(g, x, w, mean, rstd, s.rows, s.hidden, dx, dw, db);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("layerNormBackward", LayerNormBackward);

}  // namespace
}  // namespace othink
