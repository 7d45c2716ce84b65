// Basic tensor ops: elementwise arithmetic, axis reductions, block copies and matmul. The TS ops
// in @othink/core allocate outputs and pass shapes; here every length is checked against them.
// Each op runs where its tensors are: the CPU kernel, or (CUDA builds) the CUDA twin.
#include <climits>
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/float_dtype.h"
#include "bindings/ops_registry.h"
#include "cpu/copy.h"
#include "cpu/elementwise.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16.h"
#include "cpu/reduce.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/copy.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemm.cuh"
#include "cuda/reduce.cuh"
#endif

namespace othink {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

// binary({ op: 'add'|'sub'|'mul', a, b, out }): out = a op b, b broadcast over a's leading dims.
Napi::Value Binary(const Napi::CallbackInfo& info) {
  Args a(info, "ops.binary", Args::Devices::AnyDevice);
  const std::string op = a.choice("op", "add", {"add", "sub", "mul"});
  Args::Buffer x = a.buffer("a", "float32"), y = a.buffer("b", "float32");
  if (y.length == 0 || x.length % y.length != 0)
    a.range_error("b has " + std::to_string(y.length) + " elements, which does not divide a's " + std::to_string(x.length));
  float* out = a.f32_buffer("out", x.length, "the size of a");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      cuda::binary(op == "add" ? cuda::BinaryOp::Add : op == "sub" ? cuda::BinaryOp::Sub : cuda::BinaryOp::Mul,
                   static_cast<float*>(x.data), static_cast<float*>(y.data), out, static_cast<int64_t>(x.length),
                   static_cast<int64_t>(y.length), cuda::tensor_stream());
    });
#endif
  cpu::binary(op == "add" ? cpu::BinaryOp::Add : op == "sub" ? cpu::BinaryOp::Sub : cpu::BinaryOp::Mul,
              static_cast<float*>(x.data), static_cast<float*>(y.data), out, static_cast<int64_t>(x.length),
              static_cast<int64_t>(y.length));
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("binary", Binary);

// affine({ a, out, alpha = 1, beta = 0 }): out = alpha * a + beta
Napi::Value Affine(const Napi::CallbackInfo& info) {
  Args a(info, "ops.affine", Args::Devices::AnyDevice);
  Args::Buffer x = a.buffer("a", "float32");
  float* out = a.f32_buffer("out", x.length, "the size of a");
  const float alpha = static_cast<float>(a.number("alpha", 1)), beta = static_cast<float>(a.number("beta", 0));
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::affine(static_cast<float*>(x.data), out, static_cast<int64_t>(x.length), alpha, beta, cuda::tensor_stream()); });
#endif
  cpu::affine(static_cast<float*>(x.data), out, static_cast<int64_t>(x.length), alpha, beta);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("affine", Affine);

// axpy({ x, y, alpha = 1 }): y += alpha * x
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Args a(info, "ops.axpy", Args::Devices::AnyDevice);
  Args::Buffer x = a.buffer("x", "float32");
  float* y = a.f32_buffer("y", x.length, "the size of x");
  const float alpha = static_cast<float>(a.number("alpha", 1));
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::axpy(alpha, static_cast<float*>(x.data), y, static_cast<int64_t>(x.length), cuda::tensor_stream()); });
#endif
  cpu::axpy(alpha, static_cast<float*>(x.data), y, static_cast<int64_t>(x.length));
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("axpy", Axpy);

// fill({ out, value })
Napi::Value Fill(const Napi::CallbackInfo& info) {
  Args a(info, "ops.fill", Args::Devices::AnyDevice);
  Args::Buffer out = a.buffer("out", "float32");
  const float value = static_cast<float>(a.number("value", 0, true));
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::fill(static_cast<float*>(out.data), static_cast<int64_t>(out.length), value, cuda::tensor_stream()); });
#endif
  cpu::fill(static_cast<float*>(out.data), static_cast<int64_t>(out.length), value);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("fill", Fill);

struct AxisShape {
  int64_t outer, axis, inner;
};

AxisShape read_axis_shape(const Args& a) {
  return {a.positive_int("outer", 1), a.positive_int("axis", 0, true), a.positive_int("inner", 1)};
}

