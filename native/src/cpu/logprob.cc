#include "cpu/logprob.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/simd.h"

namespace othink::cpu {

namespace {
using simd::f32v;
using simd::kLanes;

// Blocks small enough to stay in L1: the block max is read from cache, so DRAM sees each logit once.
constexpr int64_t kBlock = 2048;
// exp(-88) is below float's normal range: every exponent under it contributes nothing, and
// clamping there turns a -inf (masked) logit's e * (z - m) into 0 * -88 instead of 0 * -inf.
constexpr float kMinExponent = -88.f;
constexpr float kInf = std::numeric_limits<float>::infinity();
// How far a block's max may exceed the running max before its terms (up to e^kMaxLag each) are
// summed again: e^64 * 2048 terms stays far below float's 3.4e38.
constexpr float kMaxLag = 64.f;

// Applies fn(vector of x[j..j+16) / T, lanes) over a block; the tail lanes are filled with -inf.
template <typename Fn>
inline void for_each_vector(const float* x, int64_t len, float inv_t, Fn&& fn) {
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) fn(simd::load(x + j) * inv_t, j, kLanes);
  if (j < len) fn(simd::load_partial(x + j, len - j, -kInf) * inv_t, j, len - j);
}
}  // namespace

void token_logprobs_row(const float* row, int32_t target, int64_t vocab, float inv_temperature,
                        float* logprob, float* lse, float* entropy) {
  // Online log-sum-exp over blocks (Milakov & Gimelshein 2018) with a lagging max: each block sums
  // e = exp(z - m) against the running max m of the blocks before it while it finds its own max, so
  // a block is read once. Sums are then re-centred on the new max. Only when a block's max exceeds
  // m by more than kMaxLag (its terms could overflow) is it summed again against its own max.
  // s = sum exp(z - m), sd = sum exp(z - m) * (z - m) for the entropy.
  float m = -kInf;
  double s = 0.0, sd = 0.0;
  const f32v floor_rel = simd::splat(kMinExponent);
  for (int64_t b0 = 0; b0 < vocab; b0 += kBlock) {
    const int64_t len = std::min(kBlock, vocab - b0);
    const float* x = row + b0;
    // Sums one block against the centre c; returns the block max.
    auto sum_block = [&](float c, double& bs, double& bsd) {
      f32v acc = simd::splat(0.f), acc_d = simd::splat(0.f), vmax = simd::splat(-kInf);
      const f32v vc = simd::splat(c);
      if (entropy) {
        for_each_vector(x, len, inv_temperature, [&](f32v z, int64_t, int64_t) {
          vmax = simd::max(vmax, z);
          // Clamped so a -inf (masked) logit adds 0 * -88 rather than 0 * -inf.
          const f32v d = simd::max(z - vc, floor_rel);
          const f32v e = simd::exp(d);
          acc += e;
          acc_d += e * d;
        });
      } else {
        for_each_vector(x, len, inv_temperature, [&](f32v z, int64_t, int64_t) {
          vmax = simd::max(vmax, z);
          acc += simd::exp(z - vc);
        });
      }
      bs = simd::reduce_add(acc);
      bsd = simd::reduce_add(acc_d);
      return simd::reduce_max(vmax);
    };
    double bs, bsd;
    float c = m;  // the centre this block is summed against
    const float bm = sum_block(c, bs, bsd);
    if (bm == -kInf) continue;  // a fully masked block adds 0
    if (bm > m + kMaxLag) {     // also the first block, where m = -inf
      c = bm;
      sum_block(c, bs, bsd);
    }
    if (bm > m) {
      // Re-centre on the new max: s' = s e^(m - bm), sd' = e^(m - bm) (sd + (m - bm) s); same for the block.
      auto recentre = [bm](double& sum, double& sum_d, float centre) {
        if (sum == 0.0 || centre == bm) return;
        const double shift = static_cast<double>(centre) - bm, scale = std::exp(shift);
        sum_d = scale * (sum_d + shift * sum);
        sum *= scale;
      };
      recentre(s, sd, m);
      recentre(bs, bsd, c);
      m = bm;
    }
    s += bs;
    sd += bsd;
  }
  const double l = m + std::log(s);
  *lse = static_cast<float>(l);
  *logprob = static_cast<float>(row[target] * static_cast<double>(inv_temperature) - l);
  // H = lse - E_p[z] = log s - E_p[z - m]
  if (entropy) *entropy = static_cast<float>(std::log(s) - sd / s);
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
  // z = x / T, d = z - lse, p = exp(d).
  // d logprob / dz_j = onehot_j - p_j;  d entropy / dz_j = -p_j (d_j + H).  Chain rule: dz/dx = 1/T.
  const float gl = grad_logprob * inv_temperature;
  const float ge = grad_entropy * inv_temperature;
  const f32v vlse = simd::splat(lse), floor = simd::splat(kMinExponent);
  const f32v vgl = simd::splat(gl), vge = simd::splat(ge), vh = simd::splat(entropy);
  for_each_vector(row, vocab, inv_temperature, [&](f32v z, int64_t j, int64_t lanes) {
    const f32v d = simd::max(z - vlse, floor);
    const f32v g = ge != 0.f ? -simd::exp(d) * (vgl + vge * (d + vh)) : -simd::exp(d) * vgl;
    lanes == kLanes ? simd::store(drow + j, g) : simd::store_partial(drow + j, g, lanes);
  });
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
