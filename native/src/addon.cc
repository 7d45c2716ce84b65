// The Node-API surface of @othink/native: argument checks, output allocation, errors.
// Kernels live in cpu/ (and cuda/); nothing here does math.
#include <napi.h>
#include <omp.h>

#include <cmath>
#include <string>

#include "args.h"
#include "validate.h"
#include "bindings/register.h"
#ifdef OTHINK_WITH_CUDA
#include "addon_cuda.h"
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

Napi::Float32Array new_f32(Napi::Env env, size_t n) { return Napi::Float32Array::New(env, n); }

// The int32 targets (tensor or Int32Array), each checked against the vocabulary.
const int32_t* read_targets(const Args& a, int64_t vocab, int32_t ignore, size_t& n) {
  Args::Buffer t = a.buffer("targets", "int32");
  n = t.length;
  check_targets(a, static_cast<const int32_t*>(t.data), n, vocab, ignore);
  return static_cast<const int32_t*>(t.data);
}

// An output the caller may pass in (`name`: a Float32Array or float32 tensor, returned as given), or a
// new Float32Array.
std::pair<float*, Napi::Value> output_f32(const Args& a, const char* name, size_t n, const std::string& what) {
  if (a.has(name)) return {a.f32_buffer(name, n, what), a.value(name)};
  Napi::Float32Array fresh = new_f32(a.env(), n);
  return {fresh.Data(), fresh};
}

// tokenLogprobs({ logits [N*V], targets [N], vocabSize, temperature?, withEntropy?, ignoreIndex? })
// logits / targets: typed arrays or tensors; the [N] results are new Float32Arrays.
Napi::Value TokenLogprobs(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobs");
  const int64_t vocab = a.positive_int("vocabSize", 0, true);
  const int32_t ignore = read_ignore_index(a);
  size_t n = 0;
  const int32_t* targets = read_targets(a, vocab, ignore, n);
  const float* logits = a.f32_buffer("logits", n * vocab, "targets.length * vocabSize = " + std::to_string(n) + " * " + std::to_string(vocab));
  const bool with_entropy = a.flag("withEntropy", false);
  Napi::Env env = a.env();
  Napi::Float32Array logprobs = new_f32(env, n), lse = new_f32(env, n);
  Napi::Float32Array entropy = with_entropy ? new_f32(env, n) : Napi::Float32Array();
  cpu::token_logprobs_forward(logits, targets, static_cast<int64_t>(n), vocab, read_inv_temperature(a), ignore,
                              {logprobs.Data(), lse.Data(), with_entropy ? entropy.Data() : nullptr});
  Napi::Object out = Napi::Object::New(env);
  out.Set("logprobs", logprobs);
  out.Set("lse", lse);
  if (with_entropy) out.Set("entropy", entropy);
  return out;
}

// tokenLogprobsBackward({ logits, targets, lse, vocabSize, gradLogprobs?, entropy?, gradEntropy?,
//                         temperature?, ignoreIndex?, inPlace? | out? }) -> dlogits (out / logits as given)
Napi::Value TokenLogprobsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobsBackward");
  const int64_t vocab = a.positive_int("vocabSize", 0, true);
  const int32_t ignore = read_ignore_index(a);
  size_t n = 0;
  const int32_t* targets = read_targets(a, vocab, ignore, n);
  const size_t numel = n * vocab;
  float* logits = a.f32_buffer("logits", numel, "targets.length * vocabSize = " + std::to_string(n) + " * " + std::to_string(vocab));
  const float* lse = a.f32_buffer("lse", n, "one per token, from tokenLogprobs");
  const float* grad_logprobs = optional_row_grad(a, "gradLogprobs", n);
  const float* grad_entropy = optional_row_grad(a, "gradEntropy", n);
  const float* entropy = optional_row_grad(a, "entropy", n);
  if (grad_entropy && !entropy) a.type_error("gradEntropy needs entropy (from tokenLogprobs with withEntropy)");
  if (!grad_logprobs && !grad_entropy) a.type_error("give gradLogprobs, gradEntropy or both");
  const bool in_place = a.flag("inPlace", false);
  if (in_place && a.has("out")) a.type_error("give either inPlace or out, not both");
  auto [dlogits, result] = in_place ? std::pair<float*, Napi::Value>{logits, a.value("logits")} : output_f32(a, "out", numel, "the shape of logits");
  cpu::token_logprobs_backward(logits, targets, lse, entropy, grad_logprobs, grad_entropy, static_cast<int64_t>(n), vocab,
                               read_inv_temperature(a), ignore, dlogits);
  return result;
}

struct FusedLinearArgs {
  const float* hidden;
  const float* weight;
  const int32_t* targets;
  cpu::FusedLinearShape shape;
  int32_t ignore;
  float inv_temperature;
};

