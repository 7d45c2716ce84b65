// cast({ x, out }): out = x converted between float32 and bfloat16 (the direction is given by
// their dtypes: float32 -> bfloat16 rounds to nearest even and keeps NaN, bfloat16 -> float32 is
// exact). Same element count, one device; the CPU kernel or the CUDA twin.
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/float_dtype.h"
#include "bindings/ops_registry.h"
#include "cpu/cast.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/cast.cuh"
#endif

namespace othink {
namespace {

Napi::Value Cast(const Napi::CallbackInfo& info) {
  Args a(info, "ops.cast", Args::Devices::AnyDevice);
  const FloatDType from = float_dtype(a, "x"), to = float_dtype(a, "out");
  if (from == to)
    a.type_error(std::string("x and out are both ") + dtype_name(from) + "; cast converts float32 <-> bfloat16");
  Args::Buffer x = a.buffer("x", dtype_name(from)), out = a.buffer("out", dtype_name(to));
  if (out.length != x.length)
    a.range_error("out has " + std::to_string(out.length) + " elements; expected " + std::to_string(x.length) +
                  " (the size of x)");
  const int64_t n = static_cast<int64_t>(x.length);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      if (from == FloatDType::F32)
        cuda::cast_f32_to_bf16(static_cast<const float*>(x.data), static_cast<uint16_t*>(out.data), n, cuda::tensor_stream());
      else
        cuda::cast_bf16_to_f32(static_cast<const uint16_t*>(x.data), static_cast<float*>(out.data), n, cuda::tensor_stream());
    });
#endif
  if (from == FloatDType::F32)
    cpu::cast_f32_to_bf16(static_cast<const float*>(x.data), static_cast<uint16_t*>(out.data), n);
  else
    cpu::cast_bf16_to_f32(static_cast<const uint16_t*>(x.data), static_cast<float*>(out.data), n);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("cast", Cast);

}  // namespace
}  // namespace othink
