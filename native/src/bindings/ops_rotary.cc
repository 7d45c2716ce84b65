// Rotary position embedding (cpu/rotary.h, cuda/rotary.cuh): the TS op passes x [rows, heads, dim]
// and the per-position cos / sin tables [rows, dim]; every length is checked against those sizes
// here. Runs where the tensors are: the CPU kernel, or (CUDA builds) the CUDA twin.
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/rotary.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/rotary.cuh"
#endif

namespace othink {
namespace {

struct RotaryArgs {
  int64_t rows, heads, dim;
  const float *x, *cos, *sin;
  float* out;
};

// The input is `input_name` (x forward, grad backward); out receives the result (may alias it).
RotaryArgs read(const Args& a, const char* input_name) {
  RotaryArgs r{};
  r.rows = a.positive_int("rows", 0, true);
  r.heads = a.positive_int("heads", 0, true);
  r.dim = a.positive_int("dim", 0, true);
  if (r.dim % 2 != 0) a.range_error("dim must be even for the half-split rotation (got " + std::to_string(r.dim) + ")");
  const std::string x_shape = "[rows, heads, dim] = [" + std::to_string(r.rows) + ", " + std::to_string(r.heads) + ", " +
                              std::to_string(r.dim) + "]";
  const std::string t_shape = "[rows, dim] = [" + std::to_string(r.rows) + ", " + std::to_string(r.dim) + "]";
  const size_t n = static_cast<size_t>(r.rows * r.heads * r.dim), nt = static_cast<size_t>(r.rows * r.dim);
  r.x = a.f32_buffer(input_name, n, x_shape);
  r.cos = a.f32_buffer("cos", nt, t_shape);
  r.sin = a.f32_buffer("sin", nt, t_shape);
  r.out = a.f32_buffer("out", n, x_shape);
  return r;
}

// rotary({ x, cos, sin, out, rows, heads, dim }): out = x * cos + rotate_half(x) * sin
Napi::Value Rotary(const Napi::CallbackInfo& info) {
  Args a(info, "ops.rotary", Args::Devices::AnyDevice);
  const RotaryArgs r = read(a, "x");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::rotary_forward(r.x, r.cos, r.sin, r.out, r.rows, r.heads, r.dim, cuda::tensor_stream()); });
#endif
  cpu::rotary_forward(r.x, r.cos, r.sin, r.out, r.rows, r.heads, r.dim);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("rotary", Rotary);

// rotaryBackward({ grad, cos, sin, out, rows, heads, dim }): out = d/dx sum(grad * rotary(x))
Napi::Value RotaryBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.rotaryBackward", Args::Devices::AnyDevice);
  const RotaryArgs r = read(a, "grad");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::rotary_backward(r.x, r.cos, r.sin, r.out, r.rows, r.heads, r.dim, cuda::tensor_stream()); });
#endif
  cpu::rotary_backward(r.x, r.cos, r.sin, r.out, r.rows, r.heads, r.dim);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("rotaryBackward", RotaryBackward);

}  // namespace
}  // namespace othink
