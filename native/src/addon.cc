// The Node-API surface of @othink/native: argument checks, output allocation, errors.
// Kernels live in cpu/ (and cuda/); nothing here does math.
//
// The RL kernels (token log-probs, fused linear log-probs, group advantages, KL, the GRPO loss)
// have one binding each that runs where its buffers are (bindings/device_dispatch.h): typed arrays
// and CPU tensors go to cpu/, CUDA tensors to the cuda/ launcher on the tensor stream, after one
// set of argument checks. On the CPU a result the caller did not pass in is a new Float32Array; on
// CUDA every result is written into a caller-owned device tensor (out*, gradWeight, ...), and only
// verdicts and statistics (a bad target's index, the GRPO loss's numbers) are copied back.
#include <napi.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <utility>

#include "args.h"
#include "validate.h"
#include "bindings/register.h"
#ifdef OTHINK_WITH_CUDA
#include <cuda_bf16.h>

#include "addon_cuda.h"
#include "bindings/device_dispatch.h"
#include "cuda/advantage.cuh"
#include "cuda/allocator.cuh"
#include "cuda/fused_linear_logprob.cuh"
#include "cuda/gemm.cuh"
#include "cuda/grpo_loss.cuh"
#include "cuda/kl.cuh"
#include "cuda/logprob.cuh"
#include "cuda/stream.cuh"
#endif
#include "cpu/advantage.h"
#include "cpu/copy.h"
#include "cpu/gemm.h"
#include "cpu/fused_linear_logprob.h"
#include "cpu/grpo_loss.h"
#include "cpu/kl.h"
#include "cpu/logprob.h"

