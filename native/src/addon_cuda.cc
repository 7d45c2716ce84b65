// The Node-API bridge to the CUDA kernels: the same options and checks as the CPU bindings
// (addon.cc, validate.h), then host arrays are copied to the device, the launcher runs on the
// default stream, and the results come back in new typed arrays. Nothing here does math.
// bfloat16 inputs (logits / hidden / weight) arrive as Uint16Array of raw bits with dtype 'bfloat16'.
#include "addon_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "args.h"
#include "cuda/advantage.cuh"
#include "cuda/check.cuh"
#include "cuda/fused_linear_logprob.cuh"
#include "cuda/gemm.cuh"
#include "cuda/grpo_loss.cuh"
#include "cuda/kl.cuh"
#include "cuda/logprob.cuh"
#include "validate.h"

namespace othink {
namespace {

using bf16 = __nv_bfloat16;
using validate::check_targets;
using validate::optional_row_grad;
using validate::read_clamp;
using validate::read_ignore_index;
using validate::read_inv_temperature;

// Device memory owned by one call: freed on every exit path, exceptions included.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes > 0) OTHINK_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  }
  DeviceBuffer(const void* host, size_t bytes) : DeviceBuffer(bytes) {
    if (bytes > 0) OTHINK_CUDA_CHECK(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);  // no throw from a destructor; a failed free only leaks
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void zero() const {
    if (bytes_ > 0) OTHINK_CUDA_CHECK(cudaMemset(ptr_, 0, bytes_));
  }
  // Waits for the kernels queued on the default stream, then copies bytes_ back.
  void download(void* host) const {
    OTHINK_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    if (bytes_ > 0) OTHINK_CUDA_CHECK(cudaMemcpy(host, ptr_, bytes_, cudaMemcpyDeviceToHost));
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

template <typename A>
DeviceBuffer upload(const A& array) {
  return DeviceBuffer(array.Data(), array.ByteLength());
}

DeviceBuffer upload_optional(const float* host, size_t n) {
  return host ? DeviceBuffer(host, n * sizeof(float)) : DeviceBuffer();
}

Napi::Float32Array download_f32(Napi::Env env, const DeviceBuffer& d, size_t n) {
  Napi::Float32Array out = Napi::Float32Array::New(env, n);
  d.download(out.Data());
  return out;
}

enum class DType { F32, BF16 };

DType read_dtype(const Args& a) {
  return a.choice("dtype", "float32", {"float32", "bfloat16"}) == "bfloat16" ? DType::BF16 : DType::F32;
}

// A float32 or bfloat16 input: Float32Array, or Uint16Array of bf16 bits when dtype is 'bfloat16'.
Napi::TypedArray read_tensor(const Args& a, const char* name, DType dt) {
  if (dt == DType::F32) return a.f32(name);
  return a.typed<uint16_t, napi_uint16_array>(name, "Uint16Array of bfloat16 bits (dtype 'bfloat16')");
}

DeviceBuffer upload_tensor(const Napi::TypedArray& t) {
  return DeviceBuffer(static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength());
}

// tokenLogprobs({ logits, targets, vocabSize, temperature?, withEntropy?, ignoreIndex?, dtype? })
Napi::Value TokenLogprobs(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.tokenLogprobs");
  const DType dt = read_dtype(a);
  Napi::TypedArray logits = read_tensor(a, "logits", dt);
  Napi::Int32Array targets = a.i32("targets");
  const int64_t vocab = a.positive_int("vocabSize", 0, true);
  const int64_t n = static_cast<int64_t>(targets.ElementLength());
  a.expect_length(logits, "logits", n * vocab, "targets.length * vocabSize = " + std::to_string(n) + " * " + std::to_string(vocab));
  const int32_t ignore = read_ignore_index(a);
  check_targets(a, targets, vocab, ignore);
  const bool with_entropy = a.flag("withEntropy", false);
  const float inv_t = read_inv_temperature(a);

  const DeviceBuffer d_logits = upload_tensor(logits), d_targets = upload(targets);
  const DeviceBuffer d_lp(n * sizeof(float)), d_lse(n * sizeof(float)), d_ent(with_entropy ? n * sizeof(float) : 0);
  const cuda::LogprobOutputs out{d_lp.as<float>(), d_lse.as<float>(), with_entropy ? d_ent.as<float>() : nullptr};
  if (dt == DType::F32)
    cuda::token_logprobs_forward(d_logits.as<float>(), d_targets.as<int32_t>(), n, vocab, inv_t, ignore, out, nullptr);
  else
    cuda::token_logprobs_forward(d_logits.as<bf16>(), d_targets.as<int32_t>(), n, vocab, inv_t, ignore, out, nullptr);
  Napi::Env env = a.env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("logprobs", download_f32(env, d_lp, n));
  result.Set("lse", download_f32(env, d_lse, n));
  if (with_entropy) result.Set("entropy", download_f32(env, d_ent, n));
  return result;
}

// tokenLogprobsBackward({ ...tokenLogprobs options, lse, gradLogprobs?, entropy?, gradEntropy?,
//                         inPlace? | out? }) -> dlogits: float32, or over `logits` (its dtype) in place
Napi::Value TokenLogprobsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.tokenLogprobsBackward");
  const DType dt = read_dtype(a);
  Napi::TypedArray logits = read_tensor(a, "logits", dt);
  Napi::Int32Array targets = a.i32("targets");
  const int64_t vocab = a.positive_int("vocabSize", 0, true);
  const size_t n = targets.ElementLength();
  a.expect_length(logits, "logits", n * vocab, "targets.length * vocabSize = " + std::to_string(n) + " * " + std::to_string(vocab));
  Napi::Float32Array lse = a.f32("lse");
  a.expect_length(lse, "lse", n, "one per token, from tokenLogprobs");
  const float* grad_logprobs = optional_row_grad(a, "gradLogprobs", n);
  const float* grad_entropy = optional_row_grad(a, "gradEntropy", n);
  const float* entropy = optional_row_grad(a, "entropy", n);
  if (grad_entropy && !entropy) a.type_error("gradEntropy needs entropy (from tokenLogprobs with withEntropy)");
  if (!grad_logprobs && !grad_entropy) a.type_error("give gradLogprobs, gradEntropy or both");
  const int32_t ignore = read_ignore_index(a);
  check_targets(a, targets, vocab, ignore);
  const bool in_place = a.flag("inPlace", false);
  Napi::Float32Array out = in_place ? Napi::Float32Array() : a.f32("out", false);
  if (in_place && a.has("out")) a.type_error("give either inPlace or out, not both");
  if (!out.IsEmpty()) a.expect_length(out, "out", n * vocab, "the shape of logits");
  const float inv_t = read_inv_temperature(a);

  const DeviceBuffer d_logits = upload_tensor(logits), d_targets = upload(targets), d_lse = upload(lse);
  const DeviceBuffer d_gl = upload_optional(grad_logprobs, n), d_ge = upload_optional(grad_entropy, n),
                     d_ent = upload_optional(entropy, n);
  const int32_t* t = d_targets.as<int32_t>();
  const float *gl = d_gl.as<float>(), *ge = d_ge.as<float>(), *ent = d_ent.as<float>();
  if (dt == DType::F32) {
    // The device copy of the logits is scratch: the gradient overwrites it in either case.
    float* x = d_logits.as<float>();
    cuda::token_logprobs_backward<float, float>(x, t, d_lse.as<float>(), ent, gl, ge, n, vocab, inv_t, ignore, x, nullptr);
  } else if (in_place) {
    bf16* x = d_logits.as<bf16>();
    cuda::token_logprobs_backward<bf16, bf16>(x, t, d_lse.as<float>(), ent, gl, ge, n, vocab, inv_t, ignore, x, nullptr);
  } else {
    const DeviceBuffer d_grad(n * vocab * sizeof(float));
    cuda::token_logprobs_backward<bf16, float>(d_logits.as<bf16>(), t, d_lse.as<float>(), ent, gl, ge, n, vocab,
                                               inv_t, ignore, d_grad.as<float>(), nullptr);
    if (out.IsEmpty()) return download_f32(a.env(), d_grad, n * vocab);
    d_grad.download(out.Data());
    return out;
  }
  // float32 (any mode) or bfloat16 in place: the gradient is in d_logits, in the logits' dtype.
  if (in_place) {
    d_logits.download(static_cast<uint8_t*>(logits.ArrayBuffer().Data()) + logits.ByteOffset());
    return logits;
  }
  if (out.IsEmpty()) return download_f32(a.env(), d_logits, n * vocab);
  d_logits.download(out.Data());
  return out;
}

struct FusedLinearArgs {
  DType dtype;
  Napi::TypedArray hidden, weight;
  Napi::Int32Array targets;
  cuda::FusedLinearShape shape;
  int32_t ignore;
  float inv_temperature;
};

FusedLinearArgs read_fused_linear(const Args& a) {
  FusedLinearArgs f;
  f.dtype = read_dtype(a);
  f.hidden = read_tensor(a, "hidden", f.dtype);
  f.weight = read_tensor(a, "weight", f.dtype);
  f.targets = a.i32("targets");
  auto& s = f.shape;
  s.hidden = a.positive_int("hiddenSize", 0, true);
  s.n = static_cast<int64_t>(f.targets.ElementLength());
  a.expect_length(f.hidden, "hidden", s.n * s.hidden,
                  "targets.length * hiddenSize = " + std::to_string(s.n) + " * " + std::to_string(s.hidden));
  if (f.weight.ElementLength() == 0 || f.weight.ElementLength() % s.hidden != 0)
    a.range_error("weight has " + std::to_string(f.weight.ElementLength()) +
                  " elements; expected vocabSize * hiddenSize with hiddenSize = " + std::to_string(s.hidden));
  s.vocab = static_cast<int64_t>(f.weight.ElementLength()) / s.hidden;
  s.chunk = a.positive_int("chunkSize", cuda::default_logprob_chunk(s.vocab));
  f.ignore = read_ignore_index(a);
  check_targets(a, f.targets, s.vocab, f.ignore);
  f.inv_temperature = read_inv_temperature(a);
  return f;
}

// After the argument checks, so bad input is reported the same with or without cuBLAS.
void require_cublas(const Args& a) {
  if (!cuda::cublas_available())
    a.type_error("the fused linear kernels need cuBLAS, and this build of @othink/native has none "
                 "(rebuild with OTHINK_CUDA=1 on a CUDA toolkit that includes cuBLAS)");
}

// fusedLinearLogprobs({ hidden, weight, targets, hiddenSize, chunkSize?, temperature?, withEntropy?,
//                       ignoreIndex?, dtype? })
Napi::Value FusedLinearLogprobs(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.fusedLinearLogprobs");
  const FusedLinearArgs f = read_fused_linear(a);
  const bool with_entropy = a.flag("withEntropy", false);
  require_cublas(a);
  const size_t n = f.shape.n;
  const DeviceBuffer d_hidden = upload_tensor(f.hidden), d_weight = upload_tensor(f.weight), d_targets = upload(f.targets);
  const DeviceBuffer d_lp(n * sizeof(float)), d_lse(n * sizeof(float)), d_ent(with_entropy ? n * sizeof(float) : 0);
  const cuda::LogprobOutputs out{d_lp.as<float>(), d_lse.as<float>(), with_entropy ? d_ent.as<float>() : nullptr};
  const int32_t* t = d_targets.as<int32_t>();
  if (f.dtype == DType::F32) {
    const DeviceBuffer ws(cuda::fused_linear_workspace_bytes<float>(f.shape));
    cuda::fused_linear_logprobs_forward(d_hidden.as<float>(), d_weight.as<float>(), t, f.shape, f.inv_temperature,
                                        f.ignore, out, ws.get(), ws.bytes(), nullptr);
  } else {
    const DeviceBuffer ws(cuda::fused_linear_workspace_bytes<bf16>(f.shape));
    cuda::fused_linear_logprobs_forward(d_hidden.as<bf16>(), d_weight.as<bf16>(), t, f.shape, f.inv_temperature,
                                        f.ignore, out, ws.get(), ws.bytes(), nullptr);
  }
  Napi::Env env = a.env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("logprobs", download_f32(env, d_lp, n));
  result.Set("lse", download_f32(env, d_lse, n));
  if (with_entropy) result.Set("entropy", download_f32(env, d_ent, n));
  return result;
}

// fusedLinearLogprobsBackward({ ...forward options, lse, gradLogprobs?, entropy?, gradEntropy?,
//                               gradWeight? (float32, accumulated into), needGradHidden? })
Napi::Value FusedLinearLogprobsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.fusedLinearLogprobsBackward");
  const FusedLinearArgs f = read_fused_linear(a);
  const size_t n = f.shape.n;
  Napi::Float32Array lse = a.f32("lse");
  a.expect_length(lse, "lse", n, "one per token, from fusedLinearLogprobs");
  const float* grad_logprobs = optional_row_grad(a, "gradLogprobs", n);
  const float* grad_entropy = optional_row_grad(a, "gradEntropy", n);
  const float* entropy = optional_row_grad(a, "entropy", n);
  if (grad_entropy && !entropy) a.type_error("gradEntropy needs entropy (from fusedLinearLogprobs with withEntropy)");
  if (!grad_logprobs && !grad_entropy) a.type_error("give gradLogprobs, gradEntropy or both");
  Napi::Env env = a.env();
  Napi::Float32Array grad_weight;
  if (a.has("gradWeight")) {
    grad_weight = a.f32("gradWeight");
    a.expect_length(grad_weight, "gradWeight", f.weight.ElementLength(), "the shape of weight");
  } else {
    grad_weight = Napi::Float32Array::New(env, f.weight.ElementLength());  // zero-filled by V8
  }
  const bool need_grad_hidden = a.flag("needGradHidden", true);
  require_cublas(a);

  const DeviceBuffer d_hidden = upload_tensor(f.hidden), d_weight = upload_tensor(f.weight), d_targets = upload(f.targets);
  const DeviceBuffer d_lse = upload(lse), d_gl = upload_optional(grad_logprobs, n),
                     d_ge = upload_optional(grad_entropy, n), d_ent = upload_optional(entropy, n);
  const DeviceBuffer d_gw = upload(grad_weight);  // accumulated into, as on the CPU
  const DeviceBuffer d_gh(need_grad_hidden ? f.hidden.ElementLength() * sizeof(float) : 0);
  float* gh = need_grad_hidden ? d_gh.as<float>() : nullptr;
  const int32_t* t = d_targets.as<int32_t>();
  if (f.dtype == DType::F32) {
    const DeviceBuffer ws(cuda::fused_linear_workspace_bytes<float>(f.shape));
    cuda::fused_linear_logprobs_backward(d_hidden.as<float>(), d_weight.as<float>(), t, d_lse.as<float>(),
                                         d_ent.as<float>(), d_gl.as<float>(), d_ge.as<float>(), f.shape,
                                         f.inv_temperature, f.ignore, gh, d_gw.as<float>(), ws.get(), ws.bytes(), nullptr);
  } else {
    const DeviceBuffer ws(cuda::fused_linear_workspace_bytes<bf16>(f.shape));
    cuda::fused_linear_logprobs_backward(d_hidden.as<bf16>(), d_weight.as<bf16>(), t, d_lse.as<float>(),
                                         d_ent.as<float>(), d_gl.as<float>(), d_ge.as<float>(), f.shape,
                                         f.inv_temperature, f.ignore, gh, d_gw.as<float>(), ws.get(), ws.bytes(), nullptr);
  }
  Napi::Object result = Napi::Object::New(env);
  if (need_grad_hidden) result.Set("gradHidden", download_f32(env, d_gh, f.hidden.ElementLength()));
  d_gw.download(grad_weight.Data());
  result.Set("gradWeight", grad_weight);
  return result;
}

// groupAdvantages({ rewards, groupSize, scale?, nonFinite?, eps? })
Napi::Value GroupAdvantages(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.groupAdvantages");
  Napi::Float32Array rewards = a.f32("rewards");
  const int64_t g = a.positive_int("groupSize", 0, true);
  const size_t n = rewards.ElementLength();
  if (n == 0) a.range_error("rewards is empty");
  if (n % g != 0)
    a.range_error("rewards has " + std::to_string(n) + " elements, not a multiple of groupSize = " + std::to_string(g));
  const std::string scale = a.choice("scale", "group", {"group", "batch", "none"});
  const bool skip = a.choice("nonFinite", "error", {"error", "ignore"}) == "ignore";
  const double eps = a.number("eps", 1e-4);
  if (eps < 0) a.range_error("eps must be >= 0");
  if (!skip) validate::check_finite_rewards(a, rewards);
  const size_t groups = n / g;
  const DeviceBuffer d_r = upload(rewards), d_adv(n * sizeof(float)), d_mean(groups * sizeof(float)),
                     d_std(groups * sizeof(float)), ws(cuda::group_advantages_workspace_bytes());
  cuda::group_advantages(d_r.as<float>(), static_cast<int64_t>(n), g,
                         scale == "group"   ? cuda::AdvantageScale::Group
                         : scale == "batch" ? cuda::AdvantageScale::Batch
                                            : cuda::AdvantageScale::None,
                         skip, static_cast<float>(eps), d_adv.as<float>(), d_mean.as<float>(), d_std.as<float>(),
                         ws.get(), ws.bytes(), nullptr);
  Napi::Env env = a.env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("advantages", download_f32(env, d_adv, n));
  result.Set("groupMeans", download_f32(env, d_mean, groups));
  result.Set("groupStds", download_f32(env, d_std, groups));
  return result;
}

cuda::KlEstimator read_kl_estimator(const Args& a, const char* name) {
  const std::string e = validate::read_kl_estimator_name(a, name);
  return e == "k1" ? cuda::KlEstimator::K1 : e == "k2" ? cuda::KlEstimator::K2 : e == "abs" ? cuda::KlEstimator::Abs : cuda::KlEstimator::K3;
}

// klPenalty({ logprobs, refLogprobs, estimator?, clamp?, withGrad? })
Napi::Value KlPenalty(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.klPenalty");
  Napi::Float32Array logp = a.f32("logprobs");
  Napi::Float32Array ref = a.f32("refLogprobs");
  const size_t n = logp.ElementLength();
  a.expect_length(ref, "refLogprobs", n, "the length of logprobs");
  const cuda::KlEstimator est = read_kl_estimator(a, "estimator");
  const float clamp = read_clamp(a, "clamp");
  const bool with_grad = a.flag("withGrad", true);
  const DeviceBuffer d_lp = upload(logp), d_ref = upload(ref), d_val(n * sizeof(float)),
                     d_grad(with_grad ? n * sizeof(float) : 0);
  cuda::kl_penalty(d_lp.as<float>(), d_ref.as<float>(), static_cast<int64_t>(n), est, clamp, d_val.as<float>(),
                   with_grad ? d_grad.as<float>() : nullptr, nullptr);
  Napi::Env env = a.env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("values", download_f32(env, d_val, n));
  if (with_grad) result.Set("grads", download_f32(env, d_grad, n));
  return result;
}

// grpoLoss({ logprobs, oldLogprobs?, refLogprobs?, advantages, completionMask, beta, epsilonLow?,
//            epsilonHigh?, lossType?, klEstimator?, klClamp?, maxCompletionLength?, numItemsInBatch?,
//            withGrad?, withPerTokenLoss? })
Napi::Value GrpoLoss(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.grpoLoss");
  Napi::Float32Array logp = a.f32("logprobs");
  Napi::Float32Array adv = a.f32("advantages");
  Napi::Float32Array mask = a.f32("completionMask");
  const size_t s = adv.ElementLength();
  if (s == 0) a.range_error("advantages is empty");
  if (logp.ElementLength() % s != 0)
    a.range_error("logprobs has " + std::to_string(logp.ElementLength()) + " elements, not a multiple of advantages.length = " +
                  std::to_string(s) + " (one advantage per sequence)");
  const size_t t = logp.ElementLength() / s;
  const std::string shape = "[S, T] = [" + std::to_string(s) + ", " + std::to_string(t) + "]";
  a.expect_length(mask, "completionMask", s * t, "the shape of logprobs " + shape);
  Napi::Float32Array old = a.f32("oldLogprobs", false);
  if (!old.IsEmpty()) a.expect_length(old, "oldLogprobs", s * t, "the shape of logprobs " + shape);
  Napi::Float32Array ref = a.f32("refLogprobs", false);
  if (!ref.IsEmpty()) a.expect_length(ref, "refLogprobs", s * t, "the shape of logprobs " + shape);

  cuda::GrpoLossConfig cfg;
  cfg.seqs = static_cast<int64_t>(s);
  cfg.tokens = static_cast<int64_t>(t);
  cfg.beta = static_cast<float>(a.number("beta", 0, true));
  if (cfg.beta < 0) a.range_error("beta must be >= 0");
  if (cfg.beta != 0 && ref.IsEmpty()) a.type_error("refLogprobs is required when beta != 0");
  const double eps_low = a.number("epsilonLow", 0.2);
  const double eps_high = a.number("epsilonHigh", eps_low);
  if (eps_low < 0 || eps_low >= 1) a.range_error("epsilonLow must be in [0, 1)");
  if (eps_high < 0) a.range_error("epsilonHigh must be >= 0");
  cfg.eps_low = static_cast<float>(eps_low);
  cfg.eps_high = static_cast<float>(eps_high);
  const std::string type = a.choice("lossType", "grpo", {"grpo", "bnpo", "dr_grpo", "dapo"});
  cfg.type = type == "grpo"      ? cuda::GrpoLossType::Grpo
             : type == "bnpo"    ? cuda::GrpoLossType::Bnpo
             : type == "dr_grpo" ? cuda::GrpoLossType::DrGrpo
                                 : cuda::GrpoLossType::Dapo;
  cfg.kl = read_kl_estimator(a, "klEstimator");
  cfg.kl_clamp = read_clamp(a, "klClamp");
  if (type == "dr_grpo" && a.has("maxCompletionLength"))
    cfg.normalizer = static_cast<double>(s) * a.positive_int("maxCompletionLength", 0);
  if (type == "dapo" && a.has("numItemsInBatch")) {
    cfg.normalizer = a.number("numItemsInBatch", 0);
    if (cfg.normalizer <= 0) a.range_error("numItemsInBatch must be > 0");
  }
  const bool with_grad = a.flag("withGrad", true);
  const bool with_ptl = a.flag("withPerTokenLoss", false);

  const DeviceBuffer d_lp = upload(logp), d_adv = upload(adv), d_mask = upload(mask);
  const DeviceBuffer d_old = old.IsEmpty() ? DeviceBuffer() : upload(old);
  const DeviceBuffer d_ref = ref.IsEmpty() ? DeviceBuffer() : upload(ref);
  const DeviceBuffer d_grad(with_grad ? s * t * sizeof(float) : 0), d_ptl(with_ptl ? s * t * sizeof(float) : 0);
  const DeviceBuffer d_stats(sizeof(cuda::GrpoLossStats)), ws(cuda::grpo_loss_workspace_bytes(cfg.seqs));
  cuda::grpo_loss(d_lp.as<float>(), d_old.as<float>(), d_ref.as<float>(), d_adv.as<float>(), d_mask.as<float>(), cfg,
                  with_grad ? d_grad.as<float>() : nullptr, with_ptl ? d_ptl.as<float>() : nullptr,
                  d_stats.as<cuda::GrpoLossStats>(), ws.get(), ws.bytes(), nullptr);
  cuda::GrpoLossStats st{};
  d_stats.download(&st);
  Napi::Env env = a.env();
  Napi::Object stats = Napi::Object::New(env);
  stats.Set("meanKl", st.mean_kl);
  stats.Set("clipRatioLow", st.clip_low);
  stats.Set("clipRatioHigh", st.clip_high);
  stats.Set("clipRatioRegion", st.clip_region);
  stats.Set("meanRatio", st.mean_ratio);
  stats.Set("tokens", st.mask_sum);
  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", st.loss);
  if (with_grad) result.Set("gradLogprobs", download_f32(env, d_grad, s * t));
  if (with_ptl) result.Set("perTokenLoss", download_f32(env, d_ptl, s * t));
  result.Set("stats", stats);
  return result;
}

// deviceInfo() -> { available, deviceCount, name?, computeCapability?, totalMemory?, multiprocessors?,
//                   runtimeVersion, driverVersion, cublas, error? }. Never throws: it is how callers
// (and the tests) find out whether the kernels can run here at all.
Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  int runtime = 0, driver = 0, count = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  const cudaError_t err = cudaGetDeviceCount(&count);
  out.Set("runtimeVersion", runtime);
  out.Set("driverVersion", driver);
  out.Set("cublas", cuda::cublas_available());
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it: the next CUDA call must not report it again
    out.Set("available", false);
    out.Set("deviceCount", 0);
    out.Set("error", std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err));
    return out;
  }
  out.Set("available", count > 0);
  out.Set("deviceCount", count);
  int device = 0;
  cudaDeviceProp prop{};
  if (count > 0 && cudaGetDevice(&device) == cudaSuccess && cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    out.Set("device", device);
    out.Set("name", std::string(prop.name));
    out.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
    out.Set("totalMemory", static_cast<double>(prop.totalGlobalMem));
    out.Set("multiprocessors", prop.multiProcessorCount);
  }
  cudaGetLastError();
  return out;
}