FusedLinearArgs read_fused_linear(const Args& a) {
  FusedLinearArgs f;
  auto& s = f.shape;
  s.hidden = a.positive_int("hiddenSize", 0, true);
  Args::Buffer weight = a.buffer("weight", "float32");
  if (weight.length == 0 || weight.length % s.hidden != 0)
    a.range_error("weight has " + std::to_string(weight.length) +
                  " elements; expected vocabSize * hiddenSize with hiddenSize = " + std::to_string(s.hidden));
  f.weight = static_cast<const float*>(weight.data);
  s.vocab = static_cast<int64_t>(weight.length) / s.hidden;
  f.ignore = read_ignore_index(a);
  size_t n = 0;
  f.targets = read_targets(a, s.vocab, f.ignore, n);
  s.n = static_cast<int64_t>(n);
  f.hidden = a.f32_buffer("hidden", n * s.hidden, "targets.length * hiddenSize = " + std::to_string(n) + " * " + std::to_string(s.hidden));
  s.chunk = a.positive_int("chunkSize", cpu::default_logprob_chunk(s.vocab));
  f.inv_temperature = read_inv_temperature(a);
  return f;
}

// fusedLinearLogprobs({ hidden [N*H], weight [V*H], targets [N], hiddenSize, chunkSize?, temperature?,
//                       withEntropy?, ignoreIndex? })
Napi::Value FusedLinearLogprobs(const Napi::CallbackInfo& info) {
  Args a(info, "fusedLinearLogprobs");
  FusedLinearArgs f = read_fused_linear(a);
  const bool with_entropy = a.flag("withEntropy", false);
  Napi::Env env = a.env();
  const size_t n = f.shape.n;
  Napi::Float32Array logprobs = new_f32(env, n), lse = new_f32(env, n);
  Napi::Float32Array entropy = with_entropy ? new_f32(env, n) : Napi::Float32Array();
  cpu::fused_linear_logprobs_forward(f.hidden, f.weight, f.targets, f.shape, f.inv_temperature, f.ignore,
                                     {logprobs.Data(), lse.Data(), with_entropy ? entropy.Data() : nullptr});
  Napi::Object out = Napi::Object::New(env);
  out.Set("logprobs", logprobs);
  out.Set("lse", lse);
  if (with_entropy) out.Set("entropy", entropy);
  return out;
}

// fusedLinearLogprobsBackward({ ...forward args, lse, gradLogprobs?, entropy?, gradEntropy?,
//                               gradWeight? (accumulated into), gradHidden? (written), needGradHidden? })
Napi::Value FusedLinearLogprobsBackward(const Napi::CallbackInfo& info) {
  Args a(info, "fusedLinearLogprobsBackward");
  FusedLinearArgs f = read_fused_linear(a);
  const size_t n = f.shape.n;
  const float* lse = a.f32_buffer("lse", n, "one per token, from fusedLinearLogprobs");
  const float* grad_logprobs = optional_row_grad(a, "gradLogprobs", n);
  const float* grad_entropy = optional_row_grad(a, "gradEntropy", n);
  const float* entropy = optional_row_grad(a, "entropy", n);
  if (grad_entropy && !entropy) a.type_error("gradEntropy needs entropy (from fusedLinearLogprobs with withEntropy)");
  if (!grad_logprobs && !grad_entropy) a.type_error("give gradLogprobs, gradEntropy or both");
  // A new gradWeight is zero-filled by V8; one passed in is accumulated into.
  auto [grad_weight, grad_weight_value] = output_f32(a, "gradWeight", f.shape.vocab * f.shape.hidden, "the shape of weight");
  const bool need_grad_hidden = a.flag("needGradHidden", true);
  std::pair<float*, Napi::Value> grad_hidden{nullptr, a.env().Undefined()};
  if (need_grad_hidden) grad_hidden = output_f32(a, "gradHidden", n * f.shape.hidden, "the shape of hidden");
  cpu::fused_linear_logprobs_backward(f.hidden, f.weight, f.targets, lse, entropy, grad_logprobs, grad_entropy, f.shape,
                                      f.inv_temperature, f.ignore, grad_hidden.first, grad_weight);
  Napi::Object out = Napi::Object::New(a.env());
  if (need_grad_hidden) out.Set("gradHidden", grad_hidden.second);
  out.Set("gradWeight", grad_weight_value);
  return out;
}