namespace othink {
namespace {

using validate::check_targets;
using validate::optional_row_grad;
using validate::read_clamp;
using validate::read_ignore_index;
using validate::read_inv_temperature;
#ifdef OTHINK_WITH_CUDA
using bf16 = __nv_bfloat16;
#endif

Napi::Float32Array new_f32(Napi::Env env, size_t n) { return Napi::Float32Array::New(env, n); }

bool on_cuda(const Args& a) { return a.device() == Device::Cuda; }

void expect_elements(const Args& a, const char* name, size_t got, size_t expected, const std::string& what) {
  if (got != expected)
    a.range_error(std::string(name) + " has " + std::to_string(got) + " elements; expected " + std::to_string(expected) +
                  " (" + what + ")");
}

// A float input of the log-prob kernels: float32 (a typed array or tensor), or on cuda a bfloat16
// tensor, which the CUDA kernels widen exactly to float32. Only a tensor carries a dtype; the CPU
// kernels are float32 only.
struct FloatInput {
  Args::Buffer buf;
  bool bf16 = false;
};

FloatInput read_float(const Args& a, const char* name) {
  bool bf16 = false;
  if (a.has(name)) {
    const Napi::Value v = a.value(name);
    if (v.IsObject() && !v.IsTypedArray()) {
      const Napi::Value dtype = v.As<Napi::Object>().Get("dtype");
      bf16 = dtype.IsString() && dtype.As<Napi::String>().Utf8Value() == "bfloat16";
    }
  }
  FloatInput in{a.buffer(name, bf16 ? "bfloat16" : "float32"), bf16};
  if (bf16 && in.buf.device != Device::Cuda)
    a.type_error(std::string(name) + " is a bfloat16 tensor on cpu: the CPU kernels take float32 (bfloat16 runs on cuda)");
  return in;
}

[[noreturn]] void missing_cuda_output(const Args& a, const char* name, size_t n, const std::string& what) {
  a.type_error(std::string(name) + " is required on cuda: results stay on the device, so pass a float32 cuda tensor of " +
               std::to_string(n) + " elements (" + what + ") to write them into");
}

// A float32 result: where the kernel writes, and what the binding returns for it.
struct Output {
  float* data;
  Napi::Value value;
};

// An output the caller may pass in (`name`: a Float32Array or float32 tensor, returned as given).
// Read after the inputs, so the call's device is known: on the CPU a missing one is a new
// Float32Array; on CUDA it is required (results cannot be new host arrays).
Output output_f32(const Args& a, const char* name, size_t n, const std::string& what) {
  if (a.has(name)) return {a.f32_buffer(name, n, what), a.value(name)};
  if (on_cuda(a)) missing_cuda_output(a, name, n, what);
  Napi::Float32Array fresh = new_f32(a.env(), n);
  return {fresh.Data(), fresh};
}

// An optional output: null (and undefined) unless `wanted`.
Output optional_output_f32(const Args& a, bool wanted, const char* name, size_t n, const std::string& what) {
  if (!wanted) return {nullptr, a.env().Undefined()};
  return output_f32(a, name, n, what);
}

std::string rows_times_vocab(size_t n, int64_t vocab) {
  return "targets.length * vocabSize = " + std::to_string(n) + " * " + std::to_string(vocab);
}

// The [N] forward results and the count of targets that are not ignoreIndex.
Napi::Object logprob_result(const Args& a, const Output& logprobs, const Output& lse, const Output& entropy,
                            bool with_entropy, int64_t counted) {
  Napi::Object out = Napi::Object::New(a.env());
  out.Set("logprobs", logprobs.value);
  out.Set("lse", lse.value);
  if (with_entropy) out.Set("entropy", entropy.value);
  out.Set("count", static_cast<double>(counted));
  return out;
}

// tokenLogprobs({ logits [N*V], targets [N], vocabSize, temperature?, withEntropy?, ignoreIndex?,
//                 outLogprobs?, outLse?, outEntropy? }) -> { logprobs, lse, entropy?, count }
// logits: float32, or bfloat16 on cuda. The [N] results: the out* given, or (CPU) new Float32Arrays.
Napi::Value TokenLogprobs(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobs", Args::Devices::AnyDevice);
  const int64_t vocab = a.positive_int("vocabSize", 0, true);
  const int32_t ignore = read_ignore_index(a);
  const Args::Buffer targets = a.buffer("targets", "int32");
  const size_t n = targets.length;
  const FloatInput logits = read_float(a, "logits");
  expect_elements(a, "logits", logits.buf.length, n * vocab, rows_times_vocab(n, vocab));
  const bool with_entropy = a.flag("withEntropy", false);
  const float inv_t = read_inv_temperature(a);
  const Output logprobs = output_f32(a, "outLogprobs", n, "one per target");
  const Output lse = output_f32(a, "outLse", n, "one per target");
  const Output entropy = optional_output_f32(a, with_entropy, "outEntropy", n, "one per target");
  const int64_t counted = check_targets(a, targets, vocab, ignore);
  const int32_t* t = static_cast<const int32_t*>(targets.data);
  const int64_t rows = static_cast<int64_t>(n);
#ifdef OTHINK_WITH_CUDA
  if (on_cuda(a)) {
    run_cuda(a, [&] {
      const cuda::LogprobOutputs out{logprobs.data, lse.data, entropy.data};
      if (logits.bf16)
        cuda::token_logprobs_forward(static_cast<const bf16*>(logits.buf.data), t, rows, vocab, inv_t, ignore, out,
                                     cuda::tensor_stream());
      else
        cuda::token_logprobs_forward(static_cast<const float*>(logits.buf.data), t, rows, vocab, inv_t, ignore, out,
                                     cuda::tensor_stream());
    });
    return logprob_result(a, logprobs, lse, entropy, with_entropy, counted);
  }
#endif
  cpu::token_logprobs_forward(static_cast<const float*>(logits.buf.data), t, rows, vocab, inv_t, ignore,
                              {logprobs.data, lse.data, entropy.data});
  return logprob_result(a, logprobs, lse, entropy, with_entropy, counted);
}

// The optional [N] inputs of a log-prob backward.
struct RowGrads {
  const float* grad_logprobs;
  const float* grad_entropy;
  const float* entropy;
};

RowGrads read_row_grads(const Args& a, size_t n, const char* forward) {
  RowGrads g{optional_row_grad(a, "gradLogprobs", n), optional_row_grad(a, "gradEntropy", n),
             optional_row_grad(a, "entropy", n)};
  if (g.grad_entropy && !g.entropy)
    a.type_error(std::string("gradEntropy needs entropy (from ") + forward + " with withEntropy)");
  if (!g.grad_logprobs && !g.grad_entropy) a.type_error("give gradLogprobs, gradEntropy or both");
  return g;
}

#ifdef OTHINK_WITH_CUDA
template <typename T>
void token_backward_cuda(const T* logits, const int32_t* t, const float* lse, const RowGrads& g, int64_t n, int64_t vocab,
                         float inv_t, int32_t ignore, void* dlogits, bool dlogits_bf16) {
  if (dlogits_bf16)
    cuda::token_logprobs_backward<T, bf16>(logits, t, lse, g.entropy, g.grad_logprobs, g.grad_entropy, n, vocab, inv_t,
                                           ignore, static_cast<bf16*>(dlogits), cuda::tensor_stream());
  else
    cuda::token_logprobs_backward<T, float>(logits, t, lse, g.entropy, g.grad_logprobs, g.grad_entropy, n, vocab, inv_t,
                                            ignore, static_cast<float*>(dlogits), cuda::tensor_stream());
}
#endif

// tokenLogprobsBackward({ logits, targets, lse, vocabSize, gradLogprobs?, entropy?, gradEntropy?,
//                         temperature?, ignoreIndex?, inPlace? | out? }) -> dlogits (out / logits as given)
// On the CPU without either, a new Float32Array. On cuda, `out` may also be bfloat16, and in place
// the gradient takes the logits' dtype.
Napi::Value TokenLogprobsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobsBackward", Args::Devices::AnyDevice);
  const int64_t vocab = a.positive_int("vocabSize", 0, true);
  const int32_t ignore = read_ignore_index(a);
  const Args::Buffer targets = a.buffer("targets", "int32");
  const size_t n = targets.length;
  const size_t numel = n * vocab;
  const FloatInput logits = read_float(a, "logits");
  expect_elements(a, "logits", logits.buf.length, numel, rows_times_vocab(n, vocab));
  const float* lse = a.f32_buffer("lse", n, "one per token, from tokenLogprobs");
  const RowGrads g = read_row_grads(a, n, "tokenLogprobs");
  const bool in_place = a.flag("inPlace", false);
  if (in_place && a.has("out")) a.type_error("give either inPlace or out, not both");
  const float inv_t = read_inv_temperature(a);
  FloatInput dlogits = logits;
  Napi::Value result = a.value("logits");
  if (!in_place) {
    if (a.has("out")) {
      dlogits = read_float(a, "out");
      expect_elements(a, "out", dlogits.buf.length, numel, "the shape of logits");
      result = a.value("out");
    } else if (on_cuda(a)) {
      a.type_error("out is required on cuda (or inPlace: true): dlogits stay on the device, so pass a cuda tensor of " +
                   std::to_string(numel) + " elements (the shape of logits) to write them into");
    } else {
      Napi::Float32Array fresh = new_f32(a.env(), numel);
      dlogits = {Args::Buffer{fresh.Data(), numel, Device::Cpu}, false};
      result = fresh;
    }
  }
  check_targets(a, targets, vocab, ignore);
  const int32_t* t = static_cast<const int32_t*>(targets.data);
  const int64_t rows = static_cast<int64_t>(n);
#ifdef OTHINK_WITH_CUDA
  if (on_cuda(a)) {
    run_cuda(a, [&] {
      if (logits.bf16)
        token_backward_cuda(static_cast<const bf16*>(logits.buf.data), t, lse, g, rows, vocab, inv_t, ignore,
                            dlogits.buf.data, dlogits.bf16);
      else
        token_backward_cuda(static_cast<const float*>(logits.buf.data), t, lse, g, rows, vocab, inv_t, ignore,
                            dlogits.buf.data, dlogits.bf16);
    });
    return result;
  }
#endif
  cpu::token_logprobs_backward(static_cast<const float*>(logits.buf.data), t, lse, g.entropy, g.grad_logprobs,
                               g.grad_entropy, rows, vocab, inv_t, ignore, static_cast<float*>(dlogits.buf.data));
  return result;
}

struct FusedLinearArgs {
  FloatInput hidden, weight;
  Args::Buffer targets;
  int64_t n = 0, hidden_size = 0, vocab = 0, chunk = 0;
  int32_t ignore = 0;
  float inv_temperature = 1.f;
};

// Everything but the target check (run last, as it reads the targets: on cuda, a kernel and a copy).
FusedLinearArgs read_fused_linear(const Args& a) {
  FusedLinearArgs f;
  f.hidden_size = a.positive_int("hiddenSize", 0, true);
  f.weight = read_float(a, "weight");
  const size_t w = f.weight.buf.length;
  if (w == 0 || w % f.hidden_size != 0)
    a.range_error("weight has " + std::to_string(w) + " elements; expected vocabSize * hiddenSize with hiddenSize = " +
                  std::to_string(f.hidden_size));
  f.vocab = static_cast<int64_t>(w) / f.hidden_size;
  f.ignore = read_ignore_index(a);
  f.targets = a.buffer("targets", "int32");
  f.n = static_cast<int64_t>(f.targets.length);
  f.hidden = read_float(a, "hidden");
  expect_elements(a, "hidden", f.hidden.buf.length, f.n * f.hidden_size,
                  "targets.length * hiddenSize = " + std::to_string(f.n) + " * " + std::to_string(f.hidden_size));
  // cuBLAS multiplies two operands of one dtype (the CPU kernels are float32 only anyway).
  if (f.hidden.bf16 != f.weight.bf16)
    a.type_error(std::string("hidden is ") + (f.hidden.bf16 ? "bfloat16" : "float32") + " but weight is " +
                 (f.weight.bf16 ? "bfloat16" : "float32") + ": give both in one dtype");
#ifdef OTHINK_WITH_CUDA
  const int64_t default_chunk = on_cuda(a) ? cuda::default_logprob_chunk(f.vocab) : cpu::default_logprob_chunk(f.vocab);
#else
  const int64_t default_chunk = cpu::default_logprob_chunk(f.vocab);
#endif
  f.chunk = a.positive_int("chunkSize", default_chunk);
  f.inv_temperature = read_inv_temperature(a);
  return f;
}

#ifdef OTHINK_WITH_CUDA
cuda::FusedLinearShape cuda_shape(const FusedLinearArgs& f) { return {f.n, f.hidden_size, f.vocab, f.chunk}; }

// After the argument checks, so bad input is reported the same with or without cuBLAS.
void require_cublas(const Args& a) {
  if (!cuda::cublas_available())
    a.type_error("the fused linear kernels need cuBLAS, and this build of @othink/native has none "
                 "(rebuild with OTHINK_CUDA=1 on a CUDA toolkit that includes cuBLAS)");
}

template <typename T>
void fused_forward_cuda(const FusedLinearArgs& f, cuda::LogprobOutputs out) {
  const cuda::FusedLinearShape s = cuda_shape(f);
  // Chunk scratch from the caching allocator; dropping it once the kernels are queued is safe (cuda/stream.cuh).
  const size_t bytes = cuda::fused_linear_workspace_bytes<T>(s);
  const cuda::DeviceScratch ws(bytes);
  cuda::fused_linear_logprobs_forward(static_cast<const T*>(f.hidden.buf.data), static_cast<const T*>(f.weight.buf.data),
                                      static_cast<const int32_t*>(f.targets.data), s, f.inv_temperature, f.ignore, out,
                                      ws.as<void>(), bytes, cuda::tensor_stream());
}

template <typename T>
void fused_backward_cuda(const FusedLinearArgs& f, const float* lse, const RowGrads& g, float* grad_hidden,
                         float* grad_weight) {
  const cuda::FusedLinearShape s = cuda_shape(f);
  const size_t bytes = cuda::fused_linear_workspace_bytes<T>(s);
  const cuda::DeviceScratch ws(bytes);
  cuda::fused_linear_logprobs_backward(static_cast<const T*>(f.hidden.buf.data), static_cast<const T*>(f.weight.buf.data),
                                       static_cast<const int32_t*>(f.targets.data), lse, g.entropy, g.grad_logprobs,
                                       g.grad_entropy, s, f.inv_temperature, f.ignore, grad_hidden, grad_weight,
                                       ws.as<void>(), bytes, cuda::tensor_stream());
}
#endif

cpu::FusedLinearShape cpu_shape(const FusedLinearArgs& f) { return {f.n, f.hidden_size, f.vocab, f.chunk}; }

// fusedLinearLogprobs({ hidden [N*H], weight [V*H], targets [N], hiddenSize, chunkSize?, temperature?,
//                       withEntropy?, ignoreIndex?, outLogprobs?, outLse?, outEntropy? })
//   -> { logprobs, lse, entropy?, count }. hidden / weight: float32, or both bfloat16 on cuda.
Napi::Value FusedLinearLogprobs(const Napi::CallbackInfo& info) {
  Args a(info, "fusedLinearLogprobs", Args::Devices::AnyDevice);
  const FusedLinearArgs f = read_fused_linear(a);
  const bool with_entropy = a.flag("withEntropy", false);
  const size_t n = static_cast<size_t>(f.n);
  const Output logprobs = output_f32(a, "outLogprobs", n, "one per target");
  const Output lse = output_f32(a, "outLse", n, "one per target");
  const Output entropy = optional_output_f32(a, with_entropy, "outEntropy", n, "one per target");
  const int64_t counted = check_targets(a, f.targets, f.vocab, f.ignore);
#ifdef OTHINK_WITH_CUDA
  if (on_cuda(a)) {
    require_cublas(a);
    run_cuda(a, [&] {
      const cuda::LogprobOutputs out{logprobs.data, lse.data, entropy.data};
      if (f.hidden.bf16)
        fused_forward_cuda<bf16>(f, out);
      else
        fused_forward_cuda<float>(f, out);
    });
    return logprob_result(a, logprobs, lse, entropy, with_entropy, counted);
  }
#endif
  cpu::fused_linear_logprobs_forward(static_cast<const float*>(f.hidden.buf.data), static_cast<const float*>(f.weight.buf.data),
                                     static_cast<const int32_t*>(f.targets.data), cpu_shape(f), f.inv_temperature, f.ignore,
                                     {logprobs.data, lse.data, entropy.data});
  return logprob_result(a, logprobs, lse, entropy, with_entropy, counted);
}

// fusedLinearLogprobsBackward({ ...forward args, lse, gradLogprobs?, entropy?, gradEntropy?,
//                               gradWeight? (accumulated into), gradHidden? (written), needGradHidden?,
//                               needGradWeight? }) -> { gradHidden?, gradWeight? }
// On cuda the wanted outputs (float32) are required; on the CPU a missing gradWeight is a new
// zero-filled one, a missing gradHidden a new one. A frozen LM head (needGradWeight: false) skips
// dW and its [V, H] buffer.
Napi::Value FusedLinearLogprobsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "fusedLinearLogprobsBackward", Args::Devices::AnyDevice);
  const FusedLinearArgs f = read_fused_linear(a);
  const size_t n = static_cast<size_t>(f.n);
  const float* lse = a.f32_buffer("lse", n, "one per token, from fusedLinearLogprobs");
  const RowGrads g = read_row_grads(a, n, "fusedLinearLogprobs");
  // A new gradWeight is zero-filled by V8; one passed in is accumulated into.
  const bool need_grad_weight = a.flag("needGradWeight", true);
  const Output grad_weight = optional_output_f32(a, need_grad_weight, "gradWeight", f.weight.buf.length,
                                                "the shape of weight; accumulated into, so zero it for a fresh gradient");
  const bool need_grad_hidden = a.flag("needGradHidden", true);
  const Output grad_hidden =
      optional_output_f32(a, need_grad_hidden, "gradHidden", f.hidden.buf.length, "the shape of hidden");
  check_targets(a, f.targets, f.vocab, f.ignore);
  Napi::Object out = Napi::Object::New(a.env());
  if (need_grad_hidden) out.Set("gradHidden", grad_hidden.value);
  if (need_grad_weight) out.Set("gradWeight", grad_weight.value);
