// Scaled dot-product attention (cpu/attention.h, cuda/attention.cuh). The TS op passes the sizes
// and allocates out / lse / the gradients; here every length is checked against the sizes, and the
// segment boundaries element by element (they decide which memory the kernels read), before a
// kernel runs. Runs where the tensors are: the CPU kernel, or (CUDA builds) the CUDA twin.
#include <cmath>
#include <string>

#include "args.h"
#include "bindings/device_dispatch.h"
#include "bindings/ops_registry.h"
#include "cpu/attention.h"
#ifdef OTHINK_WITH_CUDA
#include "cuda/attention.cuh"
#include "cuda/check.cuh"
#endif

namespace othink {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

const float* in_f32(const Args& a, const char* name, size_t n, const std::string& what) {
  return a.f32_buffer(name, n, what);
}

float* out_f32(const Args& a, const char* name, size_t n, const std::string& what, bool required = true) {
  return a.f32_buffer(name, n, what, required);
}

struct Problem {
  cpu::AttentionShape shape;
  cpu::AttentionMask mask;
  float scale;
  std::string q_dims, kv_dims, lse_dims;
  size_t q_size, kv_size, lse_size;
};

// Sizes, mask options and scale shared by the forward and the backward.
Problem read_problem(const Args& a) {
  Problem p{};
  cpu::AttentionShape& s = p.shape;
  s.batch = a.positive_int("batch", 0, true);
  s.seq_q = a.positive_int("seqQ", 0, true);
  s.seq_k = a.positive_int("seqK", 0, true);
  s.heads_q = a.positive_int("headsQ", 0, true);
  s.heads_kv = a.positive_int("headsKv", 0, true);
  s.dim = a.positive_int("dim", 0, true);
  if (s.heads_q % s.heads_kv != 0)
    a.range_error("headsQ (" + std::to_string(s.heads_q) + ") must be a multiple of headsKv (" +
                  std::to_string(s.heads_kv) + ")");
  p.q_dims = "[batch, seqQ, headsQ, dim] = " + dims({s.batch, s.seq_q, s.heads_q, s.dim});
  p.kv_dims = "[batch, seqK, headsKv, dim] = " + dims({s.batch, s.seq_k, s.heads_kv, s.dim});
  p.lse_dims = "[batch, headsQ, seqQ] = " + dims({s.batch, s.heads_q, s.seq_q});
  p.q_size = static_cast<size_t>(s.batch * s.seq_q * s.heads_q * s.dim);
  p.kv_size = static_cast<size_t>(s.batch * s.seq_k * s.heads_kv * s.dim);
  p.lse_size = static_cast<size_t>(s.batch * s.heads_q * s.seq_q);
  p.scale = static_cast<float>(a.number("scale", 1.0 / std::sqrt(static_cast<double>(s.dim))));

  cpu::AttentionMask& m = p.mask;
  m.causal = a.flag("causal", false);
  // Causal with more queries than keys would leave the first queries before every key.
  if (m.causal && s.seq_q > s.seq_k)
    a.range_error("causal attention needs seqQ <= seqK (got seqQ " + std::to_string(s.seq_q) + ", seqK " +
                  std::to_string(s.seq_k) + ")");
  if (a.has("keyMask")) {
    const size_t expected = static_cast<size_t>(s.batch * s.seq_k);
    const Args::Buffer km = a.buffer("keyMask", "int32");
    if (km.length != expected)
      a.range_error("keyMask has " + std::to_string(km.length) + " elements; expected " + std::to_string(expected) +
                    " ([batch, seqK] = " + dims({s.batch, s.seq_k}) + ")");
    m.key_mask = static_cast<const int32_t*>(km.data);
    // Values only decide attend / skip (nonzero = attend), never an address: checked where they
    // can be read without a device round trip.
    if (km.device == Device::Cpu)
      for (size_t i = 0; i < km.length; ++i)
        if (m.key_mask[i] != 0 && m.key_mask[i] != 1)
          a.range_error("keyMask[" + std::to_string(i / s.seq_k) + ", " + std::to_string(i % s.seq_k) + "] is " +
                        std::to_string(m.key_mask[i]) + "; expected 0 (padding) or 1 (attend)");
  }
  if (a.has("cuSeqlens")) {
    // Always a host Int32Array (the boundaries are checked here, and the CUDA branch uploads them).
    const Napi::Int32Array cu = a.i32("cuSeqlens");
    if (s.batch != 1 || s.seq_q != s.seq_k)
      a.range_error("cuSeqlens (segmented attention) needs batch 1 and seqQ == seqK (got batch " +
                    std::to_string(s.batch) + ", seqQ " + std::to_string(s.seq_q) + ", seqK " + std::to_string(s.seq_k) + ")");
    const int32_t* c = cu.Data();
    const size_t n = cu.ElementLength();
    if (n < 2) a.range_error("cuSeqlens needs at least 2 boundaries (got " + std::to_string(n) + ")");
    if (c[0] != 0) a.range_error("cuSeqlens must start at 0 (got " + std::to_string(c[0]) + ")");
    for (size_t i = 1; i < n; ++i)
      if (c[i] <= c[i - 1])
        a.range_error("cuSeqlens must increase strictly (cuSeqlens[" + std::to_string(i - 1) + "] = " +
                      std::to_string(c[i - 1]) + ", cuSeqlens[" + std::to_string(i) + "] = " + std::to_string(c[i]) + ")");
    if (c[n - 1] != s.seq_k)
      a.range_error("cuSeqlens must end at the sequence length " + std::to_string(s.seq_k) + " (got " +
                    std::to_string(c[n - 1]) + ")");
    m.cu_seqlens = c;
    m.segments = static_cast<int64_t>(n - 1);
  }
  return p;
}

#ifdef OTHINK_WITH_CUDA
// The CUDA twin's view of the problem; the segment boundaries copied to the device for as long as
// the launches that read them are queued (stream-ordered allocation and free).
class CudaProblem {
 public:
  explicit CudaProblem(const Problem& p) {
    const cpu::AttentionShape& s = p.shape;
    shape = {s.batch, s.seq_q, s.seq_k, s.heads_q, s.heads_kv, s.dim};
    mask.causal = p.mask.causal;
    mask.key_mask = p.mask.key_mask;  // a device buffer (Args checked every buffer's device)
    mask.segments = p.mask.segments;
    if (p.mask.cu_seqlens) {
      const size_t bytes = static_cast<size_t>(p.mask.segments + 1) * sizeof(int32_t);
      OTHINK_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&cu_), bytes, cuda::tensor_stream()));
      // From pageable memory: returns once the source has been staged, so the JS array may go.
      const cudaError_t err = cudaMemcpyAsync(cu_, p.mask.cu_seqlens, bytes, cudaMemcpyHostToDevice, cuda::tensor_stream());
      if (err != cudaSuccess) {
        cudaFreeAsync(cu_, cuda::tensor_stream());  // no destructor runs for a throwing constructor
        cuda::throw_cuda_error(err, "cudaMemcpyAsync(cu_seqlens)", __FILE__, __LINE__);
      }
      mask.cu_seqlens = cu_;
    }
  }
  ~CudaProblem() {
    if (cu_) cudaFreeAsync(cu_, cuda::tensor_stream());
  }
  CudaProblem(const CudaProblem&) = delete;
  CudaProblem& operator=(const CudaProblem&) = delete;

  cuda::AttentionShape shape{};
  cuda::AttentionMask mask{};

 private:
  int32_t* cu_ = nullptr;
};
#endif