using Entry = Napi::Value (*)(const Napi::CallbackInfo&);

// Validation throws Napi errors (TypeError / RangeError naming the argument); a CUDA or cuBLAS
// failure throws a C++ exception, which becomes a JS Error naming the function here.
Napi::Function entry(Napi::Env env, const char* name, Entry fn) {
  return Napi::Function::New(
      env,
      [name, fn](const Napi::CallbackInfo& info) -> Napi::Value {
        try {
          return fn(info);
        } catch (const Napi::Error&) {
          throw;
        } catch (const std::exception& e) {
          throw Napi::Error::New(info.Env(), std::string("cuda.") + name + ": " + e.what());
        }
      },
      name);
}

}  // namespace

Napi::Object cuda_exports(Napi::Env env) {
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("tokenLogprobs", entry(env, "tokenLogprobs", TokenLogprobs));
  cuda.Set("tokenLogprobsBackward", entry(env, "tokenLogprobsBackward", TokenLogprobsBackward));
  cuda.Set("fusedLinearLogprobs", entry(env, "fusedLinearLogprobs", FusedLinearLogprobs));
  cuda.Set("fusedLinearLogprobsBackward", entry(env, "fusedLinearLogprobsBackward", FusedLinearLogprobsBackward));
  cuda.Set("groupAdvantages", entry(env, "groupAdvantages", GroupAdvantages));
  cuda.Set("klPenalty", entry(env, "klPenalty", KlPenalty));
  cuda.Set("grpoLoss", entry(env, "grpoLoss", GrpoLoss));
  cuda.Set("deviceInfo", entry(env, "deviceInfo", DeviceInfo));
  return cuda;
}

}  // namespace othink