#ifdef OTHINK_WITH_CUDA
  if (on_cuda(a)) {
    require_cublas(a);
    run_cuda(a, [&] {
      if (f.hidden.bf16)
        fused_backward_cuda<bf16>(f, lse, g, grad_hidden.data, grad_weight.data);
      else
        fused_backward_cuda<float>(f, lse, g, grad_hidden.data, grad_weight.data);
    });
    return out;
  }
#endif
  cpu::fused_linear_logprobs_backward(static_cast<const float*>(f.hidden.buf.data), static_cast<const float*>(f.weight.buf.data),
                                      static_cast<const int32_t*>(f.targets.data), lse, g.entropy, g.grad_logprobs,
                                      g.grad_entropy, cpu_shape(f), f.inv_temperature, f.ignore, grad_hidden.data, grad_weight.data);
  return out;
}

// groupAdvantages({ rewards [B*G], groupSize, scale?: 'group'|'batch'|'none', nonFinite?: 'error'|'ignore', eps?,
//                   out?, outGroupMeans?, outGroupStds? }) -> { advantages, groupMeans, groupStds }
Napi::Value GroupAdvantages(const Napi::CallbackInfo& info) {
  Args a(info, "groupAdvantages", Args::Devices::AnyDevice);
  const Args::Buffer rewards = a.buffer("rewards", "float32");
  const int64_t g = a.positive_int("groupSize", 0, true);
  const size_t n = rewards.length;
  if (n == 0) a.range_error("rewards is empty");
  if (n % g != 0)
    a.range_error("rewards has " + std::to_string(n) + " elements, not a multiple of groupSize = " + std::to_string(g));
  const std::string scale = a.choice("scale", "group", {"group", "batch", "none"});
  const bool skip = a.choice("nonFinite", "error", {"error", "ignore"}) == "ignore";
  const double eps = a.number("eps", 1e-4);
  if (eps < 0) a.range_error("eps must be >= 0");
  const size_t groups = n / g;
  const Output adv = output_f32(a, "out", n, "one per reward");
  const Output means = output_f32(a, "outGroupMeans", groups, "one per group");
  const Output stds = output_f32(a, "outGroupStds", groups, "one per group");
  Napi::Object out = Napi::Object::New(a.env());
  out.Set("advantages", adv.value);
  out.Set("groupMeans", means.value);
  out.Set("groupStds", stds.value);
  const float* r = static_cast<const float*>(rewards.data);
#ifdef OTHINK_WITH_CUDA
  if (on_cuda(a)) {
    // The CUDA kernel always leaves non-finite rewards out, so the 'error' check runs first.
    if (!skip) validate::check_finite_rewards(a, rewards);
    run_cuda(a, [&] {
      const size_t bytes = cuda::group_advantages_workspace_bytes();
      const cuda::DeviceScratch ws(bytes);
      cuda::group_advantages(r, static_cast<int64_t>(n), g,
                             scale == "group"   ? cuda::AdvantageScale::Group
                             : scale == "batch" ? cuda::AdvantageScale::Batch
                                                : cuda::AdvantageScale::None,
                             skip, static_cast<float>(eps), adv.data, means.data, stds.data, ws.as<void>(), bytes,
                             cuda::tensor_stream());
    });
    return out;
  }
#endif
  const bool all_finite = cpu::group_advantages(r, static_cast<int64_t>(n), g,
                                                scale == "group"   ? cpu::AdvantageScale::Group
                                                : scale == "batch" ? cpu::AdvantageScale::Batch
                                                                   : cpu::AdvantageScale::None,
                                                skip, static_cast<float>(eps), adv.data, means.data, stds.data);
  // The kernel checks finiteness in its own pass over the rewards; only a failure rescans them.
  if (!all_finite && !skip) validate::check_finite_rewards(a, rewards);
  return out;
}