// sumAxis({ x, out, outer, axis, inner, scale = 1 }): out[o, i] = scale * sum_a x[o, a, i]
Napi::Value SumAxis(const Napi::CallbackInfo& info) {
  Args a(info, "ops.sumAxis", Args::Devices::AnyDevice);
  const AxisShape s = read_axis_shape(a);
  const float* x = a.f32_buffer("x", s.outer * s.axis * s.inner, "[outer, axis, inner] = " + dims({s.outer, s.axis, s.inner}));
  float* out = a.f32_buffer("out", s.outer * s.inner, "[outer, inner] = " + dims({s.outer, s.inner}));
  const float scale = static_cast<float>(a.number("scale", 1));
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::sum_axis(x, out, s.outer, s.axis, s.inner, scale, cuda::tensor_stream()); });
#endif
  cpu::sum_axis(x, out, s.outer, s.axis, s.inner, scale);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("sumAxis", SumAxis);

// broadcastAxis({ g, out, outer, axis, inner, scale = 1 }): out[o, a, i] = scale * g[o, i]
Napi::Value BroadcastAxis(const Napi::CallbackInfo& info) {
  Args a(info, "ops.broadcastAxis", Args::Devices::AnyDevice);
  const AxisShape s = read_axis_shape(a);
  const float* g = a.f32_buffer("g", s.outer * s.inner, "[outer, inner] = " + dims({s.outer, s.inner}));
  float* out = a.f32_buffer("out", s.outer * s.axis * s.inner, "[outer, axis, inner] = " + dims({s.outer, s.axis, s.inner}));
  const float scale = static_cast<float>(a.number("scale", 1));
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] { cuda::broadcast_axis(g, out, s.outer, s.axis, s.inner, scale, cuda::tensor_stream()); });
#endif
  cpu::broadcast_axis(g, out, s.outer, s.axis, s.inner, scale);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("broadcastAxis", BroadcastAxis);

// sumSquares({ x }) -> number (double accumulation; on CUDA it waits for the value)
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "ops.sumSquares", Args::Devices::AnyDevice);
  Args::Buffer x = a.buffer("x", "float32");
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda) {
    double total = 0;
    run_cuda(a, [&] { total = cuda::sum_squares(static_cast<float*>(x.data), static_cast<int64_t>(x.length), cuda::tensor_stream()); });
    return Napi::Number::New(info.Env(), total);
  }
#endif
  return Napi::Number::New(info.Env(), cpu::sum_squares(static_cast<float*>(x.data), static_cast<int64_t>(x.length)));
}
OTHINK_REGISTER_OP("sumSquares", SumSquares);

// copy2d({ src, dst, rows, cols, srcStride, dstStride, srcOffset = 0, dstOffset = 0 })
// Copies rows x cols floats between row-strided layouts (concat / split / slices along any axis).
Napi::Value Copy2d(const Napi::CallbackInfo& info) {
  Args a(info, "ops.copy2d", Args::Devices::AnyDevice);
  const int64_t rows = a.positive_int("rows", 0, true), cols = a.positive_int("cols", 0, true);
  const int64_t ld_src = a.positive_int("srcStride", 0, true), ld_dst = a.positive_int("dstStride", 0, true);
  const double src_off = a.number("srcOffset", 0), dst_off = a.number("dstOffset", 0);
  Args::Buffer src = a.buffer("src", "float32"), dst = a.buffer("dst", "float32");
  auto check = [&](const char* name, const Args::Buffer& b, double off, int64_t ld) {
    if (off < 0 || cols > ld || off + static_cast<double>((rows - 1) * ld + cols) > static_cast<double>(b.length))
      a.range_error(std::string(name) + ": " + std::to_string(rows) + " rows of " + std::to_string(cols) + " at offset " +
                    Args::format(off) + " with stride " + std::to_string(ld) + " exceed its " + std::to_string(b.length) + " elements");
  };
  check("src", src, src_off, ld_src);
  check("dst", dst, dst_off, ld_dst);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      cuda::copy_2d(static_cast<float*>(dst.data) + static_cast<int64_t>(dst_off), ld_dst,
                    static_cast<float*>(src.data) + static_cast<int64_t>(src_off), ld_src, rows, cols, cuda::tensor_stream());
    });
#endif
  cpu::copy_2d(static_cast<float*>(dst.data) + static_cast<int64_t>(dst_off), ld_dst,
               static_cast<float*>(src.data) + static_cast<int64_t>(src_off), ld_src, rows, cols);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("copy2d", Copy2d);