// groupAdvantages({ rewards [B*G], groupSize, scale?: 'group'|'batch'|'none', nonFinite?: 'error'|'ignore', eps?,
//                   out?, outGroupMeans?, outGroupStds? })
Napi::Value GroupAdvantages(const Napi::CallbackInfo& info) {
  Args a(info, "groupAdvantages");
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
  Napi::Env env = a.env();
  const size_t groups = n / g;
  auto [adv, adv_value] = output_f32(a, "out", n, "one per reward");
  auto [means, means_value] = output_f32(a, "outGroupMeans", groups, "one per group");
  auto [stds, stds_value] = output_f32(a, "outGroupStds", groups, "one per group");
  const bool all_finite = cpu::group_advantages(rewards.Data(), static_cast<int64_t>(n), g,
                                                scale == "group"   ? cpu::AdvantageScale::Group
                                                : scale == "batch" ? cpu::AdvantageScale::Batch
                                                                   : cpu::AdvantageScale::None,
                                                skip, static_cast<float>(eps), adv, means, stds);
  // The kernel checks finiteness in its own pass over the rewards; only a failure rescans them.
  if (!all_finite && !skip) validate::check_finite_rewards(a, rewards);
  Napi::Object out = Napi::Object::New(env);
  out.Set("advantages", adv_value);
  out.Set("groupMeans", means_value);
  out.Set("groupStds", stds_value);
  return out;
}

cpu::KlEstimator read_kl_estimator(const Args& a, const char* name) {
  const std::string e = validate::read_kl_estimator_name(a, name);
  return e == "k1" ? cpu::KlEstimator::K1 : e == "k2" ? cpu::KlEstimator::K2 : e == "abs" ? cpu::KlEstimator::Abs : cpu::KlEstimator::K3;
}

// klPenalty({ logprobs, refLogprobs, estimator?: 'k1'|'k2'|'k3'|'abs', clamp?, withGrad? })
Napi::Value KlPenalty(const Napi::CallbackInfo& info) {
  Args a(info, "klPenalty");
  Napi::Float32Array logp = a.f32("logprobs");
  Napi::Float32Array ref = a.f32("refLogprobs");
  const size_t n = logp.ElementLength();
  a.expect_length(ref, "refLogprobs", n, "the length of logprobs");
  const cpu::KlEstimator est = read_kl_estimator(a, "estimator");
  const float clamp = read_clamp(a, "clamp");
  const bool with_grad = a.flag("withGrad", true);
  Napi::Env env = a.env();
  auto [values, values_value] = output_f32(a, "outValues", n, "the length of logprobs");
  std::pair<float*, Napi::Value> grads{nullptr, env.Undefined()};
  if (with_grad) grads = output_f32(a, "outGrads", n, "the length of logprobs");
  cpu::kl_penalty(logp.Data(), ref.Data(), static_cast<int64_t>(n), est, clamp, values,
                  grads.first);
  Napi::Object out = Napi::Object::New(env);
  out.Set("values", values_value);
  if (with_grad) out.Set("grads", grads.second);
  return out;
}

// grpoLoss({ logprobs [S*T], oldLogprobs?, refLogprobs?, advantages [S], completionMask [S*T], beta,
//            epsilonLow?, epsilonHigh?, lossType?, klEstimator?, klClamp?, maxCompletionLength?,
//            numItemsInBatch?, withGrad?, withPerTokenLoss? })
Napi::Value GrpoLoss(const Napi::CallbackInfo& info) {
  Args a(info, "grpoLoss");
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

  cpu::GrpoLossConfig cfg;
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
  cfg.type = type == "grpo" ? cpu::GrpoLossType::Grpo
             : type == "bnpo" ? cpu::GrpoLossType::Bnpo
             : type == "dr_grpo" ? cpu::GrpoLossType::DrGrpo
                                 : cpu::GrpoLossType::Dapo;
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
  Napi::Env env = a.env();
  std::pair<float*, Napi::Value> grad{nullptr, env.Undefined()};
  if (with_grad) grad = output_f32(a, "outGrad", s * t, "the shape of logprobs");
  Napi::Float32Array ptl = with_ptl ? new_f32(env, s * t) : Napi::Float32Array();
  const cpu::GrpoLossStats st =
      cpu::grpo_loss(logp.Data(), old.IsEmpty() ? nullptr : old.Data(), ref.IsEmpty() ? nullptr : ref.Data(), adv.Data(),
                     mask.Data(), cfg, grad.first, with_ptl ? ptl.Data() : nullptr);
  Napi::Object stats = Napi::Object::New(env);
  stats.Set("meanKl", st.mean_kl);
  stats.Set("clipRatioLow", st.clip_low);
  stats.Set("clipRatioHigh", st.clip_high);
  stats.Set("clipRatioRegion", st.clip_region);
  stats.Set("meanRatio", st.mean_ratio);
  stats.Set("tokens", st.mask_sum);
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", st.loss);
  if (with_grad) out.Set("gradLogprobs", grad.second);
  if (with_ptl) out.Set("perTokenLoss", ptl);
  out.Set("stats", stats);
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
  exports.Set("cuda", cuda_exports(env));  // the CUDA twins, same names (addon_cuda.cc)
#endif
  return exports;
}

}  // namespace
}  // namespace othink

static Napi::Object InitOthinkNative(Napi::Env env, Napi::Object exports) { return othink::Init(env, exports); }

NODE_API_MODULE(othink_native, InitOthinkNative)