// The KL estimator enum of cpu:: or cuda:: (same names).
template <typename Kl>
Kl kl_from_name(const std::string& e) {
  return e == "k1" ? Kl::K1 : e == "k2" ? Kl::K2 : e == "abs" ? Kl::Abs : Kl::K3;
}

// klPenalty({ logprobs, refLogprobs, estimator?: 'k1'|'k2'|'k3'|'abs', clamp?, withGrad?, outValues?, outGrads? })
Napi::Value KlPenalty(const Napi::CallbackInfo& info) {
  Args a(info, "klPenalty", Args::Devices::AnyDevice);
  const Args::Buffer logp = a.buffer("logprobs", "float32");
  const size_t n = logp.length;
  const float* ref = a.f32_buffer("refLogprobs", n, "the length of logprobs");
  const std::string est = validate::read_kl_estimator_name(a, "estimator");
  const float clamp = read_clamp(a, "clamp");
  const bool with_grad = a.flag("withGrad", true);
  const Output values = output_f32(a, "outValues", n, "the length of logprobs");
  const Output grads = optional_output_f32(a, with_grad, "outGrads", n, "the length of logprobs");
  Napi::Object out = Napi::Object::New(a.env());
  out.Set("values", values.value);
  if (with_grad) out.Set("grads", grads.value);
  const float* lp = static_cast<const float*>(logp.data);
#ifdef OTHINK_WITH_CUDA
  if (on_cuda(a)) {
    run_cuda(a, [&] {
      cuda::kl_penalty(lp, ref, static_cast<int64_t>(n), kl_from_name<cuda::KlEstimator>(est), clamp, values.data, grads.data,
                       cuda::tensor_stream());
    });
    return out;
  }
#endif
  cpu::kl_penalty(lp, ref, static_cast<int64_t>(n), kl_from_name<cpu::KlEstimator>(est), clamp, values.data, grads.data);
  return out;
}

