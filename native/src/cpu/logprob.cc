#include "cpu/logprob.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/fast_exp.h"

namespace othink::cpu {

namespace {
// Blocks small enough to stay in L1: the block max is read from cache, so DRAM sees each logit once.
constexpr int64_t kBlock = 2048;
}  // namespace

void token_logprobs_row(const float* row, int32_t target, int64_t vocab, float inv_temperature,
                        float* logprob, float* lse, float* entropy) {
  // Online log-sum-exp over blocks (Milakov & Gimelshein 2018): running max m, sum s = sum exp(z - m),
  // and for the entropy sz = sum exp(z - m) * z, rescaled whenever the max grows.
  float m = -std::numeric_limits<float>::infinity();
  double s = 0.0, sz = 0.0;
  const bool want_entropy = entropy != nullptr;
  for (int64_t b0 = 0; b0 < vocab; b0 += kBlock) {
    const int64_t len = std::min(kBlock, vocab - b0);
    const float* x = row + b0;
    float bm = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : bm)
    for (int64_t j = 0; j < len; ++j) bm = std::max(bm, x[j] * inv_temperature);
    if (bm == -std::numeric_limits<float>::infinity()) continue;  // a fully masked block adds 0
    if (bm > m) {
      if (s > 0.0) {
        const double scale = std::exp(static_cast<double>(m) - bm);
        s *= scale;
        sz *= scale;
      }
      m = bm;
    }
    float bs = 0.f, bsz = 0.f;
    if (want_entropy) {
#pragma omp simd reduction(+ : bs, bsz)
      for (int64_t j = 0; j < len; ++j) {
        const float z = x[j] * inv_temperature;
        const float e = fast_exp(z - m);
        bs += e;
        bsz += e * (z - m);
      }
    } else {
#pragma omp simd reduction(+ : bs)
      for (int64_t j = 0; j < len; ++j) bs += fast_exp(x[j] * inv_temperature - m);
    }
    s += bs;
    // sz is accumulated relative to m: sum e * (z - m) + m * sum e keeps precision for large logits.
    sz += bsz + static_cast<double>(m) * bs;
  }
  const double log_s = std::log(s);
  const double l = m + log_s;
  *lse = static_cast<float>(l);
  *logprob = static_cast<float>(row[target] * static_cast<double>(inv_temperature) - l);
  // H = lse - E_p[z]
  if (want_entropy) *entropy = static_cast<float>(l - sz / s);
}

void token_logprobs_forward(const float* logits, const int32_t* targets, int64_t n, int64_t vocab,
                            float inv_temperature, int32_t ignore_index, LogprobOutputs out) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    float* ent = out.entropy ? out.entropy + i : nullptr;
    if (targets[i] == ignore_index) {
      out.logprobs[i] = 0.f;
      out.lse[i] = 0.f;
      if (ent) *ent = 0.f;
      continue;
    }
    token_logprobs_row(logits + i * vocab, targets[i], vocab, inv_temperature, out.logprobs + i,
                       out.lse + i, ent);
  }
}

void token_logprobs_backward_row(const float* row, int32_t target, float lse, float entropy,
                                 float grad_logprob, float grad_entropy, int64_t vocab,
                                 float inv_temperature, float* drow) {
  // z = x / T, p = exp(z - lse).
  // d logprob / dz_j = onehot_j - p_j;  d entropy / dz_j = -p_j * (z_j - lse + H).  Chain: dz/dx = 1/T.
  const float gl = grad_logprob * inv_temperature;
  const float ge = grad_entropy * inv_temperature;
  const float shift = entropy - lse;  // z - lse + H = z + shift
  if (ge != 0.f) {
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) {
      const float z = row[j] * inv_temperature;
      const float p = fast_exp(z - lse);
      drow[j] = -p * (gl + ge * (z + shift));
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) drow[j] = -gl * fast_exp(row[j] * inv_temperature - lse);
  }
  drow[target] += gl;
}

void token_logprobs_backward(const float* logits, const int32_t* targets, const float* lse,
                             const float* entropy, const float* grad_logprobs,
                             const float* grad_entropy, int64_t n, int64_t vocab,
                             float inv_temperature, int32_t ignore_index, float* dlogits) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    float* drow = dlogits + i * vocab;
    if (targets[i] == ignore_index) {
      std::fill(drow, drow + vocab, 0.f);
      continue;
    }
    token_logprobs_backward_row(logits + i * vocab, targets[i], lse[i], entropy ? entropy[i] : 0.f,
                                grad_logprobs ? grad_logprobs[i] : 0.f,
                                grad_entropy ? grad_entropy[i] : 0.f, vocab, inv_temperature, drow);
  }
}

}  // namespace othink::cpu