// attention({ q, k, v, out, lse, batch, seqQ, seqK, headsQ, headsKv, dim, causal = false,
//             keyMask?, cuSeqlens? (an Int32Array), scale = 1/sqrt(dim) })
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Args a(info, "ops.attention", Args::Devices::AnyDevice);
  const Problem p = read_problem(a);
  const float* q = in_f32(a, "q", p.q_size, p.q_dims);
  const float* k = in_f32(a, "k", p.kv_size, p.kv_dims);
  const float* v = in_f32(a, "v", p.kv_size, p.kv_dims);
  float* out = out_f32(a, "out", p.q_size, p.q_dims);
  float* lse = out_f32(a, "lse", p.lse_size, p.lse_dims);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      const CudaProblem c(p);
      cuda::attention_forward(q, k, v, c.shape, c.mask, p.scale, out, lse, cuda::tensor_stream());
    });
#endif
  cpu::attention_forward(q, k, v, p.shape, p.mask, p.scale, out, lse);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("attention", Attention);

// attentionBackward({ ...attention's options, gradOut, gradQ?, gradK?, gradV? }) with out and lse
// from the forward: writes the gradients that are given.
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.attentionBackward", Args::Devices::AnyDevice);
  const Problem p = read_problem(a);
  const float* q = in_f32(a, "q", p.q_size, p.q_dims);
  const float* k = in_f32(a, "k", p.kv_size, p.kv_dims);
  const float* v = in_f32(a, "v", p.kv_size, p.kv_dims);
  const float* out = in_f32(a, "out", p.q_size, p.q_dims);
  const float* lse = in_f32(a, "lse", p.lse_size, p.lse_dims);
  const float* grad_out = in_f32(a, "gradOut", p.q_size, p.q_dims);
  float* dq = out_f32(a, "gradQ", p.q_size, p.q_dims, false);
  float* dk = out_f32(a, "gradK", p.kv_size, p.kv_dims, false);
  float* dv = out_f32(a, "gradV", p.kv_size, p.kv_dims, false);
#ifdef OTHINK_WITH_CUDA
  if (a.device() == Device::Cuda)
    return run_cuda(a, [&] {
      const CudaProblem c(p);
      cuda::attention_backward(q, k, v, out, lse, grad_out, c.shape, c.mask, p.scale, dq, dk, dv, cuda::tensor_stream());
    });
#endif
  cpu::attention_backward(q, k, v, out, lse, grad_out, p.shape, p.mask, p.scale, dq, dk, dv);
  return info.Env().Undefined();
}
OTHINK_REGISTER_OP("attentionBackward", AttentionBackward);

}  // namespace
}  // namespace othink