// The options of grpoLoss that are not buffers, read once for either device.
struct GrpoSettings {
  int64_t seqs = 0, tokens = 0;
  float beta = 0.f, eps_low = 0.2f, eps_high = 0.2f, kl_clamp = 0.f;
  std::string type, kl;
  double normalizer = 0.0, scale = 1.0;
};

// cpu::GrpoLossConfig or cuda::GrpoLossConfig (same fields, same enum names).
template <typename Config>
Config grpo_config(const GrpoSettings& g) {
  using Type = decltype(Config::type);
  Config c;
  c.seqs = g.seqs;
  c.tokens = g.tokens;
  c.beta = g.beta;
  c.eps_low = g.eps_low;
  c.eps_high = g.eps_high;
  c.type = g.type == "grpo" ? Type::Grpo : g.type == "bnpo" ? Type::Bnpo : g.type == "dr_grpo" ? Type::DrGrpo : Type::Dapo;
  c.kl = kl_from_name<decltype(Config::kl)>(g.kl);
  c.kl_clamp = g.kl_clamp;
  c.normalizer = g.normalizer;
  c.scale = g.scale;
  return c;
}

template <typename Stats>
Napi::Object grpo_stats(Napi::Env env, const Stats& st) {
  Napi::Object stats = Napi::Object::New(env);
  stats.Set("meanKl", st.mean_kl);
  stats.Set("clipRatioLow", st.clip_low);
  stats.Set("clipRatioHigh", st.clip_high);
  stats.Set("clipRatioRegion", st.clip_region);
  stats.Set("meanRatio", st.mean_ratio);
  stats.Set("tokens", st.mask_sum);
  return stats;
}