// matmul({ a, b, out, m, n, k, batch = 1, transA, transB, alpha = 1, beta = 0, broadcastB = false })
// out[i] = alpha * op(a[i]) @ op(b[i or 0]) + beta * out[i] for each of `batch` contiguous matrices.
// a and b: both float32 (out float32), or both bfloat16 (out bfloat16 or float32); float32
// accumulation always. bfloat16 on the CPU is the reference twin of cuBLAS's tensor-core path
// (cpu/gemm_bf16.h: widened to float32, sgemm, the result rounded to bfloat16 once).
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Args a(info, "ops.matmul", Args::Devices::AnyDevice);
  const int64_t m = a.positive_int("m", 0, true), n = a.positive_int("n", 0, true), k = a.positive_int("k", 0, true);
  const int64_t batch = a.positive_int("batch", 1);
  const bool ta = a.flag("transA", false), tb = a.flag("transB", false), bcast = a.flag("broadcastB", false);
  const FloatDType in = float_dtype(a, "a"), b_type = float_dtype(a, "b"), out_type = float_dtype(a, "out");
  if (b_type != in)
    a.type_error(std::string("a is ") + dtype_name(in) + " but b is " + dtype_name(b_type) + ": give both in one dtype");
  if (in == FloatDType::F32 && out_type == FloatDType::BF16)
    a.type_error("out is bfloat16 but a and b are float32: a bfloat16 result needs bfloat16 inputs");
  auto sized = [&](const char* name, FloatDType t, int64_t expected, const std::string& what) {
    Args::Buffer buf = a.buffer(name, dtype_name(t));
    if (buf.length != static_cast<size_t>(expected))
      a.range_error(std::string(name) + " has " + std::to_string(buf.length) + " elements; expected " + std::to_string(expected) + " (" + what + ")");
    return buf.data;
  };
  const void* A = sized("a", in, batch * m * k, std::to_string(batch) + " x " + (ta ? dims({k, m}) : dims({m, k})));
  const void* B = sized("b", in, (bcast ? 1 : batch) * k * n, std::to_string(bcast ? 1 : batch) + " x " + (tb ? dims({n, k}) : dims({k, n})));
  void* C = sized("out", out_type, batch * m * n, std::to_string(batch) + " x " + dims({m, n}));
  const float alpha = static_cast<float>(a.number("alpha", 1)), beta = static_cast<float>(a.number("beta", 0));
  const bool bf16_in = in == FloatDType::BF16, bf16_out = out_type == FloatDType::BF16;
#ifdef OTHINK_WITH_CUDA
  // cuBLAS in true float32 (no TF32) for float32; bfloat16 on the tensor cores, float32 compute.
  // A shared, untransposed-A product is one tall GEMM: the batch's [m, k] matrices are consecutive
  // rows. Otherwise one strided-batched call (B stride 0 when shared).
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      const cuda::GemmInput gin = bf16_in ? cuda::GemmInput::BF16 : cuda::GemmInput::F32;
      const cuda::GemmOutput gout = bf16_out ? cuda::GemmOutput::BF16 : cuda::GemmOutput::F32;
      if (bcast && !ta && batch * m <= INT_MAX)
        cuda::gemm(false, tb, batch * m, n, k, alpha, A, k, B, tb ? k : n, gin, beta, C, gout, n, cuda::tensor_stream());
      else
        cuda::gemm_strided_batched(ta, tb, m, n, k, alpha, A, ta ? m : k, m * k, B, tb ? k : n, bcast ? 0 : k * n,
                                   gin, beta, C, gout, n, m * n, batch, cuda::tensor_stream());
    });
#endif
  if (bf16_in && bcast && !ta) {
    // A shared B with an untransposed A: one tall product (as on CUDA), so B is widened once.
    cpu::gemm_bf16(false, tb, batch * m, n, k, alpha, static_cast<const uint16_t*>(A), k,
                   static_cast<const uint16_t*>(B), tb ? k : n, beta, C, n, bf16_out);
    return info.Env().Undefined();
  }
  const size_t c_elem = bf16_out ? 2 : 4;
  for (int64_t i = 0; i < batch; ++i) {
    void* Ci = static_cast<uint8_t*>(C) + static_cast<size_t>(i * m * n) * c_elem;
    if (bf16_in)
      cpu::gemm_bf16(ta, tb, m, n, k, alpha, static_cast<const uint16_t*>(A) + i * m * k, ta ? m : k,
                     static_cast<const uint16_t*>(B) + (bcast ? 0 : i * k * n), tb ? k : n, beta, Ci, n, bf16_out);
    else
      cpu::sgemm(ta, tb, m, n, k, alpha, static_cast<const float*>(A) + i * m * k, ta ? m : k,
                 static_cast<const float*>(B) + (bcast ? 0 : i * k * n), tb ? k : n, beta, static_cast<float*>(Ci), n);
  }
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("matmul", Matmul);

}  // namespace
}  // namespace othink