// grpoLoss({ logprobs [S*T], oldLogprobs?, refLogprobs?, advantages [S], completionMask [S*T], beta,
//            epsilonLow?, epsilonHigh?, lossType?, klEstimator?, klClamp?, maxCompletionLength?,
//            numItemsInBatch?, lossScale?, withGrad?, outGrad?, withPerTokenLoss?, outPerTokenLoss?,
//            outLoss? }) -> { loss, gradLogprobs?, perTokenLoss?, stats }
// On cuda the statistics (and the loss) are reduced on the device and only they are copied back;
// outLoss (one float32) receives the loss where it is, for a loss tensor that stays on the device.
Napi::Value GrpoLoss(const Napi::CallbackInfo& info) {
  Args a(info, "grpoLoss", Args::Devices::AnyDevice);
  const Args::Buffer logp = a.buffer("logprobs", "float32");
  const Args::Buffer adv = a.buffer("advantages", "float32");
  const size_t s = adv.length;
  if (s == 0) a.range_error("advantages is empty");
  if (logp.length % s != 0)
    a.range_error("logprobs has " + std::to_string(logp.length) + " elements, not a multiple of advantages.length = " +
                  std::to_string(s) + " (one advantage per sequence)");
  const size_t t = logp.length / s;
  const std::string shape = "the shape of logprobs [S, T] = [" + std::to_string(s) + ", " + std::to_string(t) + "]";
  const float* mask = a.f32_buffer("completionMask", s * t, shape);
  const float* old = a.f32_buffer("oldLogprobs", s * t, shape, false);
  const float* ref = a.f32_buffer("refLogprobs", s * t, shape, false);

  GrpoSettings cfg;
  cfg.seqs = static_cast<int64_t>(s);
  cfg.tokens = static_cast<int64_t>(t);
  cfg.beta = static_cast<float>(a.number("beta", 0, true));
  if (cfg.beta < 0) a.range_error("beta must be >= 0");
  if (cfg.beta != 0 && !ref) a.type_error("refLogprobs is required when beta != 0");
  const double eps_low = a.number("epsilonLow", 0.2);
  const double eps_high = a.number("epsilonHigh", eps_low);
  if (eps_low < 0 || eps_low >= 1) a.range_error("epsilonLow must be in [0, 1)");
  if (eps_high < 0) a.range_error("epsilonHigh must be >= 0");
  cfg.eps_low = static_cast<float>(eps_low);
  cfg.eps_high = static_cast<float>(eps_high);
  cfg.type = a.choice("lossType", "grpo", {"grpo", "bnpo", "dr_grpo", "dapo"});
  cfg.kl = validate::read_kl_estimator_name(a, "klEstimator");
  cfg.kl_clamp = read_clamp(a, "klClamp");
  if (cfg.type == "dr_grpo" && a.has("maxCompletionLength"))
    cfg.normalizer = static_cast<double>(s) * a.positive_int("maxCompletionLength", 0);
  if (cfg.type == "dapo" && a.has("numItemsInBatch")) {
    cfg.normalizer = a.number("numItemsInBatch", 0);
    if (cfg.normalizer <= 0) a.range_error("numItemsInBatch must be > 0");
  }
  cfg.scale = a.number("lossScale", 1.0);
  const bool with_grad = a.flag("withGrad", true);
  const bool with_ptl = a.flag("withPerTokenLoss", false);
  const Output grad = optional_output_f32(a, with_grad, "outGrad", s * t, "the shape of logprobs");
  const Output ptl = optional_output_f32(a, with_ptl, "outPerTokenLoss", s * t, "the shape of logprobs");
  float* out_loss = a.f32_buffer("outLoss", 1, "one float32: the loss", false);
  const float* lp = static_cast<const float*>(logp.data);
  const float* ad = static_cast<const float*>(adv.data);

  Napi::Env env = a.env();
  Napi::Object out = Napi::Object::New(env);
#ifdef OTHINK_WITH_CUDA
  if (on_cuda(a)) {
    cuda::GrpoLossStats st{};
    run_cuda(a, [&] {
      st = cuda::grpo_loss_stats(lp, old, ref, ad, mask, grpo_config<cuda::GrpoLossConfig>(cfg), grad.data, ptl.data, out_loss,
                                 cuda::tensor_stream());
    });
    out.Set("loss", st.loss);
    out.Set("stats", grpo_stats(env, st));
  }
#endif
  if (!on_cuda(a)) {
    const cpu::GrpoLossStats st = cpu::grpo_loss(lp, old, ref, ad, mask, grpo_config<cpu::GrpoLossConfig>(cfg), grad.data,
                                                     ptl.data);
    if (out_loss) *out_loss = static_cast<float>(st.loss);
    out.Set("loss", st.loss);
    out.Set("stats", grpo_stats(env, st));
  }
  if (with_grad) out.Set("gradLogprobs", grad.value);
  if (with_ptl) out.Set("perTokenLoss", ptl.value);
  return out;
}

// sgemm({ a, b, c?, m, n, k, transA?, transB?, alpha?, beta? }) -> c = alpha * op(a) @ op(b) + beta * c
// Row-major; op(a) is [m, k] (a stored [k, m] when transA), op(b) is [k, n] (b stored [n, k] when transB).
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Args a(info, "sgemm");
  Napi::Float32Array A = a.f32("a"), B = a.f32("b");
  const int64_t m = a.positive_int("m", 0, true), n = a.positive_int("n", 0, true), k = a.positive_int("k", 0, true);
  const bool ta = a.flag("transA", false), tb = a.flag("transB", false);
  a.expect_length(A, "a", m * k, std::string(ta ? "[k, m]" : "[m, k]") + " = " + std::to_string(m) + " x " + std::to_string(k));
  a.expect_length(B, "b", k * n, std::string(tb ? "[n, k]" : "[k, n]") + " = " + std::to_string(k) + " x " + std::to_string(n));
  const double beta = a.number("beta", 0.0);
  Napi::Float32Array C;
  if (a.has("c")) {
    C = a.f32("c");
    a.expect_length(C, "c", m * n, "[m, n] = " + std::to_string(m) + " x " + std::to_string(n));
  } else {
    if (beta != 0) a.type_error("c is required when beta != 0");
    C = new_f32(a.env(), m * n);
  }
  cpu::sgemm(ta, tb, m, n, k, static_cast<float>(a.number("alpha", 1.0)), A.Data(), ta ? m : k, B.Data(), tb ? k : n,
             static_cast<float>(beta), C.Data(), n);
  return C;
}

// parallelCopy({ src, dst }): memcpy over all threads (the bandwidth peer of the benchmarks).
Napi::Value ParallelCopy(const Napi::CallbackInfo& info) {
  Args a(info, "parallelCopy");
  Napi::Float32Array src = a.f32("src"), dst = a.f32("dst");
  a.expect_length(dst, "dst", src.ElementLength(), "the length of src");
  cpu::parallel_copy(dst.Data(), src.Data(), src.ElementLength() * sizeof(float));
  return dst;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "setNumThreads: expected a number");
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (n != std::floor(n) || n < 1 || n > 4096)
    throw Napi::RangeError::New(info.Env(), "setNumThreads: threads must be an integer in [1, 4096]");
  omp_set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifdef OTHINK_WITH_CUDA
  out.Set("cuda", true);
#else
  out.Set("cuda", false);
#endif
#if defined(__AVX512F__)
  out.Set("simd", "avx512");
#elif defined(__AVX2__)
  out.Set("simd", "avx2");
#else
  out.Set("simd", "generic");
#endif
  out.Set("threads", omp_get_max_threads());
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("tokenLogprobs", Napi::Function::New(env, TokenLogprobs));
  exports.Set("tokenLogprobsBackward", Napi::Function::New(env, TokenLogprobsBackward));
  exports.Set("fusedLinearLogprobs", Napi::Function::New(env, FusedLinearLogprobs));
  exports.Set("fusedLinearLogprobsBackward", Napi::Function::New(env, FusedLinearLogprobsBackward));
  exports.Set("groupAdvantages", Napi::Function::New(env, GroupAdvantages));
  exports.Set("klPenalty", Napi::Function::New(env, KlPenalty));
  exports.Set("grpoLoss", Napi::Function::New(env, GrpoLoss));
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("parallelCopy", Napi::Function::New(env, ParallelCopy));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  register_storage(env, exports);
  register_ops(env, exports);
#ifdef OTHINK_WITH_CUDA
  exports.Set("cuda", cuda_exports(env));  // deviceInfo (addon_cuda.cc); the kernels above take CUDA tensors
#endif
  return exports;
}

}  // namespace
}  // namespace othink

static Napi::Object InitOthinkNative(Napi::Env env, Napi::Object exports) { return othink::Init(env, exports); }

NODE_API_MODULE(othink_native, InitOthinkNative)
